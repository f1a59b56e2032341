"""``strata migrations generate | apply | status | list``: what a graph change asks of the stored samples.

See :mod:`strata.features.migrations` for the files and the progress a store records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context
from strata.cli.features_cmds import json_option, load_graph, store_option

if TYPE_CHECKING:
    from strata.features.graph import FeatureGraph
    from strata.features.migrations import Applied, Loaded, Progress, Stored
    from strata.project.project import Project


@click.group()
def migrations() -> None:
    """Migrations of the stored samples after a graph change: generate, review, apply."""


def _loaded(ctx: Context) -> tuple[Project, FeatureGraph, Loaded]:
    """The project, the code's graph, and its migration files (checked, the graph's part in ``apply``, ``status``)."""
    from strata.features.migrations import load

    project = ctx.project()
    loaded = load(project.root)
    return project, load_graph(ctx), loaded


@migrations.command()
@click.option("--name", default="graph_change", show_default=True, help="The name after the number in the id.")
@click.option(
    "--reconcile",
    "reconcile",
    multiple=True,
    metavar="FEATURE[.FIELD]",
    help="Reconcile this feature (or field) instead of recomputing it: results would not change (repeatable).",
)
@store_option
@json_option
@pass_context
def generate(ctx: Context, name: str, reconcile: tuple[str, ...], store_name: str | None, json_output: bool) -> None:
    """Write migrations/<id>.yaml for the change from the store's latest snapshot to the code.

    Every field with a new version gets `recompute` (its samples stay stale for `strata build`)
    unless named by --reconcile; review the file, then `strata migrations apply`.
    """
    from strata.errors import SnapshotNotFoundError
    from strata.features.diff import diff_graphs
    from strata.features.migrations import (
        check_applicable,
        check_chain,
        check_pending,
        new_migration,
        operations,
        pending,
        write,
    )

    ctx.json = ctx.json or json_output
    project, graph, loaded = _loaded(ctx)
    progress, stored = _store_state(project, store_name, loaded)
    if stored.latest is None:
        raise SnapshotNotFoundError(
            f"no graph was pushed to {stored.name}, so there is nothing to migrate from",
            "push the deployed graph first with `strata graph push`",
        )
    check_pending(loaded, progress.applied, graph, stored.snapshots)
    todo = pending(loaded, progress, None)
    if todo and todo[-1].to_snapshot not in stored.snapshots:  # the new one could not start where they lead
        check_applicable(loaded, todo, progress, stored, graph.snapshot_version)
        text = f"nothing to migrate: {todo[-1].id} already leads to the code's graph ({graph.snapshot_version})"
        ctx.emit({"written": None, "covered_by": todo[-1].id}, lambda: click.echo(text))
        return
    check_chain(loaded, todo, progress, stored)
    diff = diff_graphs(stored.snapshots[stored.latest].graph(), graph)
    ops = operations(diff, list(reconcile))
    if not ops:
        same = "the same graph" if not diff else "no field of a stored feature with a new version"
        text = f"nothing to migrate: the code and the latest snapshot in {stored.name} have {same}"
        ctx.emit({"written": None, "covered_by": None}, lambda: click.echo(text))
        return
    migration = new_migration(loaded, name, diff, ops)
    path = write(project.root, migration)
    counts = ", ".join(f"{sum(o.op == op for o in ops)} {op}" for op in ("reconcile", "recompute"))
    text = (
        f"wrote {path.relative_to(project.root)}: {_count(len(ops), 'operation')} ({counts}); "
        "review it, then run `strata migrations apply`"
    )
    ctx.emit({"written": str(path.relative_to(project.root)), **migration.to_data()}, lambda: click.echo(text))


def _count(number: int, noun: str) -> str:
    """``1 operation``, ``3 operations``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


@migrations.command()
@click.argument("until", metavar="[ID]", required=False)
@click.option("--dry-run", is_flag=True, help="Print the operations to run; change nothing.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Recorded with the snapshot apply pushes, as `graph push --tag`, e.g. --tag commit=$GIT_SHA (repeatable).",
)
@store_option
@json_option
@pass_context
def apply(
    ctx: Context, until: str | None, dry_run: bool, tags: tuple[str, ...], store_name: str | None, json_output: bool
) -> None:
    """Apply the pending migrations in order (up to ID, or a unique prefix of it), then push the code's graph.

    Each operation done is recorded in the store, so a rerun after an interruption goes on where
    it stopped. `reconcile` rewrites the stored provenance; `recompute` leaves the samples stale
    for `strata build`. A store with fallbacks is written in itself only.
    """
    from strata.cli.features_cmds import _tags as parse_tags
    from strata.cli.progress import reporting
    from strata.errors import UsageError
    from strata.features.migrations import Applied
    from strata.features.migrations import apply as apply_migrations
    from strata.features.project import make_store, opened, store_config

    ctx.json = ctx.json or json_output
    pairs = parse_tags(tags)
    project, graph, loaded = _loaded(ctx)
    config = store_config(project, store_name)
    target = loaded.get(until).id if until is not None else None
    if not loaded.chain:  # nothing to open the store for (a fresh project's store is not created)
        applied, latest = Applied([], []), None
    else:
        if config.read_only and not dry_run:
            raise UsageError(
                f"store `{config.name}` is read-only (read_only: true in {project.file_name}), "
                "so no migration can be applied to it",
                "apply to a writable store (--store NAME)",
            )
        store = make_store(project, config.name, graph=graph, read_only=dry_run)
        with opened(store, config), reporting(ctx, "migrations apply") as report:
            applied = apply_migrations(store, loaded, target, dry_run=dry_run, tags=pairs, report=report)
            latest = store.snapshots()[0].version if applied.migrations and not dry_run else None
    data = {"store": config.name, "dry_run": dry_run, "steps": [s.to_json() for s in applied.steps], "pushed": latest}
    ctx.emit(data, lambda: _apply_text(config.name, target, applied, dry_run=dry_run))


def _apply_text(store: str, until: str | None, applied: Applied, *, dry_run: bool) -> None:
    if not applied.migrations:
        what = f"{until} is already applied" if until else "every migration is applied"
        click.echo(f"nothing to apply: {what} to {store}")
        return
    for step in applied.steps:
        operation = step.operation
        what = f"{step.migration} #{step.number}: {operation.op} {operation.feature} ({', '.join(operation.fields)})"
        if step.skipped:
            state = "already done"
        elif dry_run:
            state = "would run" if step.samples is None else f"would run, {step.samples} samples"
        elif step.samples is not None:
            state = f"done, {step.samples} samples"
        else:
            state = "done, samples stale for `strata build`"
        if step.superseded:
            state += f"; left stale, recomputed later in this apply: {', '.join(step.superseded)}"
        click.echo(f"{what}: {state}")
    verb = "would apply" if dry_run else "applied"
    click.echo(f"{verb} {', '.join(m.id for m in applied.migrations)} to {store}")


@migrations.command()
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when the code's graph differs from the latest snapshot and no migration covers it (for CI).",
)
@store_option
@json_option
@pass_context
def status(ctx: Context, check: bool, store_name: str | None, json_output: bool) -> None:
    """Each migration applied or pending in the store, and whether one covers the code's graph.

    A pending migration that no longer fits the code's graph (an unknown feature or field) is an
    error here too, so the CI gate catches it.
    """
    from strata.errors import RuntimeFailure
    from strata.features.migrations import check_pending

    ctx.json = ctx.json or json_output
    project, graph, loaded = _loaded(ctx)
    progress, stored = _store_state(project, store_name, loaded)
    check_pending(loaded, progress.applied, graph, stored.snapshots)
    rows = _rows(loaded, progress)
    gap = _gap(graph, loaded, progress, stored)
    data = {"store": stored.name, "migrations": rows, "code": graph.snapshot_version, **gap}
    failing = check and gap["uncovered"]

    def human() -> None:
        _echo_rows(rows)
        if not failing:  # else the error line says it, once
            click.echo(gap["message"])

    ctx.emit(data, human)
    if failing:
        raise RuntimeFailure(gap["message"], gap.get("fix") or "run `strata migrations generate` and commit the file")


def _gap(graph: FeatureGraph, loaded: Loaded, progress: Progress, stored: Stored) -> dict[str, Any]:
    """How the code's graph stands to the store's latest snapshot, and whether ``apply`` would take it there.

    Uncovered: ``apply`` would refuse the pending migrations (its own checks), or there are none
    and a stored field has a new version.
    """
    from strata.errors import UsageError
    from strata.features.diff import diff_graphs
    from strata.features.migrations import check_applicable, pending

    version, latest = graph.snapshot_version, stored.latest
    base = f"the code's graph ({version})"
    differs = f"{base} differs from the latest snapshot in {stored.name} ({latest})"
    todo = pending(loaded, progress, None)
    try:
        check_applicable(loaded, todo, progress, stored, version)
    except UsageError as refused:
        message = (
            refused.reason if latest in (None, version) else f"{differs} and no migration covers it: {refused.reason}"
        )
        return {"latest": latest, "uncovered": True, "message": message, "fix": refused.instruction}
    if latest is None:
        return {
            "latest": None,
            "uncovered": False,
            "message": f"no graph was pushed to {stored.name}: nothing to migrate",
        }
    if latest == version:
        return {"latest": latest, "uncovered": False, "message": f"{base} is the latest snapshot in {stored.name}"}
    if todo:
        return {"latest": latest, "uncovered": False, "message": f"{differs}; migration {todo[-1].id} covers it"}
    if not diff_graphs(stored.snapshots[latest].graph(), graph).fields_with_new_versions():
        message = f"{differs}, but no stored field has a new version: push it with `strata graph push`"
        return {"latest": latest, "uncovered": False, "message": message}
    return {"latest": latest, "uncovered": True, "message": f"{differs} and no migration covers it"}


def _store_state(project: Project, store_name: str | None, loaded: Loaded) -> tuple[Progress, Stored]:
    """The store's migration progress (migrations it started past counted: ``Progress.beyond``) and its snapshots.

    Read without writing.
    """
    from strata.features.migrations import Progress, Stored
    from strata.features.project import make_store, opened, store_config

    config = store_config(project, store_name)
    store = make_store(project, config.name, read_only=True)
    with opened(store, config):
        stored = Stored.of(store)
        progress = Progress.of(store).beyond(loaded, stored)
    return progress, stored


def _rows(loaded: Loaded, progress: Progress) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id,
            "parent": m.parent,
            "from": m.from_snapshot,
            "to": m.to_snapshot,
            "operations": len(m.operations),
            "state": progress.state(m),
        }
        for m in loaded.chain
    ]


def _echo_rows(rows: list[dict[str, Any]]) -> None:
    from strata.cli.tables import table

    if not rows:
        click.echo("no migrations (generate one with `strata migrations generate`)")
        return
    cells = [[r["id"], r["from"], r["to"], r["operations"], r["state"]] for r in rows]
    click.echo(table(["id", "from", "to", "operations", "state"], cells))


@migrations.command("list")
@store_option
@json_option
@pass_context
def list_(ctx: Context, store_name: str | None, json_output: bool) -> None:
    """Every migration file in parent order, with its state in the store."""
    from strata.features.migrations import load

    ctx.json = ctx.json or json_output
    project = ctx.project()
    loaded = load(project.root)  # the feature modules are not imported: files stay listable whatever the code
    progress, _stored = _store_state(project, store_name, loaded)
    rows = _rows(loaded, progress)
    ctx.emit(rows, lambda: _echo_rows(rows))


COMMANDS = [migrations]
