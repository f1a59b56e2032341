"""``strata run`` and ``strata el``: pipelines with state and history."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from strata.ingest.pipeline import RunOptions, RunResult

_COMMON = [
    click.option("--full-refresh", is_flag=True, help="Ignore stored state and read everything again."),
    click.option("--force", is_flag=True, help="Run even if another run holds this state id's lock."),
    click.option("--dry-run", is_flag=True, help="Print what would run, run nothing."),
]


def _common(fn: Any) -> Any:
    for option in reversed(_COMMON):
        fn = option(fn)
    return fn


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("blocks", nargs=-1, required=True)
@click.option("--state-id-suffix", help="Appended to the generated state ids.")
@_common
@pass_context
def run(
    ctx: Context, blocks: tuple[str, ...], state_id_suffix: str | None, full_refresh: bool, force: bool, dry_run: bool
) -> None:
    """Run blocks in order: EXTRACTOR [MAPPER…] LOADER pipelines and job names."""
    from strata.ingest.pipeline import RunOptions

    options = RunOptions(full_refresh=full_refresh, state_id_suffix=state_id_suffix, force=force, dry_run=dry_run)
    _execute(ctx, list(blocks), options)


@click.command()
@click.argument("extractor")
@click.argument("loader")
@click.option("--state-id", help="State id to use (default: <environment>:<extractor>-to-<loader>).")
@_common
@pass_context
def el(
    ctx: Context, extractor: str, loader: str, state_id: str | None, full_refresh: bool, force: bool, dry_run: bool
) -> None:
    """Extract with EXTRACTOR and load with LOADER."""
    from strata.ingest.pipeline import RunOptions

    options = RunOptions(full_refresh=full_refresh, state_id=state_id, force=force, dry_run=dry_run)
    _execute(ctx, [extractor, loader], options)


def _execute(ctx: Context, blocks: list[str], options: RunOptions) -> None:
    from strata.ingest.pipeline import run_blocks
    from strata.project.files import ensure_writable

    project = ctx.project()
    if not options.dry_run:
        ensure_writable(project.system_dir)
    if not ctx.json and sys.stderr.isatty():
        options.progress = _progress_printer()
    try:
        results = run_blocks(project, blocks, options)
    finally:
        if options.progress is not None:
            click.echo("", err=True)  # ends the progress line, so the summary or the error starts a line

    def human() -> None:
        for result in results:
            click.echo(_line(result))

    ctx.emit([_summary(r) for r in results], human)


def _summary(result: RunResult) -> dict[str, Any]:
    return {
        "state_id": result.state_id,
        "run_id": result.run_id,
        "records": result.records,
        "seconds": round(result.seconds, 2),
        "states": result.states,
        "log": str(result.log) if result.log else None,
        "dry_run": result.dry_run,
        "plan": result.plan,
        "builds": result.builds,
    }


def _line(result: RunResult) -> str:
    if result.dry_run:
        return "would run: " + "; ".join(result.plan)
    built = "".join(
        f"\n  built {b['feature']}: {b['written']} written, {b['removed']} removed"
        for b in result.builds
        if b["computable"]
    )
    if not result.pipeline:
        return f"{result.state_id}: run {result.run_id} in {result.seconds:.1f} s{built}"
    total = sum(result.records.values())
    per = ", ".join(f"{k}={v}" for k, v in sorted(result.records.items())) or "no record counts reported"
    from strata.cli.tables import counted

    return (
        f"{result.state_id}: {counted(total, 'record')} ({per}) in {result.seconds:.1f} s, "
        f"{counted(result.states, 'state')} stored, run {result.run_id}{built}"
    )


def _progress_printer() -> Any:
    from strata.cli.tables import counted

    last = [0.0]

    def show(records: dict[str, int], elapsed: float) -> None:
        if elapsed - last[0] < 1:
            return
        last[0] = elapsed
        total = sum(records.values())
        rate = total / elapsed if elapsed else 0.0
        streams = ", ".join(f"{k}={v}" for k, v in sorted(records.items()))
        click.echo(f"\r{elapsed:6.1f} s  {counted(total, 'record')} ({rate:.0f}/s)  {streams}", err=True, nl=False)

    return show


COMMANDS = [run, el]
