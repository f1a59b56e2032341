"""``strata features list | show KEY`` and ``strata graph render``.

These read definitions only: they import the project's feature modules and never open a store,
so they load no dataframe or database library (a test checks the module list).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from strata.features.graph import FeatureGraph

json_option = click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")


def load_graph(ctx: Context) -> FeatureGraph:
    """The project's feature graph (``features.entrypoints``)."""
    from strata.features.project import load_graph as load

    return load(ctx.project())


@click.group()
def features() -> None:
    """Feature definitions (features.entrypoints in strata.yml)."""


@features.command("list")
@json_option
@pass_context
def list_(ctx: Context, json_output: bool) -> None:
    """Every feature: key, fields, upstreams, version (upstreams first)."""
    from strata.cli.tables import table
    from strata.views.graph import summary

    ctx.json = ctx.json or json_output
    graph = load_graph(ctx)
    rows = [summary(graph, key) for key in graph.topological_order()]

    def human() -> None:
        if not rows:
            click.echo("no features (name the modules that define them in features.entrypoints of strata.yml)")
            return
        click.echo(
            table(
                ["feature", "fields", "upstreams", "version"],
                [
                    [r["key"], ", ".join(r["fields"]), ", ".join(r["upstreams"]) or "-", r["feature_version"]]
                    for r in rows
                ],
            )
        )

    ctx.emit(rows, human)


@features.command()
@click.argument("key")
@json_option
@pass_context
def show(ctx: Context, key: str, json_output: bool) -> None:
    """One feature: ids, upstreams, fields with their inputs and versions."""
    from strata.views.graph import describe

    ctx.json = ctx.json or json_output
    graph = load_graph(ctx)
    data = describe(graph, graph.spec(key).key)
    ctx.emit(data, lambda: click.echo(_show_text(data)))


def _show_text(data: dict[str, Any]) -> str:
    lines = [data["key"]]
    if data["description"]:
        lines.append(f"  {data['description']}")
    lines += [
        f"  class:       {data['class']}",
        f"  id columns:  {', '.join(data['id_columns'])}",
        f"  version:     {data['feature_version']}",
    ]
    if data["deps"]:
        lines.append("  upstreams:")
        for dep in data["deps"]:
            lineage = dep["lineage"] + (f" on {', '.join(dep['on'])}" if dep["on"] else "")
            lines.append(f"    {dep['feature']}  ({lineage}{', optional' if dep['optional'] else ''})")
    else:
        lines.append("  upstreams:   none (root feature: its samples come from the caller)")
    lines.append("  fields:")
    for field in data["fields"]:
        lines.append(f"    {field['key']}  code_version {field['code_version']}  version {field['field_version']}")
        if field["inputs"]:
            lines.append(f"      <- {', '.join(field['inputs'])}")
    if data["downstream"]:
        lines.append(f"  downstream:  {', '.join(data['downstream'])}")
    return "\n".join(lines)


@click.group()
def graph() -> None:
    """The feature graph as a whole (render)."""


@graph.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot"]),
    default="text",
    show_default=True,
    help="text: features and fields in order; mermaid: a flowchart; dot: a Graphviz digraph.",
)
@pass_context
def render(ctx: Context, fmt: str) -> None:
    """Draw the graph with its fields; edges name the upstream fields used."""
    from strata.views.graph import RENDERERS

    feature_graph = load_graph(ctx)
    text = RENDERERS[fmt](feature_graph)
    if ctx.json:
        ctx.emit({"format": fmt, "graph": text}, lambda: None)
    elif text:
        click.echo(text)
    elif fmt == "text":
        click.echo("no features (name the modules that define them in features.entrypoints of strata.yml)")


COMMANDS = [features, graph]
