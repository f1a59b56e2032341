"""``strata runs list | show``: the run history, read from the system database."""

from __future__ import annotations

import click

from strata.cli.context import Context, pass_context

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
    from strata.history.shown import duration_text, local_time

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
                    [
                        r.run_id[:ID_SHOWN],
                        r.state_id,
                        r.status,
                        local_time(r.started_at),
                        duration_text(r),
                        r.total_records,
                    ]
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
    """One run (any unique prefix of its id) with its log.

    The log and the error are shown with the current secrets of the run's plugins redacted
    (logs are written redacted; this covers logs written before that).
    """
    from strata.history.model import build_summary
    from strata.history.shown import duration_text, local_time, run_with_log

    ctx.json = ctx.json or json_output
    run, path, log = run_with_log(ctx.project(), run_id, tail)
    data = run.to_dict() | {"log_file": None if path is None else str(path), "log": log}

    def human() -> None:
        records = ", ".join(f"{k} {v}" for k, v in sorted(run.records.items()))
        rows = [
            ("run", run.run_id),
            ("state id", run.state_id),
            ("environment", run.environment or "-"),
            ("blocks", " ".join(run.blocks) or "-"),
            ("status", str(run.status)),
            ("started", local_time(run.started_at)),
            ("ended", local_time(run.ended_at) if run.ended_at else "-"),
            ("duration", duration_text(run)),
            ("heartbeat", local_time(run.heartbeat_at)),
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


COMMANDS = [runs]
