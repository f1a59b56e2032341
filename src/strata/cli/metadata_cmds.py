"""``strata metadata copy | delete | compact``: operations on the stores named in ``stores:``.

Each command opens the stores it names (``--store``, ``--from``/``--to``; default: features.store)
and calls one method of the store API (``copy_from``, ``delete``, ``compact``), so every store
kind behaves alike. A dry run opens the store read-only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    import datetime as dt

    from strata.features.graph import FeatureGraph
    from strata.features.project import StoreConfig
    from strata.project.project import Project
    from strata.stores.base import MetadataStore

json_option = click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")
store_option = click.option(
    "--store", "store_name", metavar="NAME", help="Store to change (default: features.store in strata.yml)."
)
_DURATION = re.compile(r"(?:(\d+)([smhdw]))+")
_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@click.group()
def metadata() -> None:
    """Store operations: copy between stores, delete samples, compact history."""


def _store(
    project: Project, name: str | None, graph: FeatureGraph, *, read_only: bool = False
) -> tuple[MetadataStore, StoreConfig]:
    """The store called ``name`` (not open yet) and its settings; an unknown name is a usage error."""
    from strata.features.project import make_store, store_config

    return make_store(project, name, graph=graph, read_only=read_only), store_config(project, name)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in counts.items()) or "no features"


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


@metadata.command()
@click.argument("feature_keys", metavar="[FEATURE]...", nargs=-1)
@click.option("--from", "source_name", required=True, metavar="STORE", help="Store to copy from.")
@click.option("--to", "target_name", required=True, metavar="STORE", help="Store to copy into.")
@json_option
@pass_context
def copy(ctx: Context, feature_keys: tuple[str, ...], source_name: str, target_name: str, json_output: bool) -> None:
    """Copy features (default: all) with their history from one store to another.

    Rows the target holds already are skipped, so copying again adds only what is new. The
    copied rows take the target's sequence numbers; its sync records stay valid.
    """
    from strata.cli.progress import reporting
    from strata.errors import UsageError
    from strata.features.project import load_graph, opened

    ctx.json = ctx.json or json_output
    project = ctx.project()
    graph = load_graph(project)
    keys = [str(graph.spec(k).key) for k in feature_keys]
    source, source_config = _store(project, source_name, graph, read_only=True)
    target, target_config = _store(project, target_name, graph)
    if source_config.name == target_config.name:
        raise UsageError(f"--from and --to both name `{source_name}`", "copy between two different stores")
    with opened(source, source_config), opened(target, target_config), reporting(ctx, "metadata") as report:
        copied = target.copy_from(source, keys or None, report=report)
    total = sum(copied.values())
    data = {"from": source_config.name, "to": target_config.name, "copied": copied}
    text = f"copied {_rows(total)} from {source_config.name} to {target_config.name}: {_counts(copied)}"
    ctx.emit(data, lambda: click.echo(text))


@metadata.command()
@click.argument("feature_key", metavar="FEATURE")
@click.option(
    "--id",
    "ids",
    multiple=True,
    metavar="VALUE[,VALUE…]",
    help="A sample to delete (repeat for several; default: every sample). Several id columns: "
    "their values comma-separated in the order `strata features show` lists them, a value holding a "
    'comma or a quote in double quotes (`"Doe, John",3`; "" for a quote in it); an expansion\'s '
    "parent ids alone take all its children.",
)
@click.option("--hard", is_flag=True, help="Erase the rows and their history (default: soft, tombstones).")
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
@click.option(
    "--downstream",
    is_flag=True,
    help="Also delete (soft, or --hard) the rows downstream features derived from these samples, "
    "following identity and expansion lineage (default: their next resolve lists them as removed).",
)
@click.option("--yes", is_flag=True, help="Confirm a hard delete of every sample (no --id).")
@store_option
@json_option
@pass_context
def delete(
    ctx: Context,
    feature_key: str,
    ids: tuple[str, ...],
    hard: bool,
    dry_run: bool,
    downstream: bool,
    yes: bool,
    store_name: str | None,
    json_output: bool,
) -> None:
    """Delete samples of a feature: soft (tombstones, history kept) unless --hard.

    Downstream features keep their rows of the deleted samples until their next resolve lists
    them as removed (`strata status`), which `strata build` applies; --downstream deletes them now.
    """
    from strata.errors import UsageError
    from strata.features.project import load_graph, opened

    ctx.json = ctx.json or json_output
    project = ctx.project()
    graph = load_graph(project)
    key = graph.spec(feature_key).key
    if hard and not ids and not yes and not dry_run:
        raise UsageError(f"a hard delete of every sample of `{key}` erases it for good", "add --yes, or pick --id")
    store, config = _store(project, store_name, graph, read_only=dry_run)
    with opened(store, config):
        frame = None if not ids else _id_frame(store, key, ids)
        picked = frame if frame is not None else _every_sample(store, key, hard=hard)
        derived = {
            str(down): store.delete_preview(down, picked)
            for down in graph.downstream(key)
            if set(picked.columns) <= set(store.plan(down).id_columns)
        }
        if dry_run:
            deleted = store.delete_preview(key, picked)
        else:
            deleted = store.delete(key, picked, soft=not hard) if len(picked) else 0
            if downstream:
                derived = store.delete_downstream(key, picked, soft=not hard)
    data = {
        "store": config.name,
        "feature": str(key),
        "hard": hard,
        "dry_run": dry_run,
        "deleted": deleted,
        "downstream": derived,
        "with_downstream": downstream,
    }
    ctx.emit(data, lambda: click.echo(_delete_text(data)))


def _delete_text(data: dict[str, Any]) -> str:
    how = "hard: erased with their history" if data["hard"] else "soft: tombstones, history kept"
    verb = "would delete" if data["dry_run"] else "deleted"
    lines = [f"{verb} {data['deleted']} samples of {data['feature']} in {data['store']} ({how})"]
    if data["downstream"] and data["with_downstream"]:
        lines.append(f"{verb} downstream too: {_counts(data['downstream'])}")
    elif data["downstream"]:
        lines.append(f"downstream, removed by their next resolve (strata build): {_counts(data['downstream'])}")
    return "\n".join(lines)


def _id_values(value: str) -> list[str]:
    """One ``--id`` of several id columns: its comma-separated values, CSV quotes undone (``"Doe, John",3``)."""
    import csv

    from strata.errors import UsageError

    try:
        (row,) = csv.reader([value], strict=True)
    except csv.Error as exc:
        reason = "has a quote that is not closed" if "end of data" in str(exc) else f"is not CSV ({exc})"
        raise UsageError(
            f"--id {value} {reason}", 'quote a value holding a comma or a quote in double quotes, "" for a quote in it'
        ) from exc
    return row or [""]


def _id_frame(store: MetadataStore, key: Any, values: tuple[str, ...]) -> Any:
    """The ``--id`` values as a frame of the feature's id columns (or an expansion's parent ids), typed as stored."""
    import polars as pl

    from strata.errors import UsageError

    plan = store.plan(key)
    columns = list(plan.id_columns)
    rows = [[value] if len(columns) == 1 else _id_values(value) for value in values]
    if plan.child_ids and all(len(row) == len(plan.resolve_ids) for row in rows):
        columns = list(plan.resolve_ids)
    for value, row in zip(values, rows, strict=True):
        if len(row) != len(columns):
            raise UsageError(
                f"--id {value} gives {len(row)} value(s); `{key}` has id columns {', '.join(plan.id_columns)}",
                "give one value per id column, comma-separated in that order",
            )
    frame = pl.DataFrame([list(col) for col in zip(*rows, strict=True)], schema=columns, orient="col")
    stored = store.read(key, columns=columns, include_deleted=True, lazy=True).head(0).collect(backend="polars")
    schema = {c: t for c, t in stored.to_native().schema.items() if t != pl.Null}
    try:
        return frame.cast(schema)
    except pl.exceptions.InvalidOperationError as exc:
        wanted = ", ".join(f"{c} ({t})" for c, t in schema.items())
        raise UsageError(
            f"--id values do not fit the id columns of `{key}`: {wanted}", "give values of those types"
        ) from exc


def _every_sample(store: MetadataStore, key: Any, *, hard: bool) -> Any:
    """Every sample's ids: the live ones for a soft delete, every stored one for a hard delete."""
    plan = store.plan(key)
    columns = list(plan.id_columns)
    frame = store.read(key, columns=columns, feature_version="all" if hard else None)
    return frame.to_native().unique()


@metadata.command()
@click.argument("feature_keys", metavar="[FEATURE]...", nargs=-1)
@click.option("--keep", type=click.IntRange(min=0), help="Keep the N newest superseded rows per sample.")
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    help="Drop history superseded longer ago than this (30d, 12h, 2w, 1d12h), and tombstones as old.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@store_option
@json_option
@pass_context
def compact(
    ctx: Context,
    feature_keys: tuple[str, ...],
    keep: int | None,
    older_than: str | None,
    dry_run: bool,
    store_name: str | None,
    json_output: bool,
) -> None:
    """Drop history the retention does not ask for; every latest row stays.

    Give one retention: --keep N or --older-than DURATION.
    """
    from strata.cli.progress import reporting
    from strata.errors import UsageError
    from strata.features.project import load_graph, opened

    ctx.json = ctx.json or json_output
    if (keep is None) == (older_than is None):
        raise UsageError("compact needs one retention", "pass --keep N or --older-than DURATION (not both)")
    age = None if older_than is None else parse_duration(older_than)
    project = ctx.project()
    graph = load_graph(project)
    keys = [str(graph.spec(k).key) for k in feature_keys]
    store, config = _store(project, store_name, graph, read_only=dry_run)
    with opened(store, config), reporting(ctx, "metadata") as report:
        dropped = store.compact(keys or None, keep=keep, older_than=age, dry_run=dry_run, report=report)
    data = {"store": config.name, "dry_run": dry_run, "dropped": dropped}
    verb = "would drop" if dry_run else "dropped"
    text = f"{verb} {_rows(sum(dropped.values()))} from {config.name}: {_counts(dropped)}"
    ctx.emit(data, lambda: click.echo(text))


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``2w``, ``1d12h``, ``90m``, ``45s`` as a duration; a one-line usage error otherwise."""
    import datetime as dt

    from strata.errors import UsageError

    if not _DURATION.fullmatch(text.strip()):
        raise UsageError(f"`{text}` is not a duration", "write a number and a unit (s, m, h, d, w), e.g. 30d or 1d12h")
    parts: dict[str, int] = {}
    for number, unit in _PART.findall(text):
        parts[_UNITS[unit]] = parts.get(_UNITS[unit], 0) + int(number)
    return dt.timedelta(**parts)


COMMANDS = [metadata]
