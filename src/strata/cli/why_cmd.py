"""``strata why FEATURE ID... [--store NAME]``: one sample's lineage, field by field, and why it is stale."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from strata.features.project import StoreConfig
    from strata.stores.base import MetadataStore
    from strata.views.why import Cause, FieldWhy, Link, Node, Why

SHORT = 12
"""Characters of a data version shown (``--json`` has them whole)."""


@click.command()
@click.argument("feature_key", metavar="FEATURE")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@click.option("--store", "store_name", metavar="NAME", help="Store to ask (default: features.store in strata.yml).")
@click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")
@pass_context
def why(ctx: Context, feature_key: str, ids: tuple[str, ...], store_name: str | None, json_output: bool) -> None:
    """Why a sample of FEATURE is (or is not) stale: its lineage from the root features down.

    Each ID is one sample: its value for a feature of one id column (`3`), the values of
    several id columns comma-separated in their order (`3,7`, as `strata features show` lists
    them), or named (`sample_uid=3,frame=7`, each id column once). A value holding a comma or
    a quote goes in double quotes, CSV-style, with "" for a quote in it: `'path="/a,b.html"'`
    or `'s1,"/a,b.html"'` (single quotes for the shell). For every feature on the way: the stored data
    version of each field, the one the code and upstreams now give, and the cause of every
    difference (a code_version, an upstream field and the upstream samples behind it). A root
    loaded by target-strata shows its stream, the record's key and the run that last changed
    each field. Reads only.
    """
    from strata.features.project import load_graph, make_store, store_config
    from strata.views.graph import failures
    from strata.views.why import parse_ids
    from strata.views.why import why as lookup

    ctx.json = ctx.json or json_output
    project = ctx.project()
    graph = load_graph(project)
    key = graph.spec(feature_key).key
    config = store_config(project, store_name)
    samples = parse_ids(ids, graph.spec(key).id_columns)
    store = make_store(project, store_name, graph=graph, read_only=True)
    with _opened(store, config):
        found = lookup(store, key, samples, failures=failures(project, config.name))
    found = type(found)(found.feature, config.name, found.samples)
    ctx.emit(found.to_json(), lambda: click.echo(render(found)))


@contextlib.contextmanager
def _opened(store: MetadataStore, config: StoreConfig) -> Iterator[MetadataStore]:
    """:func:`~strata.features.project.opened`; a store file missing or no database is bad input (exit 2).

    ``why`` only reads: such a file will not open on retry, unlike one another process holds
    locked, or a server out of reach (exit 1, as everywhere). A store with fallbacks that has no
    file yet reads through to them, as ``status`` does.
    """
    from pathlib import Path

    from strata.errors import RuntimeFailure, UsageError
    from strata.features.project import opened

    path = config.path
    if path is not None:
        store._check_place(path)  # noqa: SLF001 - a path no file can be at says so first
    if path is not None and str(path) != ":memory:" and not Path(path).exists() and not store.fallbacks:
        raise UsageError(
            f"store `{config.name}` has no database at {path}, so it holds no samples yet",
            "load or build into it first, or name another store with --store",
        )
    try:
        with opened(store, config) as ready:
            yield ready
    except RuntimeFailure as exc:
        if path is None or type(exc) is not RuntimeFailure or "lock" in str(exc).lower():
            raise
        raise UsageError(exc.reason, "check that it is a database of the store's type") from exc


# -- text --------------------------------------------------------------------------------


def render(found: Why) -> str:
    """The lineage of each asked sample for people: roots first, each field with its versions and causes."""
    from strata.views.why import behind_text

    blocks = []
    for sample in found.samples:
        behind = behind_text((str(n.feature), n.status) for n in sample.nodes[:-1])
        note = f"; upstream not in sync: {behind}" if behind else ""
        lines = [f"{found.feature} {_ids(sample.ids)}: {sample.status}{note} (store {found.store})"]
        for node in sample.nodes:
            lines += list(_node_lines(node))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _node_lines(node: Node) -> Iterator[str]:
    head = [f"{node.feature} {_ids(node.ids)}", node.status]
    if node.written_at:
        head.append(f"written {_local(node.written_at)}")
    if node.held_by:
        head.append(f"row read from {node.held_by}")
    if node.upstreams:
        head.append("from " + ", ".join(_link(link) for link in node.upstreams))
    yield "  " + " · ".join(head)
    for link in node.upstreams:
        if len(link.ids) < link.total:
            followed = f"followed {len(link.ids)} of the {link.total} samples of {link.feature}"
            yield f"    ({followed}, those behind a change first)"
    if node.source is not None:
        yield f"    stream {node.source.stream}, record key {_ids(node.source.key)}"
    for cause in node.causes:
        yield f"    <- {cause.text}"
    width = max((len(f.name) for f in node.fields), default=0)
    for field in node.fields:
        yield f"    {field.name.ljust(width)}  {_versions(field)}"
        for cause in field.causes:
            yield f"    {' ' * width}  <- {_cause(cause)}"


def _versions(field: FieldWhy) -> str:
    stored, expected = _short(field.stored), _short(field.expected)
    data = stored if field.stored == field.expected else f"{stored} -> {expected}"
    code = field.code_version or "none"
    code += "" if field.code_version == field.expected_code_version else f" -> {field.expected_code_version}"
    parts = [data, f"code {code}"]
    if field.run is not None:
        at = f" at {_local(field.changed_at)}" if field.changed_at else ""
        parts.append(f"changed by run {field.run[:8]}{at}")
    return "  ".join(parts)


def _cause(cause: Cause) -> str:
    if cause.kind == "input" and (cause.stored or cause.now):
        return f"{cause.text}: {_short(cause.stored)} -> {_short(cause.now)}"
    return cause.text


def _link(link: Link) -> str:
    if link.lineage == "aggregation":
        return f"{link.feature} (aggregation of {link.total} sample{'' if link.total == 1 else 's'})"
    return f"{link.feature} ({link.lineage})"


def _local(stamp: str) -> str:
    """A stored time (ISO 8601, UTC) in the machine's time zone, as ``strata runs list`` shows times."""
    import datetime as dt

    from strata.history.shown import local_time

    try:
        at = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return local_time(at if at.tzinfo else at.replace(tzinfo=dt.UTC))


def _short(version: str | None) -> str:
    return "none" if version is None else version[:SHORT]


def _ids(ids: Mapping[str, Any]) -> str:
    from strata.views.why import id_word

    return id_word(ids)


COMMANDS = [why]
