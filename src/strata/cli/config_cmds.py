"""``strata config PLUGIN list | get | set | unset``."""

from __future__ import annotations

import json
from typing import Any

import click

from strata.cli.context import Context


@click.group()
@click.argument("plugin")
@click.pass_context
def config(click_ctx: click.Context, plugin: str) -> None:
    """Show and change PLUGIN's settings; every value says where it came from."""
    click_ctx.meta["plugin"] = plugin


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@config.command("list")
@click.pass_context
def list_(click_ctx: click.Context) -> None:
    """Every setting: value and source. Secrets are redacted."""
    from strata.project.settings import resolve

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    settings = resolve(ctx.project(), click_ctx.meta["plugin"])
    rows = [
        {
            "name": v.name,
            "value": v.shown,
            "source": v.source,
            "detail": v.detail,
            "secret": v.secret,
            **({"problem": str(v.problem)} if v.problem else {}),
        }
        for v in settings.values.values()
    ]

    def human() -> None:
        if not rows:
            click.echo(
                f"{settings.ref.name} has no settings (set one with `strata config {settings.ref.name} set KEY VALUE`)"
            )
        for v in settings.values.values():
            if v.problem is not None:
                click.echo(f"{v.name} (error: {v.problem})")
            elif v.value is None:
                click.echo(f"{v.name} (unset)")
            else:
                click.echo(f"{v.name}={_render(v.shown)} (from {v.describe()})")

    ctx.emit(rows, human)


@config.command()
@click.argument("key")
@click.pass_context
def get(click_ctx: click.Context, key: str) -> None:
    """One setting's value and source."""
    from strata.errors import SettingError
    from strata.project.settings import resolve

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    settings = resolve(ctx.project(), click_ctx.meta["plugin"])
    value = settings.values.get(key)
    if value is None:
        raise SettingError(
            f"`{settings.ref.name}` has no setting `{key}`", f"see `strata config {settings.ref.name} list`"
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
@click.argument("key")
@click.argument("value")
@click.option("--secret", is_flag=True, help="Store in .env (owner-only) instead of the project file.")
@click.pass_context
def set_(click_ctx: click.Context, key: str, value: str, secret: bool) -> None:
    """Set KEY to VALUE. Secrets always go to .env, never to the project file."""
    from strata.project import dotenv_file
    from strata.project.edit import declare_secret, set_config
    from strata.project.settings import declared_settings, is_secret, parse_value, rank_of, redact, variable_names

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    project = ctx.project()
    ref = project.plugin(click_ctx.meta["plugin"])
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


@config.command()
@click.argument("key")
@click.pass_context
def unset(click_ctx: click.Context, key: str) -> None:
    """Remove KEY from the project file (or the -e environment) and the plugin's own variables in .env."""
    from strata.project import dotenv_file
    from strata.project.edit import unset_config
    from strata.project.settings import declared_settings, own_variable_names, rank_of

    ctx: Context = click_ctx.find_object(Context)  # type: ignore[assignment]
    project = ctx.project()
    ref = project.plugin(click_ctx.meta["plugin"])
    variables = own_variable_names(project, ref, key, declared_settings(project, ref).get(key))
    removed = []
    rank = rank_of(_written_layer(ctx))
    where = unset_config(project, ref.name, key, in_environment=ctx.environment is not None)
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


def _written_layer(ctx: Context) -> str:
    """The layer ``set`` and ``unset`` edit in the project file, named as in ``SettingValue.source``."""
    return f"environment {ctx.environment}" if ctx.environment is not None else ctx.project().file_name


def _warn_if_shadowed(ctx: Context, plugin: str, key: str, rank: int) -> None:
    """Say so on stderr when a layer above the one just written decides ``key``'s value."""
    from strata.project.settings import resolve

    item = resolve(ctx.reload(), plugin).values.get(key)
    if item is not None and (item.value is not None or item.problem is not None) and item.rank > rank:
        click.echo(
            f"strata: warning: {plugin}: `{key}` is also set in {item.describe()}, which wins over what was "
            "just changed; edit or remove it there to change the value in use",
            err=True,
        )


COMMANDS = [config]
