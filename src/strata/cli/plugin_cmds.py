"""``strata add | remove | install | lock | invoke``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from strata.cli.context import Context, pass_context


@click.command()
@click.argument("words", nargs=-1, required=True, metavar="[TYPE] NAME")
@click.option("--plugin-type", metavar="TYPE", help="The plugin's type, Meltano 4's form: add --plugin-type TYPE NAME.")
@click.option("--pip-url", help="What to install: any pip arguments (package==version, a path, a URL).")
@click.option("--executable", help="Executable to run (default: the plugin name).")
@click.option("--inherit-from", help="Existing plugin to inherit config and install from.")
@click.option("--namespace", help="Prefix for the plugin's variables (default: the name with _).")
@click.option("--variant", help="The variant it is (written as `variant:`, shown as MELTANO_<TYPE>_VARIANT).")
@click.option("--install/--no-install", default=True, show_default=True, help="Install it right away.")
@pass_context
def add(
    ctx: Context,
    words: tuple[str, ...],
    plugin_type: str | None,
    pip_url: str | None,
    executable: str | None,
    inherit_from: str | None,
    namespace: str | None,
    variant: str | None,
    install: bool,
) -> None:
    """Add a plugin to the project file (and install it).

    TYPE is extractor, loader, mapper, utility, transformer, orchestrator or file (or the
    plural). If the install fails, the project file is left as it was.
    """
    from strata.ingest import venv
    from strata.project.edit import add_plugin
    from strata.project.schema import singular

    section, name = _type_and_name(words, plugin_type)
    project = ctx.project()
    assert project.file is not None
    project_file = project.file
    original = project_file.read_text(encoding="utf-8")
    add_plugin(
        project,
        section,
        name,
        pip_url=pip_url,
        executable=executable,
        inherit_from=inherit_from,
        namespace=namespace,
        variant=variant,
    )
    try:
        project = ctx.reload()
        status = "not installed"
        env = venv.plugin_env(project, project.plugin(name, section))
        if install:
            status = venv.install(project, env)
    except BaseException:
        from strata.project.files import write_atomic

        write_atomic(project_file, original)
        raise
    created: list[tuple[Path, Path | None]] = []
    if section == "files" and install:  # as Meltano's `add files`: the bundle's files go into the project
        from strata.ingest.bundles import copy_into

        created = copy_into(project, env)

    def human() -> None:
        for path, kept in created:
            click.echo(f"Created {path}" + (f" ({kept} exists)" if kept is not None else ""))
        click.echo(f"Added {singular(section)} `{name}` to {project.file_name} ({status})")

    files = [str(path) for path, _ in created]
    ctx.emit({"name": name, "type": section, "install": status, "files": files}, human)


def _type_and_name(words: tuple[str, ...], option: str | None) -> tuple[str, str]:
    """``(section, name)`` from ``add TYPE NAME`` or Meltano 4's ``add --plugin-type TYPE NAME``."""
    from strata.errors import UsageError

    if option is not None:
        if len(words) != 1:
            raise UsageError("add one plugin at a time", "run `strata add` once per plugin")
        return _section(option), words[0]
    if len(words) == 1:
        if words[0] in _sections():
            raise UsageError(f"`strata add {words[0]}` needs the plugin's NAME", f"write `strata add {words[0]} NAME`")
        raise UsageError(f"`strata add {words[0]}` needs the plugin's TYPE", f"write `strata add TYPE {words[0]}`")
    kind, *names = words
    if len(names) > 1:
        raise UsageError("add one plugin at a time", "run `strata add` once per plugin")
    return _section(kind), names[0]


def _section(word: str) -> str:
    """The project file section of a plugin type written in the singular or the plural."""
    from strata.errors import UsageError
    from strata.project.schema import ADDABLE_TYPES

    sections = _sections()
    if word not in sections:
        raise UsageError(f"unknown plugin type `{word}`", f"one of: {', '.join(ADDABLE_TYPES)}")
    return sections[word]


def _sections() -> dict[str, str]:
    """Every way to write a type ``add`` takes (``utility``, ``utilities``), mapped to its section."""
    from strata.project.schema import ADDABLE_TYPES

    return {**ADDABLE_TYPES, **{many: many for many in ADDABLE_TYPES.values()}}


@click.command()
@click.argument("names", nargs=-1, required=True)
@pass_context
def remove(ctx: Context, names: tuple[str, ...]) -> None:
    """Remove plugins from the project file, strata.lock and their environments.

    Every name is checked first; nothing changes unless all of them can go.
    """
    from strata.ingest import venv
    from strata.project.edit import remove_plugins

    project = ctx.project()
    unique = list(dict.fromkeys(names))
    refs = [project.plugin(name) for name in unique]
    homes = [venv.plugin_home(project, ref) for ref in refs if venv.owner_of(project, ref).name == ref.name]
    remove_plugins(project, unique)
    venv.drop_from_lock(project, unique)
    for home in homes:
        venv.uninstall(project, home)
    ctx.emit({"removed": unique}, lambda: click.echo("\n".join(f"Removed `{name}`" for name in unique)))


@click.command()
@click.argument("names", nargs=-1)
@click.option("--clean", is_flag=True, help="Rebuild environments even when they are up to date.")
@click.option("-p", "--parallelism", type=click.IntRange(min=1), help="Installs at once (default: CPU count).")
@pass_context
def install(ctx: Context, names: tuple[str, ...], clean: bool, parallelism: int | None) -> None:
    """Install plugins (all, or NAMES), each in its own virtual environment, in parallel."""
    from strata.cli.install_view import run_installs

    results = run_installs(ctx, list(names), clean=clean, parallelism=parallelism)
    failed = [r for r in results if r["error"]]
    ctx.emit(results, lambda: None)
    if failed:
        from strata.errors import InstallError

        others = "the others are installed; " if len(failed) < len(results) else ""
        raise InstallError(
            f"{len(failed)} of {len(results)} plugins failed to install: {', '.join(r['name'] for r in failed)}",
            f"{others}see the message above, fix the cause and run `strata install` again",
        )


@click.command()
@click.argument("names", nargs=-1)
@click.option(
    "-u", "--update", is_flag=True, help="Resolve each plugin's pip_url again, ignoring strata.lock, and record that."
)
@pass_context
def lock(ctx: Context, names: tuple[str, ...], update: bool) -> None:
    """Record the exact versions installed for each plugin in strata.lock.

    Without --update an installed plugin keeps the versions strata.lock gave it; with --update
    its venv is built afresh from its pip_url (as `install --clean`, the lock not honoured).
    """
    from strata.cli.install_view import run_installs
    from strata.ingest import venv

    results = run_installs(ctx, list(names), clean=update, parallelism=None, quiet=ctx.json, locked=not update)
    if any(r["error"] for r in results):
        from strata.errors import InstallError

        raise InstallError(
            "some plugins could not be installed, so nothing was locked", "fix them and run `strata lock` again"
        )
    project = ctx.project()
    entries: dict[str, dict[str, Any]] = {}
    for result in results:
        env = venv.plugin_env(project, project.plugin(result["name"]))
        if env.pip_url is None or env.owner.name != result["name"]:
            continue
        entries[env.owner.name] = {
            "type": env.owner.plugin_type,
            "pip_url": env.raw_pip_url,
            "requirements": venv.freeze(env),
        }
    venv.write_lock(project, entries)

    def human() -> None:
        for locked_name, entry in entries.items():
            click.echo(f"Locked {locked_name}: {len(entry['requirements'])} packages")

    ctx.emit({n: e["requirements"] for n, e in entries.items()}, human)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--list-commands", is_flag=True, help="List PLUGIN's commands (its `commands:`) instead.")
@click.option(
    "--dump",
    type=click.Choice(["config", "catalog", "state"]),
    help="Print what the plugin would be given (config with secrets redacted) and run nothing.",
)
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Catalog file to give the extractor (as --catalog or --properties).",
)
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path), help="State file to give the extractor.")
@click.option("--refresh-catalog", is_flag=True, help="With --dump=catalog: discover again even when cached.")
@click.argument("plugin")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_context
def invoke(
    ctx: Context,
    /,
    plugin: str,
    args: tuple[str, ...],
    list_commands: bool,
    dump: str | None,
    catalog: Path | None,
    state: Path | None,
    refresh_catalog: bool,
) -> int | None:
    """Run PLUGIN's executable with its resolved config (passed as --config) and ARGS.

    PLUGIN:COMMAND runs one of its `commands:` instead: the command's executable (or the
    plugin's) with the command's args, $VAR expanded from the plugin's settings, then ARGS.
    Options go before PLUGIN; everything after it goes to the plugin.
    """
    if list_commands:
        _list_commands(ctx, plugin)
        return None
    from strata.ingest import invoke as invoking
    from strata.ingest.catalog import read_catalog_file
    from strata.ingest.runfiles import read_json_file

    project = ctx.project()
    files = {}
    if catalog is not None:
        files["catalog"] = read_catalog_file(catalog)
    if state is not None:
        files["state"] = read_json_file(state, "--state")
    if dump is not None:
        from strata.ingest.discovery import dump as dump_of

        shown = dump_of(
            project, plugin, dump, catalog=files.get("catalog"), state=files.get("state"), refresh=refresh_catalog
        )
        click.echo(json.dumps(shown, indent=2))
        return None
    return invoking.invoke(project, plugin, list(args), files)


def _list_commands(ctx: Context, plugin: str) -> None:
    from strata.ingest.commands import plugin_commands

    project = ctx.project()
    found = plugin_commands(project, project.plugin(plugin))
    rows = [
        {
            "name": c.block,
            "args": c.command.args,
            "executable": c.command.executable,
            "description": c.command.description,
        }
        for c in found.values()
    ]

    def human() -> None:
        if not rows:
            click.echo(f"`{plugin}` defines no commands")
        width = max((len(name) for name in found), default=0) + len(plugin) + 1
        for command in found.values():
            text = command.command.description or command.command.args
            click.echo(f"{command.block:<{width}}  {text}".rstrip())

    ctx.emit(rows, human)


COMMANDS = [add, remove, install, lock, invoke]
