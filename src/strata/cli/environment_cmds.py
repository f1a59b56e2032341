"""``strata environment list | add | remove``, as Meltano 4 has them."""

from __future__ import annotations

import click

from strata.cli.context import Context, pass_context


@click.group()
def environment() -> None:
    """List, add and remove the project's environments."""


@environment.command("list")
@pass_context
def list_(ctx: Context) -> None:
    """The environments defined in the project file, one a line."""
    names = [env.name for env in ctx.project().model.environments]
    ctx.emit(names, lambda: click.echo("".join(f"{name}\n" for name in names), nl=False))


@environment.command()
@click.argument("name")
@pass_context
def add(ctx: Context, name: str) -> None:
    """Add environment NAME (an empty `- name: NAME` under `environments:`)."""
    from strata.project.edit import add_environment

    add_environment(ctx.project(), name)
    ctx.emit({"name": name, "added": True}, lambda: click.echo(f"Created new environment '{name}'"))


@environment.command()
@click.argument("name")
@pass_context
def remove(ctx: Context, name: str) -> None:
    """Remove environment NAME and the config it holds."""
    from strata.project.edit import remove_environment

    remove_environment(ctx.project(), name)
    ctx.emit({"name": name, "removed": True}, lambda: click.echo(f"Removed environment '{name}'"))


COMMANDS = [environment]
