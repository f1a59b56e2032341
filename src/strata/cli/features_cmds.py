"""``strata features list | show KEY``, ``strata graph render | push | history | diff``.

``features`` reads definitions only: it imports the project's feature modules and never opens a
store, so it loads no dataframe or database library (a test checks the module list). ``graph
render`` does the same until the store holds something: then it draws each field's staleness.
``graph push``, ``graph history`` and ``graph diff`` open a store for its snapshots table
(``graph diff`` only when one end is a snapshot, and imports the modules only when one is the
code).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from strata.features.graph import FeatureGraph
    from strata.project.project import Project
    from strata.views.graph import GraphStatus

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
    """The feature graph as a whole: render it, push snapshots of it, list them."""


def format_option(choices: list[str], help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format`` (default ``text``) among ``choices``."""
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default="text", show_default=True, help=help_text
    )


@graph.command()
@format_option(
    ["text", "mermaid", "dot", "svg", "png"],
    "text: features and fields in order; mermaid: a flowchart; dot: a Graphviz digraph; "
    "svg, png: a picture drawn by Graphviz's dot.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout (a png needs it on a terminal).",
)
@click.option("--store", "store_name", metavar="NAME", help="Store whose staleness is drawn (default: features.store).")
@click.option("--no-status", is_flag=True, help="Draw the graph only, without the store's counts.")
@pass_context
def render(ctx: Context, fmt: str, output: Path | None, store_name: str | None, no_status: bool) -> None:
    """Draw the graph with its fields; edges name the upstream fields used.

    Once the store holds samples, each field shows how many are in sync, stale (to compute)
    or failed (their last build failed), coloured green, amber and red in mermaid, dot, svg
    and png. Without samples, or with --no-status, the graph alone.
    """
    from strata.features.project import store_config
    from strata.views.graph import RENDERERS
    from strata.views.render import PICTURES, run_dot

    _check_destination(ctx, fmt, output)
    project = ctx.project()
    feature_graph = load_graph(ctx)
    status = None if no_status else _store_status(project, feature_graph, store_name)
    text = RENDERERS["dot" if fmt in PICTURES else fmt](feature_graph, status)
    if fmt == "text" and status is not None:
        text = f"store: {store_config(project, store_name).name}\n{text}"
    data = run_dot(text, fmt) if fmt in PICTURES else text.encode()
    counts = None if status is None else {key: state.to_json() for key, state in status.items()}
    if output is not None:
        _write(output, data if fmt in PICTURES or not data else data + b"\n")
        ctx.emit({"format": fmt, "output": str(output), "bytes": len(data), "status": counts}, lambda: None)
    elif ctx.json:
        ctx.emit({"format": fmt, "graph": data.decode(), "status": counts}, lambda: None)
    elif fmt == "png":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    elif data:
        click.echo(data.decode())
    elif fmt == "text":
        click.echo("no features (name the modules that define them in features.entrypoints of strata.yml)")


def _store_status(project: Project, feature_graph: FeatureGraph, store_name: str | None) -> GraphStatus | None:
    """:func:`~strata.views.graph.store_status`; a store that fails says how to draw without it."""
    from strata.errors import RuntimeFailure
    from strata.views.graph import store_status

    try:
        return store_status(project, feature_graph, store_name)
    except RuntimeFailure as exc:
        instruction = f"{exc.instruction} (or draw the graph alone: --no-status)"
        raise type(exc)(exc.reason, instruction) from exc


def _check_destination(ctx: Context, fmt: str, output: Path | None) -> None:
    """Before any work: ``dot`` is there for a picture, and a PNG goes to a file or a pipe."""
    from strata.errors import UsageError
    from strata.views.render import PICTURES, find_dot

    if fmt in PICTURES:
        find_dot()
    if fmt != "png" or output is not None:
        return
    if ctx.json:
        raise UsageError("a PNG cannot go into JSON", "write it to a file with --output FILE")
    if sys.stdout.isatty():
        raise UsageError("a PNG is binary and stdout is a terminal", "write it to a file with --output FILE")


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``; a failure as one line."""
    from strata.errors import RuntimeFailure

    try:
        path.write_bytes(data)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot write {path}: {exc.strerror or exc}", "check that its folder exists and is writable"
        ) from exc


store_option = click.option(
    "--store", "store_name", metavar="NAME", help="Store of the snapshots (default: features.store in strata.yml)."
)


@graph.command()
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Recorded with a new snapshot, e.g. --tag commit=$GIT_SHA (repeat for several).",
)
@store_option
@json_option
@pass_context
def push(ctx: Context, tags: tuple[str, ...], store_name: str | None, json_output: bool) -> None:
    """Record the project's graph as a snapshot in the store (what CD runs after a deploy).

    Pushing a graph equal to the latest snapshot adds nothing. A store with fallbacks records it
    in itself only.
    """
    from strata.errors import UsageError
    from strata.features.project import make_store, opened, store_config

    ctx.json = ctx.json or json_output
    pairs = _tags(tags)
    project = ctx.project()
    feature_graph = load_graph(ctx)
    config = store_config(project, store_name)
    if config.read_only:
        raise UsageError(
            f"store `{config.name}` is read-only (read_only: true in {project.file_name}), "
            "so no snapshot can be pushed to it",
            "push to a writable store (--store NAME)",
        )
    store = make_store(project, config.name, graph=feature_graph)
    with opened(store, config):
        pushed = store.push_graph(pairs)
    snapshot = pushed.snapshot
    data = {"store": config.name, "added": pushed.added, **snapshot.summary()}
    if pushed.added:
        text = f"pushed snapshot {snapshot.version} ({snapshot.feature_count} features) to {config.name}"
    else:
        text = f"snapshot {snapshot.version} is already the latest in {config.name}; nothing pushed"
    ctx.emit(data, lambda: click.echo(text))


@graph.command()
@store_option
@json_option
@pass_context
def history(ctx: Context, store_name: str | None, json_output: bool) -> None:
    """The snapshots pushed to the store, newest first: version, time, features, tags.

    The project's feature modules are not imported: what was pushed stays listable whatever the code.
    """
    from strata.cli.tables import table
    from strata.features.project import make_store, opened, store_config

    ctx.json = ctx.json or json_output
    project = ctx.project()
    config = store_config(project, store_name)
    store = make_store(project, config.name, read_only=True)  # the code's graph is not needed (nor imported)
    with opened(store, config):
        rows = [s.summary() for s in store.snapshots()]

    def human() -> None:
        if not rows:
            click.echo(f"no snapshots in {config.name} (push one with `strata graph push`)")
            return
        cells = [
            [r["version"], r["pushed_at"], r["features"], ", ".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))]
            for r in rows
        ]
        click.echo(table(["version", "pushed at", "features", "tags"], cells))

    ctx.emit(rows, human)


@graph.command()
@click.argument("from_", metavar="[FROM]", required=False)
@click.argument("to", metavar="[TO]", required=False)
@format_option(
    ["text", "json", "mermaid"],
    "text: each change with what it reaches; json: for machines; mermaid: a flowchart of both graphs.",
)
@store_option
@json_option
@pass_context
def diff(ctx: Context, from_: str | None, to: str | None, fmt: str, store_name: str | None, json_output: bool) -> None:
    """What changed from FROM to TO, feature by feature and field by field, and what each change reaches.

    FROM and TO are `latest` (the store's latest snapshot), `code` (the project's graph) or a
    snapshot version (a unique prefix is enough); by default FROM is `latest` and TO `code`.
    Two snapshots need no importable code.
    """
    from strata.features.diff import diff_graphs
    from strata.views.diff import counts_text, render_mermaid, render_text

    ctx.json = ctx.json or json_output or fmt == "json"
    old, new = _diff_ends(ctx, "latest" if from_ is None else from_, "code" if to is None else to, store_name)
    result = diff_graphs(old.graph, new.graph)
    if fmt == "mermaid":
        text = render_mermaid(result, old.graph, new.graph)
        ctx.emit({"format": fmt, "graph": text}, lambda: click.echo(text))
        return
    data = {**result.to_json(), "from": old.to_json(), "to": new.to_json()}

    def human() -> None:
        if not result:
            click.echo(f"no differences: {old.label} and {new.label} have the same graph")
            return
        click.echo(f"from {old.heading} to {new.heading}\n{counts_text(result)}\n\n{render_text(result)}")

    ctx.emit(data, human)


@dataclass(frozen=True)
class _End:
    """One end of a diff: the code's graph, or a pushed snapshot's."""

    graph: FeatureGraph
    store: str | None = None
    latest: bool = False

    @property
    def label(self) -> str:
        if self.store is None:
            return "the code"
        where = f"(latest in {self.store})" if self.latest else f"in {self.store}"
        return f"snapshot {self.graph.snapshot_version} {where}"

    @property
    def heading(self) -> str:
        return self.label if self.store else f"the code ({self.graph.snapshot_version})"

    def to_json(self) -> dict[str, Any]:
        source = "code" if self.store is None else "snapshot"
        return {"source": source, "store": self.store, "version": self.graph.snapshot_version}


def _diff_ends(ctx: Context, old: str, new: str, store_name: str | None) -> tuple[_End, _End]:
    """The two graphs ``graph diff`` compares; the store is opened (read-only) only for a snapshot."""
    from strata.features.project import make_store, opened, store_config

    ends: dict[str, _End] = {}
    wanted = [name for name in (old, new) if name != "code"]
    if wanted:
        project = ctx.project()
        config = store_config(project, store_name)
        store = make_store(project, config.name, read_only=True)  # pushed graphs need no code
        with opened(store, config):
            latest = store.snapshot()
            for name in wanted:
                snapshot = latest if name == "latest" else store.snapshot(name)
                ends[name] = _End(snapshot.graph(), config.name, snapshot.version == latest.version)
    if "code" in (old, new):
        ends["code"] = _End(load_graph(ctx))
    return ends[old], ends[new]


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    """``--tag KEY=VALUE`` options as a mapping; a malformed or repeated one is a usage error."""
    from strata.errors import UsageError

    pairs: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tag `{value}` is not KEY=VALUE", "write it as e.g. --tag commit=abc123")
        if key in pairs:
            raise UsageError(f"--tag `{key}` is given twice", "give each key once")
        pairs[key] = text
    return pairs


COMMANDS = [features, graph]
