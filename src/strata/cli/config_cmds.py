"""``strata config list | get | set | unset | print | test PLUGIN …`` (Meltano 4), or ``config PLUGIN list …``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context

if TYPE_CHECKING:
    from collections.abc import Iterable

    from strata.project.project import PluginRef, Project
    from strata.project.settings import SettingValue


class _EitherOrder(click.Group):
    """Takes the verb first, as Meltano 4 does (``config list PLUGIN``), or the plugin first, as before.

    The first word after ``config`` decides: one of the verbs makes it Meltano 4's form (a plugin
    named like a verb is not realistic), and the plugin name is moved in front of the verb.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Put the plugin in front of the verb when the verb comes first."""
        if args and args[0] in self.commands:
            args = _plugin_first(self.commands[args[0]], args[0], args[1:])
        return super().parse_args(ctx, args)


def _plugin_first(command: click.Command, verb: str, rest: list[str]) -> list[str]:
    """``list --x PLUGIN …`` -> ``PLUGIN list --x …``: the plugin is the first argument that is not an option."""
    takes_value = {name for p in command.params if isinstance(p, click.Option) and not p.is_flag for name in p.opts}
    i = 0
    while i < len(rest):
        if not rest[i].startswith("-"):
            return [rest[i], verb, *rest[:i], *rest[i + 1 :]]
        i += 2 if rest[i] in takes_value else 1
    if any(arg in {"-h", "--help"} for arg in rest):
        return ["PLUGIN", verb, "--help"]
    from strata.errors import UsageError

    raise UsageError(f"`strata config {verb}` needs a plugin", f"run `strata config {verb} PLUGIN`")


@click.group(cls=_EitherOrder)
@click.argument("plugin")
@click.pass_context
def config(click_ctx: click.Context, plugin: str) -> None:
    """Show and change PLUGIN's settings; every value says where it came from.

    Meltano 4's order (`strata config list PLUGIN`, `strata config set PLUGIN KEY VALUE`) and the
    older one (`strata config PLUGIN list`, `strata config PLUGIN set KEY VALUE`) both work.
    """
    click_ctx.meta["plugin"] = plugin


def _is_project(project: Project, name: str) -> bool:
    """Whether ``config set|unset NAME`` means the project's settings: ``meltano``, unless a plugin has that name."""
    from strata.project.meltano_settings import PROJECT

    return name == PROJECT and all(ref.name != PROJECT for ref in project.plugins())


def _plugin_types() -> dict[str, str]:
    """Meltano's ``--plugin-type`` values (singular or plural; ``transform``, ``mapping`` too) -> section."""
    from strata.project.schema import ADDABLE_TYPES

    words = {**ADDABLE_TYPES, "transform": "transforms", "mapping": "mappers", "mappings": "mappers"}
    return {**words, **{section: section for section in words.values()}}


_PLUGIN_TYPES = _plugin_types()
"""Meltano's ``--plugin-type`` values and the section of the project file each one means."""

plugin_type_option = click.option(
    "--plugin-type",
    type=click.Choice(list(_PLUGIN_TYPES)),
    callback=lambda _ctx, _param, value: _PLUGIN_TYPES.get(value) if value else None,
    help="The plugin's type, when plugins of different types share its name (as in Meltano).",
)


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@config.command("list")
@click.option(
    "--extras", is_flag=True, help="List only the plugin's extras (`_select`, `_metadata` …), as Meltano does."
)
@plugin_type_option
@click.pass_context
def list_(click_ctx: click.Context, extras: bool, plugin_type: str | None) -> None:
    """Every setting: value and source. Secrets are redacted."""
    from strata.project.settings import resolve

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    settings = resolve(ctx.project(), click_ctx.meta["plugin"], plugin_type=plugin_type)
    if extras:
        _list_extras(ctx, settings.ref)
        return
    rows = _rows(settings.values.values())

    def human() -> None:
        if not rows:
            click.echo(
                f"{settings.ref.name} has no settings (set one with `strata config set {settings.ref.name} KEY VALUE`)"
            )
        _echo_values(settings.values.values())

    ctx.emit(rows, human)


def _rows(values: Iterable[SettingValue]) -> list[dict[str, Any]]:
    """``config list --json`` rows."""
    return [
        {
            "name": v.name,
            "value": v.shown,
            "source": v.source,
            "detail": v.detail,
            "secret": v.secret,
            **({"problem": str(v.problem)} if v.problem else {}),
        }
        for v in values
    ]


def _echo_values(values: Iterable[SettingValue]) -> None:
    """``name=value (from source)`` lines, ``(unset)`` or ``(error: …)``."""
    for v in values:
        if v.problem is not None:
            click.echo(f"{v.name} (error: {v.problem})")
        elif v.value is None:
            click.echo(f"{v.name} (unset)")
        else:
            click.echo(f"{v.name}={_render(v.shown)} (from {v.describe()})")


def _list_extras(ctx: Context, ref: PluginRef) -> None:
    """Every extra of ``ref`` (Meltano's ``config list --extras --all``), custom ones and object leaves included."""
    from strata.project.extras import resolve_extras

    values = resolve_extras(ctx.project(), ref).values()

    def human() -> None:
        if not values:
            click.echo(f"{ref.name} is one of the {ref.plugin_type}, which have no extras")
        _echo_values(values)

    ctx.emit(_rows(values), human)


@config.command()
@click.argument("key")
@plugin_type_option
@click.pass_context
def get(click_ctx: click.Context, key: str, plugin_type: str | None) -> None:
    """One setting's value and source."""
    from strata.errors import SettingError
    from strata.project.settings import resolve

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    settings = resolve(ctx.project(), click_ctx.meta["plugin"], plugin_type=plugin_type)
    value = _extra_value(ctx.project(), settings.ref, key) if key.startswith("_") else settings.values.get(key)
    if value is None:
        raise SettingError(
            f"`{settings.ref.name}` has no setting `{key}`", f"see `strata config list {settings.ref.name}`"
        )
    if value.problem is not None:
        raise value.problem
    ctx.emit(
        {"name": key, "value": value.shown, "source": value.source, "detail": value.detail, "secret": value.secret},
        lambda: click.echo(
            f"{key}={_render(value.shown)} (from {value.describe()})" if value.value is not None else f"{key} (unset)"
        ),
    )


@config.command("set")
@click.argument("words", metavar="KEY...", nargs=-1, required=True)
@click.argument("value")
@click.option("--secret", is_flag=True, help="Store in .env (owner-only) instead of the project file.")
@click.pass_context
def set_(click_ctx: click.Context, words: tuple[str, ...], value: str, secret: bool) -> None:
    """Set KEY to VALUE. Secrets always go to .env, never to the project file.

    KEY is dotted (`a.b`) or, as Meltano takes it, in words (`a b`).
    """
    key = ".".join(words)
    from strata.project import dotenv_file
    from strata.project.edit import declare_secret, set_config
    from strata.project.settings import declared_settings, is_secret, rank_of, redact, variable_names
    from strata.project.values import parse_value

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    project = ctx.project()
    if _is_project(project, click_ctx.meta["plugin"]):
        from strata.project.meltano_settings import set_setting

        stored = set_setting(project, key, value)
        ctx.emit({"name": key, "stored_in": stored}, lambda: click.echo(f"meltano: {key} stored in {stored}"))
        return
    ref = project.plugin(click_ctx.meta["plugin"])
    if key.startswith("_"):
        _set_extra(ctx, ref, key, value, secret=secret)
        return
    declared = declared_settings(project, ref).get(key)
    parsed = parse_value(value, declared.kind if declared else None, f"`{key}`")
    if secret or is_secret(key, declared):
        var = variable_names(project, ref, key, declared)[0]
        previous = project.dotenv.get(var)
        dotenv_file.set_value(project.dotenv_path, var, value if isinstance(parsed, str) else json.dumps(parsed))
        try:
            if declared is None:
                declare_secret(project, ref.name, key)
        except BaseException:
            if previous is None:
                dotenv_file.unset_value(project.dotenv_path, var)
            else:
                dotenv_file.set_value(project.dotenv_path, var, previous)
            raise
        where, rank = f".env ({var})", rank_of(".env")
        shown: Any = "(redacted)"
    else:
        where = set_config(project, ref.name, key, parsed, in_environment=ctx.environment is not None)
        rank = rank_of(_written_layer(ctx))
        shown = redact(parsed)
    ctx.emit(
        {"name": key, "value": shown, "stored_in": where},
        lambda: click.echo(f"{ref.name}: {key}={_render(shown)} stored in {where}"),
    )
    _warn_if_shadowed(ctx, ref.name, key, rank)


def _set_extra(ctx: Context, ref: PluginRef, key: str, value: str, *, secret: bool) -> None:
    """``config set PLUGIN _select VALUE``: checked against the extra's kind, written as Meltano writes it."""
    from strata.errors import UsageError
    from strata.project import extras
    from strata.project.edit import set_extra
    from strata.project.settings import rank_of

    extra, path = extras.find(ref.plugin_type, key, extras.custom_roots(ctx.project(), ref))
    if secret:
        raise UsageError(f"`{extra.name}` is an extra, never a secret", "drop --secret")
    parsed = extras.parse(extra, path, value)
    if extra.name == "_select":
        from strata.ingest.catalog import Rule

        for rule in parsed:
            Rule.parse(rule)
    where = set_extra(ctx.project(), ref.name, key, parsed, in_environment=ctx.environment is not None)
    ctx.emit(
        {"name": key, "value": parsed, "stored_in": where},
        lambda: click.echo(f"{ref.name}: {key}={_render(parsed)} stored in {where}"),
    )
    _warn_if_shadowed(ctx, ref.name, key, rank_of(_written_layer(ctx)))


@config.command()
@click.argument("words", metavar="KEY...", nargs=-1, required=True)
@click.pass_context
def unset(click_ctx: click.Context, words: tuple[str, ...]) -> None:
    """Remove KEY from the project file (or the -e environment) and the plugin's own variables in .env.

    KEY is dotted (`a.b`) or, as Meltano takes it, in words (`a b`).
    """
    key = ".".join(words)
    from strata.project import dotenv_file
    from strata.project.edit import unset_config
    from strata.project.settings import declared_settings, own_variable_names, rank_of

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    project = ctx.project()
    if _is_project(project, click_ctx.meta["plugin"]):
        from strata.project.meltano_settings import unset_setting

        gone = unset_setting(project, key)
        ctx.emit(
            {"name": key, "removed_from": gone},
            lambda: click.echo(
                f"meltano: {key} removed from {', '.join(gone)}" if gone else f"meltano: {key} was not set"
            ),
        )
        return
    ref = project.plugin(click_ctx.meta["plugin"])
    in_environment = ctx.environment is not None
    if key.startswith("_"):
        from strata.project import extras
        from strata.project.edit import unset_extra

        extra, _ = extras.find(ref.plugin_type, key, extras.custom_roots(project, ref))
        variables = extras.variable_names(project, ref, extra) if "." not in key else []
        where = unset_extra(project, ref.name, key, in_environment=in_environment)
    else:
        variables = own_variable_names(project, ref, key, declared_settings(project, ref).get(key))
        where = unset_config(project, ref.name, key, in_environment=in_environment)
    removed = []
    rank = rank_of(_written_layer(ctx))
    if where is not None:
        removed.append(where)
    for var in variables:
        if dotenv_file.unset_value(project.dotenv_path, var):
            removed.append(f".env ({var})")
            rank = rank_of(".env")
    ctx.emit(
        {"name": key, "removed_from": removed},
        lambda: click.echo(
            f"{ref.name}: {key} removed from {', '.join(removed)}" if removed else f"{ref.name}: {key} was not set"
        ),
    )
    _warn_if_shadowed(ctx, ref.name, key, rank)


@config.command("print")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "env"]),
    default="json",
    show_default=True,
    help="JSON object, or the variables the plugin gets (NAME='value' lines).",
)
@plugin_type_option
@click.pass_context
def print_(click_ctx: click.Context, output_format: str, plugin_type: str | None) -> None:
    """The configuration the plugin gets, as `meltano config print` shows it; secrets are redacted."""
    from strata.project.dotenv_file import line_of
    from strata.project.settings import resolve

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    settings = resolve(ctx.project(), click_ctx.meta["plugin"], plugin_type=plugin_type)
    if output_format == "env" and not ctx.json:
        for name, value in settings.as_env(redacted=True).items():
            click.echo(line_of(name, value))
        return
    data = settings.printed()
    ctx.emit(data, lambda: click.echo(json.dumps(data, indent=2, default=str)))


def _extra_value(project: Project, ref: PluginRef, key: str) -> SettingValue | None:
    """Extra ``key`` of ``ref`` as resolved (None when the plugin's type has no such extra)."""
    from strata.project.extras import resolve_extras

    return resolve_extras(project, ref).get(key)


@config.command("test")
@click.pass_context
def test_(click_ctx: click.Context) -> None:
    """Check that the extractor starts and emits its first RECORD with its resolved config.

    It runs as a run starts it (config, catalog with the selection), is stopped at its first
    RECORD or BATCH message (its whole process group), and `Plugin configuration is valid` is
    printed; otherwise the error says why, with its last stderr lines (secrets redacted). Exit 1.
    """
    from strata.ingest.config_check import check_extractor

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    name = click_ctx.meta["plugin"]
    check_extractor(ctx.project(), name)
    ctx.emit({"plugin": name, "valid": True}, lambda: click.echo("Plugin configuration is valid"))


def _written_layer(ctx: Context) -> str:
    """The layer ``set`` and ``unset`` edit in the project file, named as in ``SettingValue.source``."""
    return f"environment {ctx.environment}" if ctx.environment is not None else ctx.project().file_name


def _warn_if_shadowed(ctx: Context, plugin: str, key: str, rank: int) -> None:
    """Say so on stderr when a layer above the one just written decides ``key``'s value."""
    from strata.project.settings import resolve

    project = ctx.reload()
    if key.startswith("_"):
        item = _extra_value(project, project.plugin(plugin), key.split(".", 1)[0])
    else:
        item = resolve(project, plugin).values.get(key)
    if item is not None and (item.value is not None or item.problem is not None) and item.rank > rank:
        click.echo(
            f"strata: warning: {plugin}: `{key}` is also set in {item.describe()}, which wins over what was "
            "just changed; edit or remove it there to change the value in use",
            err=True,
        )


COMMANDS = [config]
