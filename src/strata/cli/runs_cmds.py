"""``strata runs list | show``: the run history, read from the system database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from strata.history import Run

json_option = click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")

ID_SHOWN = 8
"""Characters of a run id shown in tables; ``runs show`` takes any unique prefix."""


@click.group()
def runs() -> None:
    """The run history (the system database under .strata/, or database_uri)."""


@runs.command("list")
@click.option("--state-id", help="Only runs of this state id.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs to show.")
@json_option
@pass_context
def list_(ctx: Context, state_id: str | None, limit: int, json_output: bool) -> None:
    """The latest runs, newest first."""
    from strata.cli.tables import table
    from strata.history import RunHistory

    ctx.json = ctx.json or json_output
    with RunHistory.open(ctx.project()) as history:
        found = history.list(state_id=state_id, limit=limit)

    def human() -> None:
        if not found:
            click.echo("no runs yet" + (f" of state id `{state_id}`" if state_id else ""))
            return
        click.echo(
            table(
                ["run", "state id", "status", "started", "duration", "records"],
                [
                    [r.run_id[:ID_SHOWN], r.state_id, r.status, _local(r.started_at), _duration(r), r.total_records]
                    for r in found
                ],
            )
        )

    ctx.emit([r.to_dict() for r in found], human)


@runs.command("show")
@click.argument("run_id")
@click.option("--tail", type=click.IntRange(min=0), help="Show only the last N lines of the log.")
@json_option
@pass_context
def show(ctx: Context, run_id: str, tail: int | None, json_output: bool) -> None:
    """One run (any unique prefix of its id) with its log."""
    from strata.history import RunHistory
    from strata.history.model import build_summary

    ctx.json = ctx.json or json_output
    with RunHistory.open(ctx.project()) as history:
        run = history.get(run_id)
        path = history.log_file(run)
    log: str | None = None
    if path is not None and path.is_file():
        log = path.read_text(encoding="utf-8", errors="replace")
        if tail is not None:
            log = "".join(log.splitlines(keepends=True)[-tail:] if tail else [])
    data = run.to_dict() | {"log_file": None if path is None else str(path), "log": log}

    def human() -> None:
        records = ", ".join(f"{k} {v}" for k, v in sorted(run.records.items()))
        rows = [
            ("run", run.run_id),
            ("state id", run.state_id),
            ("environment", run.environment or "-"),
            ("blocks", " ".join(run.blocks) or "-"),
            ("status", str(run.status)),
            ("started", _local(run.started_at)),
            ("ended", _local(run.ended_at) if run.ended_at else "-"),
            ("duration", _duration(run)),
            ("heartbeat", _local(run.heartbeat_at)),
            ("process", f"pid {run.pid} on {run.host}" if run.pid is not None else "-"),
            ("records", f"{run.total_records} ({records})" if records else "0"),
            *(("built", build_summary(b)) for b in run.builds),
            ("error", run.error or "-"),
            ("log", str(path) if path is not None else "-"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            click.echo(f"{key.ljust(width)}  {value}")
        click.echo("")
        if path is None:
            click.echo("(this run has no log file)")
        elif log is None:
            click.echo(f"(log missing: {path} does not exist)")
        else:
            click.echo(f"--- log {path} ---")
            click.echo(log, nl=not log.endswith("\n"))

    ctx.emit(data, human)


def _local(stamp: datetime) -> str:
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(run: Run) -> str:
    duration = run.duration
    if duration is None:
        return "-"
    text = _span(duration)
    return f"{text} so far" if str(run.status) == "running" else text


def _span(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if seconds < 60:  # noqa: PLR2004 - a minute
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


COMMANDS = [runs]
