"""``strata build [FEATURE…] [--dry-run] [--workers N] [--executor local|ray] [--store S]``: compute what is stale."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from collections.abc import Sequence

    from strata.build.runner import FeatureBuild
    from strata.errors import Interrupted


@click.command()
@click.argument("feature_keys", metavar="[FEATURE]...", nargs=-1)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (add / recompute per field with cause / remove); change nothing."
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes for compute (default: cores, at most 4).")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    help="Where compute runs: this machine's processes, or Ray tasks (default: features.executor, else local).",
)
@click.option("--store", "store_name", metavar="NAME", help="Store to build in (default: features.store).")
@click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json); no progress.")
@pass_context
def build(
    ctx: Context,
    feature_keys: tuple[str, ...],
    dry_run: bool,
    workers: int | None,
    executor: str | None,
    store_name: str | None,
    json_output: bool,
) -> None:
    """Run compute for every feature (or FEATURE and what it needs) on the samples that are stale.

    Failing batches are recorded with their samples and skipped until their inputs or code_version change;
    the command then exits 1 after finishing everything else. A later build skips them, says
    so with their errors, and exits 0 unless a batch fails anew. Batches written stay written
    when the build is stopped (Ctrl-C): the next build goes on with the rest.
    """
    from strata.build.runner import build as run_build
    from strata.build.runner import failed
    from strata.cli.progress import reporting
    from strata.errors import RuntimeFailure

    ctx.json = ctx.json or json_output
    project = ctx.project()
    started: list[FeatureBuild] = []
    try:
        with reporting(ctx, "build") as report:
            results = run_build(
                project,
                list(feature_keys),
                dry_run=dry_run,
                workers=workers,
                executor=executor,
                store_name=store_name,
                report=report,
                into=started,
            )
    except KeyboardInterrupt:
        raise stopped(started) from None
    ctx.emit(
        {"dry_run": dry_run, "features": [r.to_json() for r in results]},
        lambda: click.echo(text(results, dry_run=dry_run)),
    )
    reason = failed(results)
    if reason and not dry_run:
        where = "see `failures` in the JSON output" if ctx.json else "see the errors above"
        raise RuntimeFailure(reason, f"{where}; those samples are skipped until their inputs or code_version change")


def stopped(started: Sequence[FeatureBuild]) -> Interrupted:
    """The one line of a build stopped by Ctrl-C: what it wrote stays, the next build goes on."""
    from strata.build.runner import kept
    from strata.errors import Interrupted

    written = kept(started)
    done = f", the batches written stay written ({written})" if written else " before any batch was written"
    return Interrupted(f"interrupted by SIGINT{done}", "run `strata build` again to go on with the rest")


SKIPPED = (
    "skipped samples are computed again once their inputs or their code_version change "
    "(`strata ui` lists the build errors)"
)


def text(results: Sequence[FeatureBuild], *, dry_run: bool) -> str:
    """The plan or the outcome as a table, then per field the causes, then any failures."""
    from strata.cli.tables import table
    from strata.history.model import failure_line, skipped_line

    if not results:
        return "nothing to build: no feature with upstreams in the graph"
    rows: list[list[Any]] = []
    for r in results:
        note = "no compute" if not r.computable else ("in sync" if not (r.added or r.changed or r.removed) else "")
        if dry_run:
            rows.append([r.key, r.added, r.changed, r.removed, note or "to build"])
        else:
            done = note or ("failed batches" if r.failures else "failed before" if r.skipped else "built")
            rows.append([r.key, r.added, r.changed, r.removed, r.written, r.skipped, f"{r.seconds:.2f}", done])
    headers = (
        ["feature", "add", "recompute", "remove", "status"]
        if dry_run
        else ["feature", "added", "recomputed", "removed", "written", "skipped", "seconds", "status"]
    )
    lines = [("plan (dry run):" if dry_run else "build:"), table(headers, rows)]
    details = [
        f"  {r.key}.{name} <- " + ", ".join(f"{cause} ({count})" for cause, count in sorted(causes.items()))
        for r in results
        for name, causes in r.fields.items()
    ]
    if details:
        lines += ["recompute per field (cause):", *details]
    lines += [f"  {failure_line(r.key, failure)}" for r in results for failure in r.failures]
    skipped = [f"  {skipped_line(r.key, group)}" for r in results for group in r.skipped_errors]
    if skipped:
        lines += [*skipped, SKIPPED]
    return "\n".join(lines)


COMMANDS = [build]
