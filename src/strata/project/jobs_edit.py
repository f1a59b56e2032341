"""Jobs and schedules: reading, checking and editing them in the project file.

A job is Meltano's shape: ``tasks`` is a string or a list of strings and lists of strings; each
string holds blocks separated by spaces (``tap-x target-y``), and a block may name another job.
A schedule runs a job, or an extractor and a loader, at an ``interval``: a 5-field cron
expression or one of Meltano's words (``@daily``, ``@manual``, …). Job and schedule names use
the plugin name rule (schedule names become log file names). Every edit checks its input, then
``Project.save`` validates the whole file before writing it, so a bad edit never lands.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from strata.errors import JobNotFoundError, PluginNotFoundError, ProjectFileError, UsageError
from strata.project.project import ENVIRONMENT_VARIABLES, PLUGIN_NAME_RULE, valid_plugin_name

if TYPE_CHECKING:
    from strata.project.project import Project
    from strata.project.schema import Job, Schedule

INTERVALS: dict[str, str | None] = {
    "@once": None,
    "@manual": None,
    "@none": None,
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""Meltano's interval words and the cron expression each stands for (None: never on a clock)."""

TASKS_SHAPE = 'a YAML list of strings or of lists of strings, like \'["tap-x target-y", ["tap-a target-b"]]\''

_FEATURE_BLOCK = re.compile(r"features:build(\[[^\]]*\])?")


def check_name(kind: str, name: str) -> None:
    """Job and schedule names end up in file names and commands: keep them plain."""
    if not valid_plugin_name(name):
        raise UsageError(f"`{name}` is not a valid {kind} name", PLUGIN_NAME_RULE)


# -- reading ------------------------------------------------------------------------------


def job(project: Project, name: str) -> Job:
    """The job called ``name``; an unknown name says which ones exist."""
    for entry in project.model.jobs:
        if entry.name == name:
            return entry
    raise JobNotFoundError(f"no job named `{name}` in {project.file_name}", _hint(name, project.model.jobs, "job"))


def schedule(project: Project, name: str) -> Schedule:
    """The schedule called ``name``; an unknown name says which ones exist."""
    for entry in project.model.schedules:
        if entry.name == name:
            return entry
    raise JobNotFoundError(
        f"no schedule named `{name}` in {project.file_name}", _hint(name, project.model.schedules, "schedule")
    )


def _hint(name: str, entries: list[Job] | list[Schedule], kind: str) -> str:
    names = [e.name for e in entries]
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"defined {kind}s: {', '.join(names)}" if names else f"add one with `strata {kind} add`"


def flat_blocks(tasks: str | list[Any]) -> list[str]:
    """Every block of ``tasks`` in order, nested lists flattened (job names not expanded)."""
    if isinstance(tasks, str):
        return tasks.split()
    return [block for task in tasks for block in flat_blocks(task)]


def job_blocks(project: Project, name: str) -> list[str]:
    """The blocks a job runs, in order, with the jobs it names expanded (a cycle is an error)."""

    def expand(job_name: str, chain: list[str]) -> list[str]:
        if job_name in chain:
            raise UsageError(
                f"job `{name}` runs itself: {' -> '.join([*chain, job_name])}", "remove the cycle from the tasks"
            )
        names = {j.name for j in project.model.jobs}
        out: list[str] = []
        for block in flat_blocks(job(project, job_name).tasks):
            out.extend(expand(block, [*chain, job_name]) if block in names else [block])
        return out

    return expand(name, [])


def schedule_blocks(project: Project, entry: Schedule) -> list[str]:
    """The blocks a schedule runs: its job's, or its extractor and loader."""
    if entry.job is not None:
        return job_blocks(project, entry.job)
    if entry.extractor is None or entry.loader is None:
        raise UsageError(
            f"schedule `{entry.name}` names neither a job nor an extractor and a loader",
            f"fix it in {project.file_name}, or remove it and add it again",
        )
    for plugin_name, plugin_type in ((entry.extractor, "extractors"), (entry.loader, "loaders")):
        _plugin_of_type(project, plugin_name, plugin_type)
    return [entry.extractor, entry.loader]


def schedule_environment(entry: Schedule) -> str | None:
    """The environment a schedule's ``env:`` asks for (``STRATA_ENVIRONMENT``), if any."""
    for var in ENVIRONMENT_VARIABLES:
        value = entry.env.get(var)
        if value:
            return str(value)
    return None


# -- intervals ----------------------------------------------------------------------------


def cron_expression(interval: str) -> str | None:
    """The 5-field cron expression of a valid ``interval`` (None for ``@manual``, ``@once``, ``@none``)."""
    word = interval.strip().lower()
    if word in INTERVALS:
        return INTERVALS[word]
    return " ".join(interval.split())


def check_interval(interval: str) -> None:
    """A 5-field cron expression or one of ``INTERVALS``; anything else is a clear error."""
    word = interval.strip().lower()
    if word in INTERVALS:
        return
    words = ", ".join(INTERVALS)
    if word.startswith("@"):
        raise UsageError(f"`{interval}` is not an interval strata knows", f"use a 5-field cron expression or {words}")
    fields = interval.split()
    from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type information

    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):  # noqa: PLR2004 - minute hour day month weekday
        raise UsageError(
            f"`{interval}` is not a valid cron expression",
            f"write 5 fields (minute hour day-of-month month day-of-week, e.g. `0 2 * * *`) or one of {words}",
        )


def next_run(entry: Schedule, now: datetime) -> datetime | None:
    """When the schedule runs next after ``now`` (aware), in ``now``'s time zone; None if never on a clock."""
    check_interval(entry.interval)
    expression = cron_expression(entry.interval)
    if expression is None:
        return None
    base = now
    if entry.start_date:
        try:
            start = datetime.fromisoformat(entry.start_date)
        except ValueError:
            raise UsageError(
                f"schedule `{entry.name}` has start_date `{entry.start_date}`, which is not a date",
                "write it as YYYY-MM-DD or an ISO 8601 time",
            ) from None
        start = start.replace(tzinfo=now.tzinfo) if start.tzinfo is None else start.astimezone(now.tzinfo)
        base = max(base, start.replace(microsecond=0) - timedelta(seconds=1))
    from croniter import croniter

    result = croniter(expression, base).get_next(datetime)
    assert isinstance(result, datetime)
    return result


# -- editing ------------------------------------------------------------------------------


def parse_tasks(text: str) -> list[str | list[str]]:
    """``--tasks`` as the project file keeps it: YAML, a single string becoming a one-task list."""
    from strata.project.yamlfile import load_text

    try:
        tasks = load_text(text, "--tasks", typ="safe")
    except ProjectFileError as exc:
        problem = exc.reason.split(": ", 1)[1]
        raise UsageError(f"--tasks is not valid YAML: {problem}", f"write {TASKS_SHAPE}") from None
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks:
        raise UsageError("--tasks must name at least one task", f"write {TASKS_SHAPE}")
    out: list[str | list[str]] = []
    for task in tasks:
        if isinstance(task, str) and task.split():
            out.append(task.strip())
        elif isinstance(task, list) and task and all(isinstance(t, str) and t.split() for t in task):
            out.append([t.strip() for t in task])
        else:
            raise UsageError(f"--tasks holds `{task!r}`, which is not a task", f"write {TASKS_SHAPE}")
    return out


def _known_blocks(project: Project) -> set[str]:
    known = {ref.name for ref in project.plugins()}
    for ref in project.plugins("mappers"):
        known.update(str(m.get("name")) for m in ref.plugin.mappings if isinstance(m, dict) and m.get("name"))
    return known


def block_hint(project: Project, block: str) -> str:
    """What to do about a block the project does not know: the closest known name, and ``strata add``."""
    from strata.ingest.commands import is_command_block
    from strata.project.project import BUILTIN_LOADER

    if is_command_block(block):
        return _command_hint(project, block)
    known = _known_blocks(project) | {job.name for job in project.model.jobs} | {BUILTIN_LOADER, "features:build"}
    close = difflib.get_close_matches(block, sorted(known), n=1)
    kind = {"tap": "extractor", "target": "loader"}.get(block.split("-", 1)[0], "extractor|loader|mapper")
    add = f"add it with `strata add {kind} {block}`"
    return f"did you mean `{close[0]}`? Or {add}" if close else f"{add}, or see `strata job list` for jobs"


def _command_hint(project: Project, block: str) -> str:
    """The closest ``plugin:command`` the project defines, or how to define this one."""
    from strata.ingest.commands import plugin_commands

    known: set[str] = set()
    for ref in project.plugins():
        with contextlib.suppress(ProjectFileError):  # a malformed entry is reported where it is used
            known.update(command.block for command in plugin_commands(project, ref).values())
    close = difflib.get_close_matches(block, sorted(known), n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    plugin, _, command = block.partition(":")
    return f"add a plugin `{plugin}` with a `{command}` entry under its `commands:`"


def _check_blocks(project: Project, name: str, blocks: list[str]) -> None:
    from strata.ingest.commands import find, is_command_block

    plugins = _known_blocks(project)
    jobs = {j.name for j in project.model.jobs}
    for block in blocks:
        if block == name:
            raise UsageError(f"job `{name}` cannot run itself", "remove it from --tasks")
        if block in plugins or block in jobs or _FEATURE_BLOCK.fullmatch(block):
            continue
        if is_command_block(block) and block.partition(":")[0] in plugins:
            find(project, block)  # an unknown command says which ones the plugin has
            continue
        raise UsageError(
            f"--tasks names `{block}`, which is neither a plugin nor a job in {project.file_name}",
            block_hint(project, block),
        )


def add_job(project: Project, name: str, tasks: list[str | list[str]]) -> None:
    """Append a job to the project file and save it."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    check_name("job", name)
    if any(j.name == name for j in project.model.jobs):
        raise UsageError(f"a job named `{name}` already exists", "choose another name or `strata job remove` it first")
    if any(ref.name == name for ref in project.plugins()):
        raise UsageError(f"`{name}` is already a plugin name; a job of that name would hide it", "choose another name")
    _check_blocks(project, name, flat_blocks(tasks))
    entry = CommentedMap()
    entry["name"] = name
    entry["tasks"] = CommentedSeq(t if isinstance(t, str) else _flow(CommentedSeq(t)) for t in tasks)
    _section(project, "jobs").append(entry)
    project.save()


def _flow(seq: Any) -> Any:
    """A nested task list written inline (``- [tap-a target-b, tap-c target-d]``)."""
    seq.fa.set_flow_style()
    return seq


def remove_job(project: Project, name: str) -> str:
    """Remove a job that no schedule and no other job uses; return the name of the file it was in."""
    job(project, name)
    users = [f"schedule `{s.name}`" for s in project.model.schedules if s.job == name]
    users += [f"job `{j.name}`" for j in project.model.jobs if j.name != name and name in flat_blocks(j.tasks)]
    if users:
        raise UsageError(f"job `{name}` is used by {', '.join(users)}", "remove or change those first")
    index = next(i for i, j in enumerate(project.model.jobs) if j.name == name)
    where = project.file_of(["jobs", index])
    del project.tree["jobs"][index]
    project.save()
    return where


def add_schedule(
    project: Project,
    name: str,
    interval: str,
    *,
    job_name: str | None = None,
    extractor: str | None = None,
    loader: str | None = None,
) -> None:
    """Append a schedule (of a job, or of an extractor and a loader) and save it."""
    from ruamel.yaml.comments import CommentedMap

    check_name("schedule", name)
    if any(s.name == name for s in project.model.schedules):
        raise UsageError(
            f"a schedule named `{name}` already exists", "choose another name or `strata schedule remove` it first"
        )
    check_interval(interval)
    if job_name is not None and (extractor is not None or loader is not None):
        raise UsageError("give either --job or --extractor and --loader, not both", "a schedule runs one of them")
    if job_name is None and (extractor is None or loader is None):
        raise UsageError("a schedule needs --job, or --extractor and --loader", "say what it runs")
    entry = CommentedMap()
    entry["name"] = name
    entry["interval"] = interval.strip()
    if job_name is not None:
        job(project, job_name)
        entry["job"] = job_name
    else:
        assert extractor is not None
        assert loader is not None
        _plugin_of_type(project, extractor, "extractors")
        _plugin_of_type(project, loader, "loaders")
        entry["extractor"] = extractor
        entry["loader"] = loader
        entry["transform"] = "skip"  # what Meltano writes; strata runs no transform step either way
    _section(project, "schedules").append(entry)
    project.save()


def remove_schedule(project: Project, name: str) -> str:
    """Remove a schedule; return the name of the file it was in."""
    schedule(project, name)
    index = next(i for i, s in enumerate(project.model.schedules) if s.name == name)
    where = project.file_of(["schedules", index])
    del project.tree["schedules"][index]
    project.save()
    return where


def _plugin_of_type(project: Project, name: str, plugin_type: str) -> None:
    ref = project.plugin(name)
    if ref.plugin_type != plugin_type:
        raise PluginNotFoundError(
            f"`{name}` is in `{ref.plugin_type}`, not `{plugin_type}`", f"name one of the {plugin_type}"
        )


def _section(project: Project, key: str) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    section = project.tree.get(key)
    if not isinstance(section, CommentedSeq):
        section = CommentedSeq()
        project.tree[key] = section
    return section
