"""``strata plugin list [--format text|json]``: the project's plugins, as Meltano 4's ``plugin list``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from strata.project.project import PluginRef, Project
    from strata.project.schema import Plugin

_DESCRIPTORS = {"files": "file bundle", "utilities": "utility"}
"""Meltano's name of a plugin type where it is not the section name without its ``s``."""

_MELTANO_ORDER = (
    "extractors",
    "loaders",
    "transforms",
    "orchestrators",
    "transformers",
    "files",
    "utilities",
    "mappers",
)
"""The order of Meltano's plugin types, in which ``plugin list`` prints them."""


@click.group()
def plugin() -> None:
    """The project's plugins (Meltano's `plugin` command)."""


@plugin.command("list")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A table, or Meltano's JSON rows (type, name, variant, inherit_from, custom, update, pip_url).",
)
@pass_context
def list_(ctx: Context, output_format: str) -> None:
    """Every plugin of the project with its type, variant, parent and pip_url, in Meltano's order."""
    project = ctx.project()
    refs = sorted(project.plugins(), key=lambda ref: _MELTANO_ORDER.index(ref.plugin_type))
    rows = [_listing(project, ref) for ref in refs]
    if output_format == "json" or ctx.json:
        click.echo(json.dumps(rows, indent=2))
        return
    from strata.cli.tables import table

    click.echo(
        table(
            ["TYPE", "NAME", "VARIANT", "INHERIT FROM", "CUSTOM"],
            [
                [
                    row["type"],
                    row["name"],
                    "(inherited)" if row["inherit_from"] else row["variant"],
                    row["inherit_from"] or "",
                    "yes" if row["custom"] else "",
                ]
                for row in rows
            ],
        )
    )


def _listing(project: Project, ref: PluginRef) -> dict[str, Any]:
    """Meltano's row for ``ref``: variant and pip_url come from the parent when the plugin has none.

    A plugin is custom when it carries its own definition (a ``namespace`` and no
    ``inherit_from``), and a custom plugin without a variant has Meltano's ``default`` one.
    ``update`` (the hub has a newer definition) is always false: strata does not ask a hub.
    """
    from strata.project.settings import lineage

    chain = lineage(project, ref)
    custom = [_written(project, r).namespace is not None and r.plugin.inherit_from is None for r in chain]
    variant = next((r.plugin.variant for r in chain if r.plugin.variant), None)
    return {
        "type": _DESCRIPTORS.get(ref.plugin_type, ref.plugin_type.removesuffix("s")),
        "name": ref.name,
        "variant": variant or ("default" if custom[-1] else None),
        "inherit_from": ref.plugin.inherit_from,
        "custom": custom[0],
        "update": False,
        "pip_url": next((r.plugin.pip_url for r in chain if r.plugin.pip_url), None),
    }


def _written(project: Project, ref: PluginRef) -> Plugin:
    """The entry as the project file writes it (without what its lock file adds, a namespace among it)."""
    entries: list[Plugin] = getattr(project.model.plugins, ref.plugin_type)
    return entries[ref.index] if ref.index < len(entries) else ref.plugin


COMMANDS = [plugin]
