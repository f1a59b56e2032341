"""``strata run`` and ``strata el``: pipelines with state and history."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from strata.ingest.pipeline import RunOptions, RunResult


def _run_env(name: str) -> list[str]:
    """The variables that set a ``run`` option: ``STRATA_RUN_NAME`` and Meltano's ``MELTANO_RUN_NAME``."""
    return [f"STRATA_RUN_{name}", f"MELTANO_RUN_{name}"]


def _state_strategy(envvar: list[str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--state-strategy",
        type=click.Choice(["auto", "merge", "overwrite"]),
        default="auto",
        show_default=True,
        envvar=envvar,
        help="How the run's states combine with the stored state: merge (deep-merge), overwrite, "
        "or auto (merge with --full-refresh, else overwrite).",
    )


_MERGE_STATE = click.option("--merge-state", is_flag=True, hidden=True, help="Old spelling of --state-strategy merge.")
_FULL_REFRESH_HELP = "Ignore stored state and read everything again."
_REFRESH_CATALOG_HELP = "Discover again even when a cached catalog exists."
_FORCE_HELP = "Run even if another run holds this state id's lock."

RUN_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--full-refresh", is_flag=True, envvar=_run_env("FULL_REFRESH"), help=_FULL_REFRESH_HELP),
    click.option("--refresh-catalog", is_flag=True, envvar=_run_env("REFRESH_CATALOG"), help=_REFRESH_CATALOG_HELP),
    click.option("-f", "--force", is_flag=True, envvar=_run_env("FORCE"), help=_FORCE_HELP),
    click.option("--dry-run", is_flag=True, help="Print what would run, run nothing (plugins need not be installed)."),
    _state_strategy(_run_env("STATE_STRATEGY")),
    _MERGE_STATE,
]
"""Options of ``run``, ``job run`` and ``schedule run`` beside the blocks, settable as in Meltano by
``MELTANO_RUN_…`` variables (or ``STRATA_RUN_…``)."""


def run_options(fn: Any) -> Any:
    """Decorate a command with ``RUN_OPTIONS``."""
    for option in reversed(RUN_OPTIONS):
        fn = option(fn)
    return fn


def strategy_of(strategy: str, merge_state: bool) -> str:
    """``--state-strategy``, or ``merge`` for the old ``--merge-state`` (not both, as in Meltano)."""
    if not merge_state:
        return strategy
    if strategy != "auto":
        raise click.UsageError("--merge-state and --state-strategy cannot be used together")
    logging.getLogger(__name__).warning("--merge-state is deprecated: use --state-strategy merge")
    return "merge"


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("blocks", nargs=-1, required=True)
@click.option("--state-id-suffix", envvar=_run_env("STATE_ID_SUFFIX"), help="Appended to the generated state ids.")
@click.option(
    "--no-state-update",
    is_flag=True,
    envvar=_run_env("NO_STATE_UPDATE"),
    help="Read no stored state and store none (Meltano's meaning).",
)
@run_options
@pass_context
def run(ctx: Context, /, blocks: tuple[str, ...], merge_state: bool, state_strategy: str, **flags: Any) -> None:
    """Run blocks in order: EXTRACTOR [MAPPER…] LOADER pipelines and job names."""
    from strata.ingest.pipeline import RunOptions

    options = RunOptions(state_strategy=strategy_of(state_strategy, merge_state), **flags)
    _execute(ctx, list(blocks), options)


@click.command()
@click.argument("extractor")
@click.argument("loader")
@click.option(
    "--state-id",
    envvar=["STRATA_STATE_ID", "MELTANO_STATE_ID"],
    help="State id to use (default: <environment>:<extractor>-to-<loader>).",
)
@click.option("--full-refresh", is_flag=True, envvar=_run_env("FULL_REFRESH"), help=_FULL_REFRESH_HELP)
@click.option("--refresh-catalog", is_flag=True, help=_REFRESH_CATALOG_HELP)
@click.option("-s", "--select", multiple=True, help="Extract only the streams matching this glob (repeatable).")
@click.option("-e", "--exclude", multiple=True, help="Do not extract the streams matching this glob (repeatable).")
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Catalog file to give the extractor instead of discovering (its select rules are not applied).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file the extractor starts from instead of the stored state.",
)
@click.option(
    "--dump",
    type=click.Choice(["catalog", "state", "extractor-config", "loader-config"]),
    help="Print what the pipeline would give the plugin (configs with secrets redacted) and run nothing.",
)
@click.option("-f", "--force", is_flag=True, help=_FORCE_HELP)
@click.option("--dry-run", "--dry", is_flag=True, help="Print what would run, run nothing.")
@_state_strategy()
@_MERGE_STATE
@pass_context
def el(
    ctx: Context,
    /,
    extractor: str,
    loader: str,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    merge_state: bool,
    state_strategy: str,
    dump: str | None,
    **flags: Any,
) -> None:
    """Extract with EXTRACTOR and load with LOADER."""
    from strata.ingest.pipeline import RunOptions

    options = RunOptions(
        state_strategy=strategy_of(state_strategy, merge_state),
        select_filter=(*select, *(f"!{pattern}" for pattern in exclude)),
        **flags,
    )
    if dump is not None:
        _dump(ctx, [extractor, loader], options, dump)
        return
    _execute(ctx, [extractor, loader], options)


def _dump(ctx: Context, blocks: list[str], options: RunOptions, what: str) -> None:
    import json

    from strata.ingest.blocks import Block
    from strata.ingest.pipeline import dump_block, parse_blocks

    project = ctx.project()
    items = parse_blocks(project, blocks, dry_run=True)
    if len(items) != 1 or not isinstance(items[0], Block):
        from strata.errors import UsageError

        raise UsageError("--dump takes one EXTRACTOR and one LOADER", "name the plugins, not jobs")
    click.echo(json.dumps(dump_block(project, items[0], options, what), indent=2))


def _execute(ctx: Context, blocks: list[str], options: RunOptions) -> None:
    from strata.cli.progress import build_reporting
    from strata.ingest.pipeline import run_blocks
    from strata.project.files import ensure_writable

    project = ctx.project()
    if not options.dry_run:
        ensure_writable(project.system_dir)
    records = RecordsLine() if not ctx.json and sys.stderr.isatty() else None
    options.progress = records
    options.build_progress = build_reporting(ctx, before=None if records is None else records.end)
    try:
        results = run_blocks(project, blocks, options)
    finally:
        if records is not None:
            records.end()  # so the summary or the error starts a line

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
        + (f", {b['skipped']} skipped (failed before on the same inputs and code)" if b.get("skipped") else "")
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


class RecordsLine:
    """The records read so far, on one line of the terminal redrawn at most once a second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._open = False

    def __call__(self, records: dict[str, int], elapsed: float) -> None:
        from strata.cli.tables import counted

        if elapsed - self._last < 1:
            return
        self._last = elapsed
        total = sum(records.values())
        rate = total / elapsed if elapsed else 0.0
        streams = ", ".join(f"{k}={v}" for k, v in sorted(records.items()))
        click.echo(f"\r{elapsed:6.1f} s  {counted(total, 'record')} ({rate:.0f}/s)  {streams}", err=True, nl=False)
        self._open = True

    def end(self) -> None:
        """End the line if one is shown, so what follows (build bars, the summary, an error) starts its own."""
        if self._open:
            click.echo("", err=True)
            self._open = False


COMMANDS = [run, el]
