"""``strata schedule export --to dagster``: the project's schedules as a Dagster code location.

The output is a Python module for ``dagster dev -f FILE`` (or a ``workspace.yaml`` entry). Each
strata schedule becomes a Dagster job of one op that runs ``strata -C ROOT [-e ENV] schedule run
NAME``, so state, run history, locks and logs stay strata's; Dagster adds its clock, UI and run
log. Schedules on a clock also become Dagster schedules with the same cron expression, in the
machine's time zone (as ``schedule list`` and cron read them). Dagster is not a dependency of
strata: the module imports it, strata only writes text.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

_NAME = re.compile(r"[^A-Za-z0-9_]")

TEMPLATE = '''\
"""Dagster definitions for the strata schedules of {root}.

Made by `strata schedule export --to dagster`; export again after changing the schedules.
Load with `dagster dev -f <this file>`. Each strata schedule is a Dagster job whose one op runs
`strata schedule run NAME` in the project: strata keeps the state, run history and logs, and the
op copies strata's output into the Dagster run log and fails when strata fails. Schedules that
run on a clock are Dagster schedules with the same cron expression, in {timezone}.
"""

import subprocess

import dagster as dg

STRATA = {strata!r}
PROJECT = {root!r}
TIMEZONE = {timezone!r}

# (Dagster job name, strata schedule, cron expression or None when not on a clock, environment)
SCHEDULES: list[tuple[str, str, str | None, str | None]] = [
{rows}]


def strata_job(name: str, schedule: str, environment: str | None) -> dg.JobDefinition:
    """A job that runs one strata schedule."""
    command = [STRATA, "-C", PROJECT, *(["-e", environment] if environment else []), "schedule", "run", schedule]

    @dg.op(name=f"{{name}}__strata_run")
    def strata_run(context: dg.OpExecutionContext) -> None:
        context.log.info("running " + " ".join(command))
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                context.log.info(line.rstrip())
        if process.returncode != 0:
            raise dg.Failure(f"`strata schedule run {{schedule}}` exited with {{process.returncode}}")

    @dg.job(name=name, description=f"strata schedule `{{schedule}}` of {{PROJECT}}")
    def strata_schedule() -> None:
        strata_run()

    return strata_schedule


JOBS = {{name: strata_job(name, schedule, environment) for name, schedule, _, environment in SCHEDULES}}

defs = dg.Definitions(
    jobs=list(JOBS.values()),
    schedules=[
        dg.ScheduleDefinition(
            name=f"{{name}}__schedule", job=JOBS[name], cron_schedule=cron, execution_timezone=TIMEZONE
        )
        for name, _, cron, _ in SCHEDULES
        if cron is not None
    ],
)
'''


def job_names(schedules: list[str]) -> dict[str, str]:
    """A Dagster name (letters, digits, ``_``) per schedule name, unique."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for schedule in schedules:
        base = _NAME.sub("_", schedule)
        if not base or base[0].isdigit():
            base = "s_" + base
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[schedule] = name
    return names


def local_timezone() -> str:
    """The machine's IANA time zone (``TZ``, ``/etc/timezone``, the ``/etc/localtime`` link), else UTC."""
    import os
    from zoneinfo import available_timezones

    known = available_timezones()
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    with contextlib.suppress(OSError):
        link = Path("/etc/localtime").resolve()
        if "zoneinfo" in link.parts:
            candidates.append("/".join(link.parts[link.parts.index("zoneinfo") + 1 :]))
    return next((c for c in candidates if c in known), "UTC")


def render(root: Path, strata: str, rows: list[tuple[str, str | None, str | None]]) -> str:
    """The module for ``rows`` of (strata schedule, cron expression or None, environment or None)."""
    names = job_names([schedule for schedule, _, _ in rows])
    lines = "".join(
        f"    ({names[schedule]!r}, {schedule!r}, {cron!r}, {environment!r}),\n" for schedule, cron, environment in rows
    )
    return TEMPLATE.format(root=str(root), strata=strata, timezone=local_timezone(), rows=lines)
