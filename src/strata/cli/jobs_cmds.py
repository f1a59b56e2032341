"""``strata job add|list|remove|run`` and ``strata schedule add|list|remove|run|export``.

Jobs and schedules live in the project file (Meltano's shape); running them hands their blocks
to the pipeline, exactly as ``strata run`` would. strata has no scheduler daemon:
``schedule export --to cron`` prints crontab lines that call ``strata schedule run``;
``--to dagster`` prints a Dagster code location whose jobs call it (``project/dagster_export.py``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context
from strata.cli.run_cmds import run_options, strategy_of
from strata.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from strata.project.project import Project
    from strata.project.schema import Schedule

json_option = click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")


def _format_option(shape: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--format text|json`` for a list command; ``json`` prints Meltano 4's ``shape``."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help=f"json: Meltano 4's shape ({shape}); --json prints strata's rows.",
    )


def run_blocks(ctx: Context, project: Project, blocks: list[str], flags: dict[str, Any]) -> None:
    """Hand ``blocks`` to the pipeline (``strata.ingest.pipeline``) and print how each went."""
    try:
        from strata.ingest.pipeline import RunOptions
        from strata.ingest.pipeline import run_blocks as run_pipeline
    except ModuleNotFoundError as exc:
        if exc.name != "strata.ingest.pipeline":
            raise
        raise UsageError(
            "the pipeline is not available in this strata", "run the plugins with `strata invoke` meanwhile"
        ) from None
    from strata.cli.progress import build_reporting

    results = run_pipeline(project, blocks, RunOptions(**flags, build_progress=build_reporting(ctx)))
    rows = [
        {
            "state_id": r.state_id,
            "run_id": r.run_id,
            "records": r.records,
            "seconds": round(r.seconds, 2),
            "log": None if r.log is None else str(r.log),
            "dry_run": r.dry_run,
            "plan": r.plan,
        }
        for r in results
    ]

    from strata.cli.tables import counted

    def human() -> None:
        for r in results:
            if r.dry_run:
                click.echo("would run: " + "; ".join(r.plan))
            else:
                total = sum(r.records.values())
                click.echo(f"{r.state_id}: {counted(total, 'record')} in {r.seconds:.1f} s, run {r.run_id}")

    ctx.emit(rows, human)


# -- jobs ---------------------------------------------------------------------------------


@click.group()
def job() -> None:
    """Jobs: named lists of blocks (jobs: in the project file)."""


@job.command("add")
@click.argument("name")
@click.option("--tasks", required=True, help="YAML: a string, or a list of strings and lists of strings.")
@pass_context
def job_add(ctx: Context, name: str, tasks: str) -> None:
    """Add a job, e.g. --tasks '["tap-x target-y", "tap-a target-b"]'."""
    from strata.project import jobs_edit

    project = ctx.project()
    parsed = jobs_edit.parse_tasks(tasks)
    jobs_edit.add_job(project, name, parsed)
    ctx.emit({"name": name, "tasks": parsed}, lambda: click.echo(f"Added job `{name}` to {project.file_name}"))


@job.command("list")
@click.argument("name", required=False)
@json_option
@_format_option('`{"jobs": [{"job_name", "tasks"}]}`, the job\'s object alone with NAME')
@pass_context
def job_list(ctx: Context, name: str | None, json_output: bool, output_format: str) -> None:
    """Every job (or job NAME) and its tasks."""
    from strata.cli.tables import table
    from strata.project.jobs_edit import flat_blocks
    from strata.project.jobs_edit import job as find_job

    ctx.json = ctx.json or json_output
    project = ctx.project()
    jobs = project.model.jobs if name is None else [find_job(project, name)]
    if output_format == "json":
        shaped = [{"job_name": j.name, "tasks": j.tasks} for j in jobs]
        click.echo(json.dumps(shaped[0] if name is not None else {"jobs": shaped}, indent=2))
        return
    rows = [{"name": j.name, "tasks": j.tasks, "blocks": flat_blocks(j.tasks)} for j in jobs]

    def human() -> None:
        if not rows:
            click.echo("no jobs (add one with `strata job add NAME --tasks '[\"tap-x target-y\"]'`)")
            return
        click.echo(table(["job", "tasks"], [[r["name"], _tasks_text(r["tasks"])] for r in rows]))

    ctx.emit(rows, human)


def _tasks_text(tasks: str | list[Any]) -> str:
    if isinstance(tasks, str):
        return tasks
    return ", ".join(t if isinstance(t, str) else "[" + ", ".join(t) + "]" for t in tasks)


@job.command("remove")
@click.argument("name")
@pass_context
def job_remove(ctx: Context, name: str) -> None:
    """Remove a job (no schedule or other job may use it)."""
    from strata.project.jobs_edit import remove_job

    project = ctx.project()
    where = remove_job(project, name)
    ctx.emit({"removed": name}, lambda: click.echo(f"Removed job `{name}` from {where}"))


@job.command("run")
@click.argument("name")
@click.option("--state-id-suffix", help="Appended to the generated state ids.")
@click.option("--no-state-update", is_flag=True, help="Read no stored state and store none (Meltano's meaning).")
@run_options
@pass_context
def job_run(ctx: Context, /, name: str, merge_state: bool, state_strategy: str, **flags: Any) -> None:
    """Run a job's blocks in order, as `strata run NAME` would."""
    from strata.project.jobs_edit import job_blocks

    project = ctx.project()
    blocks = job_blocks(project, name)
    run_blocks(ctx, project, blocks, {**flags, "state_strategy": strategy_of(state_strategy, merge_state)})


# -- schedules ----------------------------------------------------------------------------


@click.group()
def schedule() -> None:
    """Schedules: a job, or an extractor and a loader, at an interval."""


@schedule.command("add")
@click.argument("name")
@click.option("--interval", required=True, help="5-field cron expression, or @hourly, @daily, @weekly, @manual, …")
@click.option("--job", "job_name", help="Job to run.")
@click.option("--extractor", help="Extractor to run (with --loader).")
@click.option("--loader", help="Loader to run (with --extractor).")
@pass_context
def schedule_add(
    ctx: Context, name: str, interval: str, job_name: str | None, extractor: str | None, loader: str | None
) -> None:
    """Add a schedule."""
    from strata.project.jobs_edit import add_schedule

    project = ctx.project()
    add_schedule(project, name, interval, job_name=job_name, extractor=extractor, loader=loader)
    ctx.emit(
        {"name": name, "interval": interval}, lambda: click.echo(f"Added schedule `{name}` to {project.file_name}")
    )


def _target(entry: Schedule) -> str:
    return f"job {entry.job}" if entry.job else f"{entry.extractor} -> {entry.loader}"


@schedule.command("list")
@json_option
@_format_option('`{"schedules": {"job": [...], "elt": [...]}}`')
@pass_context
def schedule_list(ctx: Context, json_output: bool, output_format: str) -> None:
    """Every schedule, what it runs and when it runs next (local time)."""
    from strata.cli.tables import table
    from strata.project.jobs_edit import cron_expression, next_run

    if output_format == "json":
        click.echo(json.dumps({"schedules": _meltano_schedules(ctx.project())}, indent=2, default=str))
        return
    ctx.json = ctx.json or json_output
    now = datetime.now().astimezone()
    rows, cells = [], []
    for entry in ctx.project().model.schedules:
        upcoming = next_run(entry, now)
        when = upcoming.strftime("%Y-%m-%d %H:%M %Z").strip() if upcoming else f"never ({entry.interval.strip()})"
        cells.append([entry.name, entry.interval, _target(entry), when])
        rows.append(
            {
                "name": entry.name,
                "interval": entry.interval,
                "cron": cron_expression(entry.interval),
                "job": entry.job,
                "extractor": entry.extractor,
                "loader": entry.loader,
                "env": sorted(entry.env),
                "next_run": None if upcoming is None else upcoming.isoformat(),
            }
        )

    def human() -> None:
        if not rows:
            click.echo("no schedules (add one with `strata schedule add NAME --interval @daily --job JOB`)")
            return
        click.echo(table(["schedule", "interval", "runs", "next run"], cells))

    ctx.emit(rows, human)


def _meltano_schedules(project: Project) -> dict[str, list[dict[str, Any]]]:
    """The schedules as ``meltano schedule list --format=json`` prints them, job and elt apart.

    An extractor/loader schedule's last successful run is the newest successful run of its state
    id (the schedule's name, as ``schedule run`` uses), from the run history.
    """
    from strata.history import RunHistory
    from strata.project.jobs_edit import cron_expression
    from strata.project.jobs_edit import job as find_job

    shaped: dict[str, list[dict[str, Any]]] = {"job": [], "elt": []}
    with RunHistory.open(project) as history:
        for entry in project.model.schedules:
            common = {"name": entry.name, "interval": entry.interval}
            cron = cron_expression(entry.interval)
            if entry.job is not None:
                job = find_job(project, entry.job)
                shaped["job"].append(
                    {**common, "cron_interval": cron, "env": entry.env, "job": {"name": job.name, "tasks": job.tasks}}
                )
                continue
            last = history.last_success(entry.name)
            shaped["elt"].append(
                {
                    "name": entry.name,
                    "extractor": entry.extractor,
                    "loader": entry.loader,
                    "transform": entry.transform,
                    "interval": entry.interval,
                    "env": entry.env,
                    "cron_interval": cron,
                    "last_successful_run_ended_at": None
                    if last is None or last.ended_at is None
                    else last.ended_at.isoformat(),
                    "elt_args": [
                        str(entry.extractor),
                        str(entry.loader),
                        f"--transform={entry.transform}",
                        f"--state-id={entry.name}",
                    ],
                }
            )
    return shaped


@schedule.command("remove")
@click.argument("name")
@pass_context
def schedule_remove(ctx: Context, name: str) -> None:
    """Remove a schedule."""
    from strata.project.jobs_edit import remove_schedule

    project = ctx.project()
    where = remove_schedule(project, name)
    ctx.emit({"removed": name}, lambda: click.echo(f"Removed schedule `{name}` from {where}"))


@schedule.command("run")
@click.argument("name")
@run_options
@pass_context
def schedule_run(ctx: Context, /, name: str, merge_state: bool, state_strategy: str, **flags: Any) -> None:
    """Run a schedule now: its job, or its extractor and loader (state id: the schedule's name).

    The schedule's env: variables are set for the run; STRATA_ENVIRONMENT among them picks the
    environment unless -e is given.
    """
    from strata.project import jobs_edit
    from strata.project.expand import expand_env
    from strata.project.project import Project

    project = ctx.project()
    entry = jobs_edit.schedule(project, name)
    jobs_edit.check_name("schedule", entry.name)
    if entry.env:
        env = expand_env(
            entry.env,
            project.variables,
            f"{project.file_name}: schedules.{name}.env",
            strict=project.strict_env_var_mode,
        )
        project = Project(
            project.root,
            environment=ctx.environment,
            no_environment=ctx.no_environment,
            environ={**os.environ, **env},
        )
    blocks = jobs_edit.schedule_blocks(project, entry)
    flags["state_strategy"] = strategy_of(state_strategy, merge_state)
    if entry.job is None:
        flags["state_id"] = entry.name  # Meltano's state id for an extractor/loader schedule
    run_blocks(ctx, project, blocks, flags)


@schedule.command("export")
@click.option("--to", "target", type=click.Choice(["cron", "dagster"]), required=True, help="What to export to.")
@pass_context
def schedule_export(ctx: Context, target: str) -> None:
    """Print the schedules as crontab lines, or as a Dagster code location.

    A schedule that cannot run (a missing job, a bad interval, a command its plugin lacks) is left
    out with a warning;
    only when none can run is that an error.

    Cron: install the lines with `crontab -e`. Dagster: save the output as a .py file, then
    `dagster dev -f FILE`; each schedule is a job that runs `strata schedule run NAME`.
    """
    from strata.ingest.commands import find, is_command_block
    from strata.project.jobs_edit import (
        check_interval,
        check_name,
        cron_expression,
        schedule_blocks,
        schedule_environment,
    )

    project = ctx.project()
    strata = _strata_executable()
    active = project.environment.name if project.environment is not None else None
    rows: list[tuple[Schedule, str | None, str | None]] = []
    skipped: list[tuple[Schedule, UsageError]] = []
    for entry in project.model.schedules:
        try:
            check_name("schedule", entry.name)
            check_interval(entry.interval)
            for block in schedule_blocks(project, entry):
                if is_command_block(block):
                    find(project, block)  # a command the plugin lacks would only fail when the schedule runs
        except UsageError as exc:
            skipped.append((entry, exc))
            continue
        rows.append((entry, cron_expression(entry.interval), schedule_environment(entry) or active))
    if skipped and not rows:
        raise skipped[0][1]  # nothing to export: the first reason is the error
    for entry, problem in skipped:
        click.echo(f"strata: warning: schedule `{entry.name}` is not exported: {problem}", err=True)
    if target == "dagster":
        from strata.project.dagster_export import render

        click.echo(render(project.root, strata, [(entry.name, cron, env) for entry, cron, env in rows]), nl=False)
        return
    root = str(project.root)
    logs = project.system_dir / "logs"
    lines = [
        f"# strata schedules of {root}",
        f"# made by `strata schedule export --to cron`; output of each run is appended to {logs}/schedule-<name>.log",
    ]
    lines.extend(f"# {entry.name}: not exported: {problem.reason}" for entry, problem in skipped)
    for entry, expression, environment in rows:
        if expression is None:
            lines.append(f"# {entry.name}: {entry.interval.strip()}, not run on a clock")
            continue
        command = [strata, "-C", root, *(["-e", environment] if environment else []), "schedule", "run", entry.name]
        log = str(logs / f"schedule-{entry.name}.log")
        shell = (f"mkdir -p {shlex.quote(str(logs))} && {shlex.join(command)} >> {shlex.quote(log)} 2>&1").replace(
            "%", "\\%"
        )  # cron turns an unescaped % into a newline
        lines.append(f"# {entry.name}: {_target(entry)} ({entry.interval.strip()})")
        lines.append(f"{expression} {shell}")
    click.echo("\n".join(lines))


def _strata_executable() -> str:
    """The absolute path of the ``strata`` script beside this Python (cron has a bare PATH)."""
    beside = Path(sys.executable).with_name("strata")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    import shutil

    return shutil.which("strata") or "strata"


COMMANDS = [job, schedule]
