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
    from strata.features.migrations import Applied, Loaded, Progress
    from strata.project.project import Project
    from strata.stores.snapshots import Snapshot


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
    from strata.features.migrations import covering, new_migration, operations, write

    ctx.json = ctx.json or json_output
    project, graph, loaded = _loaded(ctx)
    store, progress, latest = _store_state(project, store_name)
    if latest is None:
        raise SnapshotNotFoundError(
            f"no graph was pushed to {store}, so there is nothing to migrate from",
            "push the deployed graph first with `strata graph push`",
        )
    cover = covering(loaded, progress.applied, latest.version, graph.snapshot_version)
    if cover.stray is not None:
        raise cover.stray_error(latest.version, loaded, project.root)
    if cover.migration is not None:
        covered = cover.migration
        text = f"nothing to migrate: {covered.id} already leads to the code's graph ({graph.snapshot_version})"
        ctx.emit({"written": None, "covered_by": covered.id}, lambda: click.echo(text))
        return
    diff = diff_graphs(latest.graph(), graph)
    ops = operations(diff, list(reconcile))
    if not ops:
        same = "the same graph" if not diff else "no field of a stored feature with a new version"
        text = f"nothing to migrate: the code and the latest snapshot in {store} have {same}"
        ctx.emit({"written": None, "covered_by": None}, lambda: click.echo(text))
        return
    migration = new_migration(loaded, name, diff, ops)
    path = write(project.root, migration)
    counts = ", ".join(f"{sum(o.op == op for o in ops)} {op}" for op in ("reconcile", "recompute"))
    text = (
        f"wrote {path.relative_to(project.root)}: {len(ops)} operations ({counts}); "
        "review it, then run `strata migrations apply`"
    )
    ctx.emit({"written": str(path.relative_to(project.root)), **migration.to_data()}, lambda: click.echo(text))


@migrations.command()
@click.argument("until", metavar="[ID]", required=False)
@click.option("--dry-run", is_flag=True, help="Print the operations to run; change nothing.")
@store_option
@json_option
@pass_context
def apply(ctx: Context, until: str | None, dry_run: bool, store_name: str | None, json_output: bool) -> None:
    """Apply the pending migrations in order (up to ID), then push the code's graph.

    Each operation done is recorded in the store, so a rerun after an interruption goes on where
    it stopped. `reconcile` rewrites the stored provenance; `recompute` leaves the samples stale
    for `strata build`. A store with fallbacks is written in itself only.
    """
    from strata.cli.progress import reporting
    from strata.errors import UsageError
    from strata.features.migrations import apply as apply_migrations
    from strata.features.project import make_store, opened, store_config

    ctx.json = ctx.json or json_output
    project, graph, loaded = _loaded(ctx)
    config = store_config(project, store_name)
    if config.read_only and not dry_run:
        raise UsageError(
            f"store `{config.name}` is read-only (read_only: true in {project.file_name}), "
            "so no migration can be applied to it",
            "apply to a writable store (--store NAME)",
        )
    target = loaded.get(until).id if until is not None else None
    store = make_store(project, config.name, graph=graph, read_only=dry_run)
    with opened(store, config), reporting(ctx, "migrations apply") as report:
        applied = apply_migrations(store, loaded, target, dry_run=dry_run, report=report)
        latest = store.snapshots()[0].version if applied.migrations and not dry_run else None
    data = {"store": config.name, "dry_run": dry_run, "steps": [s.to_json() for s in applied.steps], "pushed": latest}
    ctx.emit(data, lambda: _apply_text(config.name, until, applied, dry_run=dry_run))


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
    name, progress, latest = _store_state(project, store_name)
    check_pending(loaded, progress.applied, graph)
    rows = _rows(loaded, progress)
    gap = _gap(project, graph, loaded, progress.applied, latest, name)
    data = {"store": name, "migrations": rows, "code": graph.snapshot_version, **gap}

    def human() -> None:
        _echo_rows(rows)
        click.echo(gap["message"])

    ctx.emit(data, human)
    if check and gap["uncovered"]:
        raise RuntimeFailure(gap["message"], gap.get("fix") or "run `strata migrations generate` and commit the file")


def _gap(
    project: Project, graph: FeatureGraph, loaded: Loaded, applied: set[str], latest: Snapshot | None, store: str
) -> dict[str, Any]:
    """How the code's graph stands to the store's latest snapshot, and whether a migration covers the change."""
    from strata.features.diff import diff_graphs
    from strata.features.migrations import covering

    version = graph.snapshot_version
    if latest is None:
        return {"latest": None, "uncovered": False, "message": f"no graph was pushed to {store}: nothing to migrate"}
    base = f"the code's graph ({version})"
    if latest.version == version:
        return {"latest": latest.version, "uncovered": False, "message": f"{base} is the latest snapshot in {store}"}
    differs = f"{base} differs from the latest snapshot in {store} ({latest.version})"
    cover = covering(loaded, applied, latest.version, version)
    if cover.migration is not None:
        message = f"{differs}; migration {cover.migration.id} covers it"
        return {"latest": latest.version, "uncovered": False, "message": message}
    if cover.stray is not None:
        error = cover.stray_error(latest.version, loaded, project.root)
        return {
            "latest": latest.version,
            "uncovered": True,
            "message": f"{differs}; {error.reason}",
            "fix": error.instruction,
        }
    if not diff_graphs(latest.graph(), graph).fields_with_new_versions():
        message = f"{differs}, but no stored field has a new version: push it with `strata graph push`"
        return {"latest": latest.version, "uncovered": False, "message": message}
    return {"latest": latest.version, "uncovered": True, "message": f"{differs} and no migration covers it"}


def _store_state(project: Project, store_name: str | None) -> tuple[str, Progress, Snapshot | None]:
    """The store's name, its migration progress and its latest snapshot (None when nothing was pushed)."""
    from strata.features.migrations import Progress
    from strata.features.project import make_store, opened, store_config

    config = store_config(project, store_name)
    store = make_store(project, config.name, read_only=True)
    with opened(store, config):
        progress = Progress.of(store)
        found = store.snapshots()
    return config.name, progress, found[0] if found else None


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
    _name, progress, _latest_snapshot = _store_state(project, store_name)
    rows = _rows(loaded, progress)
    ctx.emit(rows, lambda: _echo_rows(rows))


COMMANDS = [migrations]
