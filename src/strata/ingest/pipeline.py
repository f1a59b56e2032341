"""``strata run`` / ``strata el``: tap -> mappers -> target, with state and run history.

Data never passes through strata: the tap's stdout is an OS pipe into the first mapper or the
target, so throughput is the plugins' own and memory stays flat. strata reads only:

- the target's stdout, where a Singer target prints each state it has committed: every line is
  stored as partial state as it arrives (a killed run resumes from the last one);
- every plugin's stderr, copied into the run log with the plugin's name, with the tap's
  ``METRIC`` lines counted as records per stream.

On success the partial state becomes the completed state. Any plugin failing stops the others,
and the error names it with its last log lines. Children die with strata (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Self

from strata.errors import Interrupted, RuntimeFailure, UsageError
from strata.ingest.blocks import Block, Mapping
from strata.ingest.catalog import tap_args
from strata.ingest.discovery import run_catalog
from strata.ingest.invoke import Invocation, exit_code, prepare, prepare_command
from strata.ingest.pipeline_env import prepare_block, settings_in_block
from strata.ingest.redaction import Redactor
from strata.ingest.runfiles import config_file
from strata.ingest.venv import plugin_env
from strata.processes import die_with_parent as _die_with_parent
from strata.project.files import private_dir, what_to_do
from strata.state.base import merges

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import FrameType

    from strata.progress import Reporter
    from strata.project.project import PluginRef, Project

_METRIC = re.compile(r"METRIC: (\{.*\})")
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Terminal control sequences (colours) in a plugin's output."""
_TAIL = 8
_HEARTBEAT_SECONDS = 5.0
_GRACE_SECONDS = 5.0
"""How long stopped plugins get before the next, stronger signal."""
_STOPPING = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a run as Ctrl-C (SIGINT) does."""
FEATURE_BLOCK = re.compile(r"features:build(\[[^\]]*\])?")


@dataclass
class RunOptions:
    """What ``run`` and ``el`` take from the command line."""

    full_refresh: bool = False
    state_id_suffix: str | None = None
    state_id: str | None = None
    force: bool = False
    dry_run: bool = False
    progress: Callable[[dict[str, int], float], None] | None = None
    build_progress: Callable[[], contextlib.AbstractContextManager[Reporter | None]] | None = None
    """Around each ``features:build`` block: the reporter its batches go to (None: nothing shown)."""
    refresh_catalog: bool = False
    """Discover again even when a cached catalog exists (``--full-refresh`` does too)."""
    state_strategy: str = "auto"
    """How the run's states combine with the stored state (``strata.state.merges``)."""
    no_state_update: bool = False
    """Meltano's ``--no-state-update``: no stored state is read, locked or written."""
    select_filter: tuple[str, ...] = ()
    """``el --select`` stream globs, ``!``-prefixed for ``--exclude`` (``catalog.select_filter``)."""
    catalog: Path | None = None
    """A catalog file used as it is instead of discovering (``el --catalog``)."""
    state: Path | None = None
    """A state file the tap starts from instead of the stored state (``el --state``)."""


def _mapping(project: Project, name: str) -> tuple[PluginRef, Mapping] | None:
    for ref in project.plugins("mappers"):
        for entry in ref.plugin.mappings:
            if isinstance(entry, dict) and entry.get("name") == name:
                config = entry.get("config") or {}
                return ref, Mapping(name, dict(config) if isinstance(config, dict) else {})
    return None


@dataclass
class RunResult:
    """How one block went."""

    state_id: str
    run_id: str | None
    records: dict[str, int]
    seconds: float
    states: int
    log: Path | None
    dry_run: bool = False
    plan: list[str] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    """What feature blocks built, per feature (``FeatureBuild.to_json``)."""
    pipeline: bool = True
    """False for a run of feature blocks alone."""
    exited: dict[str, float] = field(default_factory=dict)
    """Per plugin: seconds from the pipeline's start until its process exited (to 50 ms)."""


def expand(project: Project, names: list[str]) -> list[str]:
    """Job names replaced by their tasks, everything split into block names."""
    jobs = {job.name: job for job in project.model.jobs}
    out: list[str] = []
    for name in names:
        job = jobs.get(name)
        if job is None:
            out.extend(name.split())
            continue
        tasks = job.tasks if isinstance(job.tasks, list) else [job.tasks]
        for task in tasks:
            for part in task if isinstance(task, list) else [task]:
                out.extend(part.split())
    return out


@dataclass(frozen=True)
class CommandBlock:
    """A ``PLUGIN:COMMAND`` block: one process, with a run of its own in the history."""

    name: str
    invocation: Invocation | None = field(repr=False)
    """None only in a dry run, for a plugin not installed yet."""


def _command_block(project: Project, name: str, *, dry_run: bool) -> CommandBlock:
    """A ``PLUGIN:COMMAND`` block, resolved; in a dry run, a plugin not installed yet is only found."""
    from strata.ingest.commands import find

    if dry_run:
        env = plugin_env(project, find(project, name).plugin)
        if env.pip_url is not None and not env.is_installed:
            return CommandBlock(name, None)
    return CommandBlock(name, prepare_command(project, name, []))


def parse_blocks(project: Project, names: list[str], *, dry_run: bool = False) -> list[Block | str | CommandBlock]:
    """Group block names into pipelines; feature blocks pass through as strings.

    A ``PLUGIN:COMMAND`` block may stand anywhere outside a pipeline, and so may a utility or a
    transformer alone (its executable with no arguments, as Meltano runs it); a command is resolved
    here (executable, expanded args), so a typo or an unset variable stops the run before anything has run.
    """
    from strata.ingest.commands import is_command_block

    out: list[Block | str | CommandBlock] = []
    pending: list[PluginRef] = []
    mappings: list[Mapping | None] = []
    for name in expand(project, names):
        standalone = FEATURE_BLOCK.fullmatch(name) is not None or is_command_block(name)
        if standalone and pending:
            raise UsageError(f"`{pending[0].name}` has no loader before `{name}`", "end each pipeline with a loader")
        if FEATURE_BLOCK.fullmatch(name):
            out.append(name)
            continue
        if standalone:
            out.append(_command_block(project, name, dry_run=dry_run))
            continue
        mapping: Mapping | None = None
        try:
            ref = project.plugin(name)
        except UsageError:
            found = _mapping(project, name)
            if found is None:
                from strata.project.jobs_edit import block_hint

                raise UsageError(
                    f"block `{name}` is not a plugin, a mapping or a job in {project.file_name}",
                    block_hint(project, name),
                ) from None
            ref, mapping = found
        if ref.plugin_type == "extractors":
            if pending:
                raise UsageError(
                    f"`{pending[0].name}` is followed by another extractor `{name}`", "put a loader between them"
                )
            pending, mappings = [ref], []
        elif ref.plugin_type == "mappers":
            if not pending:
                raise UsageError(f"mapper `{name}` has no extractor before it", "write `EXTRACTOR MAPPER… LOADER`")
            pending.append(ref)
            mappings.append(mapping)
        elif ref.plugin_type == "loaders":
            if not pending:
                raise UsageError(f"loader `{name}` has no extractor before it", "write `EXTRACTOR [MAPPER…] LOADER`")
            out.append(Block(pending[0], tuple(pending[1:]), ref, tuple(mappings)))
            pending, mappings = [], []
        elif pending:
            raise UsageError(f"`{pending[0].name}` has no loader before `{name}`", "end each pipeline with a loader")
        else:
            out.append(CommandBlock(name, prepare(project, name, [])))
    if pending:
        raise UsageError(f"`{pending[-1].name}` has no loader after it", "end the pipeline with a loader")
    if not out:
        raise UsageError("nothing to run", "name an extractor and a loader, or a job")
    return out


def state_id_for(project: Project, block: Block, options: RunOptions) -> str:
    """``<environment>:<extractor>-to-<loader>[:<suffix>]``, Meltano's form."""
    from strata.state import make_state_id

    if options.state_id:
        return options.state_id
    env = project.environment
    suffix = options.state_id_suffix or (env.state_id_suffix if env is not None else None)
    return make_state_id(env.name if env else "default", block.extractor.name, block.loader.name, suffix)


def run_blocks(project: Project, names: list[str], options: RunOptions) -> list[RunResult]:
    """Run every block in order; stop at the first failure.

    Feature blocks right after a pipeline run inside that pipeline's run (one entry in the run
    history); a feature block on its own gets a run of its own, and so does each command block.
    """
    results: list[RunResult] = []
    items = parse_blocks(project, names, dry_run=options.dry_run)
    with stopped_by_signals():
        _run_items(project, items, options, results)
    return results


def _run_items(
    project: Project, items: list[Block | str | CommandBlock], options: RunOptions, results: list[RunResult]
) -> None:
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if isinstance(item, CommandBlock):
            results.append(run_command(project, item, options))
            continue
        builds: list[str] = []
        while index < len(items) and isinstance(items[index], str):
            builds.append(str(items[index]))
            index += 1
        if isinstance(item, str):
            results.append(run_features(project, [item, *builds], options))
        else:
            results.append(run_block(project, item, options, builds=builds))


class _Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread the way Ctrl-C raises ``KeyboardInterrupt``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None = None) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Signalled(signum)


@contextlib.contextmanager
def _handling(signums: tuple[int, ...], handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for ``signums`` inside the block (only the main thread may set handlers; elsewhere none)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP end the block with ``Interrupted`` (exit 128 + N) after its cleanup ran."""
    with _signals_interrupt():
        try:
            yield
        except KeyboardInterrupt as exc:
            raise _interrupted(exc, None, None) from None


def _signals_interrupt() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP stop a run as Ctrl-C does: plugins stopped, log and confirmed state kept.

    Without this their default action would end strata at once, leaving config files behind.
    """
    return _handling(_STOPPING, _raise)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """A stopping signal that arrives inside the block takes effect at its end; a second one at once.

    Used while the run is written to the history, so that a run interrupted early is still recorded.
    """
    received: list[int] = []

    def defer(signum: int, _frame: FrameType | None) -> None:
        if received:
            _raise(signum)
        received.append(signum)

    with _handling((signal.SIGINT, *_STOPPING), defer):
        yield
    if received:
        _raise(received[0])


def _signal_number(exc: BaseException) -> int:
    return exc.signum if isinstance(exc, _Signalled) else signal.SIGINT


def _signal_name(exc: BaseException) -> str:
    return signal.Signals(_signal_number(exc)).name


def _finish(run: Any, exc: BaseException) -> None:
    """Close a run that ``exc`` ended: ``cancelled`` by a signal, else ``failed``."""
    if isinstance(exc, KeyboardInterrupt):
        run.finish("cancelled", error=f"interrupted by {_signal_name(exc)}")
    else:
        run.finish("failed", error=str(exc) or type(exc).__name__)


def _interrupted(exc: KeyboardInterrupt, run: Any, states: int | None) -> Interrupted:
    """The one line a run stopped by a signal ends with.

    ``run`` is None if it was not recorded yet; ``states`` (None: no pipeline) counts the states stored.
    """
    cancelled = "" if run is None else f": run {run.id[:8]} cancelled"
    kept = "" if states is None else f", {states} state{'s' if states != 1 else ''} the target confirmed kept"
    again = "run it again" if states is None else "run it again to resume"
    return Interrupted(f"interrupted by {_signal_name(exc)}{cancelled}{kept}", again, _signal_number(exc))


def feature_names(block: str) -> list[str]:
    """``features:build[a,b/c]`` -> ``["a", "b/c"]``; plain ``features:build`` -> all."""
    match = FEATURE_BLOCK.fullmatch(block)
    assert match is not None
    inner = (match.group(1) or "[]")[1:-1]
    return [name.strip() for name in inner.split(",") if name.strip()]


def _build(
    project: Project, blocks: list[str], run: Any, log_path: Path | None, options: RunOptions
) -> list[dict[str, Any]]:
    """Run feature blocks; a failed batch fails the run after everything else was built.

    What each block did goes into ``run`` (its history row) and the run log as soon as it ends.
    """
    from strata.build.runner import build, failed

    done: list[dict[str, Any]] = []
    for block in blocks:
        with contextlib.nullcontext() if options.build_progress is None else options.build_progress() as report:
            results = build(
                project, feature_names(block), dry_run=options.dry_run, run_id=run.id if run else None, report=report
            )
        built = [r.to_json() for r in results]
        done.extend(built)
        if run is not None:
            run.add_builds(built)
        if log_path is not None:
            _log_builds(log_path, built)
        reason = failed(results)
        if reason:
            raise RuntimeFailure(
                f"`{block}`: {reason}",
                (f"see the errors in `strata runs show {run.id[:8]}`" if run else "see `strata build`")
                + "; those samples are skipped until their inputs or code_version change",
            )
    return done


def _log_builds(log_path: Path, built: list[dict[str, Any]]) -> None:
    """Append what a feature block did to the run log (owner-only)."""
    from strata.history.model import build_lines

    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as log:
        log.writelines(f"features:build | {line}\n" for b in built for line in build_lines(b))


def _new_log(project: Project) -> Path:
    """A new, empty run log under ``.strata/logs/runs/`` (owner-only, as its directory)."""
    logs = private_dir(private_dir(project.system_dir / "logs") / "runs")
    path = logs / f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}.log"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


@contextlib.contextmanager
def _recorded(start: Callable[[], Any]) -> Iterator[Any]:
    """A run of blocks without a pipeline, from the moment ``start()`` records it to its end.

    A signal while it is recorded is deferred (a run started is a run recorded as it ends); inside,
    it beats and ends ``success``, or ``failed`` / ``cancelled``; a signal ends it with the one
    line of ``_interrupted``.
    """
    run: Any = None
    try:
        with deferred_signals():
            run = start()
        with run.keep_alive():
            yield run
    except BaseException as exc:
        if run is not None:
            _finish(run, exc)
        if isinstance(exc, KeyboardInterrupt):
            raise _interrupted(exc, run, None) from None
        raise
    run.finish("success")


def run_features(project: Project, blocks: list[str], options: RunOptions) -> RunResult:
    """Feature blocks with no pipeline before them: one run in the history, beating while it builds."""
    env = project.environment.name if project.environment else "default"
    state_id = f"{env}:features:build"
    if options.dry_run:
        builds = _build(project, blocks, None, None, options)
        return RunResult(
            state_id, None, {}, 0.0, 0, None, dry_run=True, plan=list(blocks), builds=builds, pipeline=False
        )
    from strata.history import RunHistory

    started = time.monotonic()
    log_path = _new_log(project)
    environment = project.environment.name if project.environment else None
    with (
        RunHistory.open(project) as history,
        _recorded(lambda: history.start(state_id, environment, blocks, str(log_path))) as run,
    ):
        builds = _build(project, blocks, run, log_path, options)
    return RunResult(state_id, run.id, {}, time.monotonic() - started, 0, log_path, builds=builds, pipeline=False)


def run_command(project: Project, block: CommandBlock, options: RunOptions) -> RunResult:
    """A ``PLUGIN:COMMAND`` block: its own run in the history, its output (stdout and stderr) in the run log.

    A non-zero exit fails the run with the block's name and its last lines (redacted); Ctrl-C,
    SIGTERM and SIGHUP stop the command as they stop a pipeline.
    """
    env = project.environment.name if project.environment else "default"
    state_id = f"{env}:{block.name}"
    inv = block.invocation
    if options.dry_run:
        shown = "not installed yet" if inv is None else f"{inv.argv[0]} <{len(inv.argv) - 1} args>"
        return RunResult(
            state_id, None, {}, 0.0, 0, None, dry_run=True, plan=[f"{block.name} ({shown})"], pipeline=False
        )
    assert inv is not None  # only a dry run leaves it unresolved
    from strata.history.lite import open_writer

    started = time.monotonic()
    log_path = _new_log(project)
    with contextlib.closing(open_writer(project)) as history, _RunLog(log_path, Redactor(inv.secrets)) as log:
        environment = project.environment.name if project.environment else None
        with _recorded(lambda: history.start(state_id, environment, [block.name], str(log_path))) as run:
            failure = _run_process(project, block.name, inv, log)
            if failure:
                raise RuntimeFailure(failure, f"see the run log {log_path}")
    return RunResult(state_id, run.id, {}, time.monotonic() - started, 0, log_path, pipeline=False)


def _run_process(project: Project, name: str, inv: Invocation, log: _RunLog) -> str | None:
    """Run one command to its end, its output into ``log``; None, or why it failed."""
    plugins = _start(project, [inv.env.ref], [inv], [inv.argv], merge_output=True)
    plugin = plugins[0]
    plugin.name = name  # its log lines and errors say `PLUGIN:COMMAND`
    reader = threading.Thread(target=_read_stderr, args=(plugin, log, None), daemon=True)
    reader.start()
    try:
        plugin.proc.wait()
        _join([reader], 30)
    except BaseException:
        _stop(plugins)
        _join([reader], 5)
        raise
    finally:
        if plugin.proc.stdout is not None:
            plugin.proc.stdout.close()
    if plugin.proc.returncode == 0:
        return None
    return f"block `{name}` failed with exit code {exit_code(plugin.proc.returncode)}: {_last_words(plugin)}"


def run_block(project: Project, block: Block, options: RunOptions, builds: list[str] | None = None) -> RunResult:
    """One pipeline, under the state lock, recorded in the run history; then its feature blocks."""
    from strata.history.model import new_run_id
    from strata.ingest.catalog import read_catalog_file
    from strata.ingest.runfiles import read_json_file

    state_id = state_id_for(project, block, options)
    given_catalog = None if options.catalog is None else read_catalog_file(options.catalog)
    given_state = None if options.state is None else read_json_file(options.state, "--state")
    if options.dry_run:
        plan = [" | ".join(_describe(project, block, i) for i in range(len(block.mappers) + 2))]
        return RunResult(
            state_id, None, {}, 0.0, 0, None, dry_run=True, plan=[f"state id {state_id}", *plan, *(builds or [])]
        )
    catalog = run_catalog(
        project,
        block.extractor,
        refresh=options.full_refresh or options.refresh_catalog,
        given=given_catalog,
        select_filter=options.select_filter,
    )
    with _state_store(project, state_id, options) as (backend, lock):
        record = None if backend is None else backend.get(state_id)
        start_state = None
        if not (options.full_refresh or options.no_state_update):
            start_state = given_state or (None if record is None else singer_state(record.effective(), state_id))
        log_path = _new_log(project)
        environment = project.environment.name if project.environment else None
        with contextlib.ExitStack() as stack:
            runs: list[Any] = []
            run_id = new_run_id()  # the plugins get it before the run is recorded (RUN_ID_VARIABLE)

            def open_run() -> Any:
                # Called once the plugins are starting: opening the system database then overlaps
                # with their own start-up instead of adding to it. The default SQLite database is
                # written with sqlite3 (history/lite.py): no SQLAlchemy import on the run path.
                from strata.history.lite import open_writer

                history = open_writer(project)
                stack.callback(history.close)
                names = [*block.names, *(builds or [])]
                runs.append(history.start(state_id, environment, names, str(log_path), run_id))
                return stack.enter_context(runs[0].keep_alive())  # beats through the pipeline and the builds

            states = _Counter(record=record, merge=merges(options.state_strategy, full_refresh=options.full_refresh))
            try:
                started = time.monotonic()
                result = _pipe(
                    project,
                    block,
                    catalog,
                    start_state,
                    states,
                    backend,
                    state_id,
                    log_path,
                    open_run,
                    lock,
                    options,
                    run_id=run_id,
                )
                if builds:
                    result.builds = _build(project, builds, runs[0], log_path, options)
                    result.seconds = time.monotonic() - started
            except BaseException as exc:
                if runs:
                    _finish(runs[0], exc)
                if isinstance(exc, KeyboardInterrupt):
                    raise _interrupted(exc, runs[0] if runs else None, states.count) from None
                raise
            runs[0].finish("success")
            return result


def dump_block(project: Project, block: Block, options: RunOptions, what: str) -> dict[str, Any]:
    """What Meltano's ``el --dump WHAT`` prints: a file the pipeline would hand a plugin; nothing runs.

    ``extractor-config``/``loader-config`` (secrets redacted; the loader's expanded with the
    extractor's variables, as the run gives it), ``catalog`` (the one the extractor
    gets: discovered, or ``--catalog``, with ``--select/--exclude``), ``state`` (the one it starts
    from: ``--state``, else the stored state; none with ``--full-refresh``).
    """
    from strata.ingest.catalog import read_catalog_file
    from strata.ingest.runfiles import read_json_file

    if what in ("extractor-config", "loader-config"):
        return settings_in_block(project, block, 0 if what == "extractor-config" else -1).config(redacted=True)
    name = block.extractor.name
    if what == "catalog":
        given = None if options.catalog is None else read_catalog_file(options.catalog)
        refresh = options.full_refresh or options.refresh_catalog
        found = run_catalog(project, block.extractor, refresh=refresh, given=given, select_filter=options.select_filter)
        if found is None:
            raise UsageError(f"`{name}` is given no catalog (see its `capabilities:`)", "dump its config or state")
        return found
    state = None
    if not options.full_refresh:
        state = None if options.state is None else read_json_file(options.state, "--state")
        if state is None:
            from strata.state import state_backend_for

            state_id = state_id_for(project, block, options)
            with state_backend_for(project) as backend:
                record = backend.get(state_id)
            state = None if record is None else singer_state(record.effective(), state_id)
    if not state:
        raise UsageError(
            f"`{name}` starts from no state in this pipeline (--full-refresh, or none stored)",
            "see `strata state list`",
        )
    return state


@contextlib.contextmanager
def _state_store(project: Project, state_id: str, options: RunOptions) -> Iterator[tuple[Any, Any]]:
    """The state backend and the run's lock on ``state_id``; neither with ``--no-state-update``."""
    if options.no_state_update:
        yield None, None
        return
    from strata.state import state_backend_for
    from strata.state.backends import lock_seconds

    ttl = lock_seconds(project)
    with state_backend_for(project) as backend, backend.lock(state_id, ttl=ttl, force=options.force) as lock:
        yield backend, lock


def _describe(project: Project, block: Block, position: int) -> str:
    """The pipeline's plugin at ``position`` as a dry run shows it; one not installed yet is named so.

    Its settings still resolve, as the run resolves them (with the variables of the plugins before it).
    """
    ref = [block.extractor, *block.mappers, block.loader][position]
    settings_in_block(project, block, position).config()
    env = plugin_env(project, ref)
    if env.pip_url is not None and not env.is_installed:
        return f"{ref.name} ({env.executable}, not installed yet: `strata install {env.owner.name}`)"
    return f"{ref.name} ({env.executable_path()} --config <0600 file>)"


@dataclass
class _Plugin:
    name: str
    proc: subprocess.Popen[bytes]
    tail: deque[str]


@contextlib.contextmanager
def _files(project: Project, items: dict[str, Any]) -> Iterator[dict[str, Path]]:
    """Owner-only temp files (catalog, state) removed afterwards."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(config_file(project, name, data)) for name, data in items.items()}


def _pipe(
    project: Project,
    block: Block,
    catalog: dict[str, Any] | None,
    start_state: dict[str, Any] | None,
    states: _Counter,
    backend: Any,
    state_id: str,
    log_path: Path,
    open_run: Callable[[], Any],
    lock: Any,
    options: RunOptions,
    *,
    run_id: str,
) -> RunResult:
    """Run the pipeline's plugins, each with ``STRATA_RUN_ID`` (``target-strata`` marks the rows it writes with it)."""
    from strata.history.model import RUN_ID_VARIABLE

    started = time.monotonic()
    refs = [block.extractor, *block.mappers, block.loader]
    invs = prepare_block(project, block)
    for inv in invs:
        inv.environ[RUN_ID_VARIABLE] = run_id
    extra = ({"catalog": catalog} if catalog is not None else {}) | ({"state": start_state} if start_state else {})
    redact = Redactor(frozenset[str]().union(*(inv.secrets for inv in invs)))
    with _files(project, extra) as files, contextlib.ExitStack() as stack, _RunLog(log_path, redact) as log:
        configs = [stack.enter_context(config_file(project, inv.env.ref.name, inv.config)) for inv in invs]
        argvs = []
        for ref, inv, cfg in zip(refs, invs, configs, strict=True):
            args = tap_args(project, ref, files.get("catalog"), files.get("state")) if ref is block.extractor else []
            argvs.append([inv.argv[0], "--config", str(cfg), *args])
        records: dict[str, int] = {}
        plugins: list[_Plugin] = []
        threads: list[threading.Thread] = []
        run: Any = None
        try:
            # a signal before the run is recorded (plugins starting, their readers, the history
            # opening) takes effect once it is: the plugins are then stopped and the run recorded
            with deferred_signals():
                plugins = _start(project, refs, invs, argvs)
                threads = _readers(plugins, log, records, backend, state_id, states)
                run = open_run()
            exited: dict[str, float] = {}
            failure = _wait(plugins, run, lock, records, started, options, exited)
            _join(threads, 30)
        except BaseException:
            _stop(plugins)
            _join(threads, 5)
            if run is not None:
                run.set_records(records)
            raise
        log.check()
        if states.error is not None:
            failure = failure or f"could not store state: {states.error}"
        run.set_records(records)
        if failure:
            raise RuntimeFailure(failure, f"see the run log {log_path}")
        _complete(backend, state_id, states)
    return RunResult(state_id, run.id, records, time.monotonic() - started, states.count, log_path, exited=exited)


def _readers(
    plugins: list[_Plugin],
    log: _RunLog,
    records: dict[str, int],
    backend: Any,
    state_id: str,
    states: _Counter,
) -> list[threading.Thread]:
    """Started threads that read every plugin's stderr into the log and the target's states into ``backend``."""
    threads = [
        threading.Thread(target=_read_stderr, args=(p, log, records if i == 0 else None), daemon=True)
        for i, p in enumerate(plugins)
    ]
    target = plugins[-1].proc.stdout
    assert target is not None
    threads.append(threading.Thread(target=_read_states, args=(target, backend, state_id, states, log), daemon=True))
    for thread in threads:
        thread.start()
    return threads


def _start(
    project: Project,
    refs: list[PluginRef],
    invs: list[Invocation],
    argvs: list[list[str]],
    *,
    merge_output: bool = False,
) -> list[_Plugin]:
    """Start the plugins, each reading the one before; ``merge_output``: stdout goes with stderr."""
    plugins: list[_Plugin] = []
    upstream: IO[bytes] | None = None
    try:
        for ref, inv, argv in zip(refs, invs, argvs, strict=True):
            proc = subprocess.Popen(
                argv,
                stdin=upstream if upstream is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                env=inv.environ,
                cwd=inv.cwd or project.root,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks or threads touched
            )
            if upstream is not None:
                upstream.close()  # the child holds it now; our copy would keep the pipe open
            upstream = proc.stdout
            plugins.append(_Plugin(ref.name, proc, deque(maxlen=_TAIL)))
    except BaseException as exc:
        for plugin in plugins:
            plugin.proc.kill()
        _reap(plugins)
        if isinstance(exc, OSError):
            raise RuntimeFailure(
                f"could not start `{refs[len(plugins)].name}`: {exc.strerror}", "check its executable"
            ) from exc
        raise
    return plugins


class _RunLog:
    """The run log (0600): ``source | line``, secrets redacted; lines that come after ``close`` are dropped.

    Line-buffered, so a strata killed halfway (SIGKILL, OOM) leaves every line it had read in it.
    Reader threads write to it; a thread still reading when the run ends cannot fail on a closed file.
    """

    def __init__(self, path: Path, redact: Redactor) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.path = path
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()
        self._redact = redact
        self.error: OSError | None = None
        """Why the log could not be written (a full disk): later lines are dropped, the run fails."""

    def write(self, source: str, text: str) -> str:
        """Append one line from ``source``; return it as written (redacted).

        A line that cannot be written (full disk) does not stop the reader calling this: it goes
        on draining the plugin's pipe, which would otherwise fill up and block the plugin.
        """
        line = self._redact(text)
        with self._lock:
            if not self._file.closed and self.error is None:
                try:
                    self._file.write(f"{source} | {line}\n")
                except OSError as exc:
                    self.error = exc
        return line

    def check(self) -> None:
        """Raise what to do if a line could not be written."""
        if self.error is not None:
            raise RuntimeFailure(
                f"cannot write the run log {self.path}: {self.error.strerror}", what_to_do(self.path, self.error)
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock, contextlib.suppress(OSError):  # a full disk: the lines are lost, self.error says so
            self._file.close()


def _read_stderr(plugin: _Plugin, log: _RunLog, records: dict[str, int] | None) -> None:
    """Copy a plugin's stderr (its stdout too, if merged into it) into the run log, keeping its last lines."""
    stream = plugin.proc.stderr or plugin.proc.stdout
    assert stream is not None
    for raw in stream:
        text = raw.decode("utf-8", "replace").rstrip("\n")
        plugin.tail.append(log.write(plugin.name, text))
        if records is not None and "METRIC" in text:
            _count(text, records)


def _count(line: str, records: dict[str, int]) -> None:
    match = _METRIC.search(line)
    if match is None:
        return
    try:
        metric = json.loads(match.group(1))
    except ValueError:
        return
    if metric.get("metric") == "record_count" and metric.get("type") == "counter":
        stream = str((metric.get("tags") or {}).get("stream", "?"))
        records[stream] = records.get(stream, 0) + int(metric.get("value") or 0)


@dataclass
class _Counter:
    """States stored during a run.

    Under the run's lock nobody else writes this state id, so the record is kept here instead
    of being read back before every write.
    """

    record: Any = None
    count: int = 0
    error: str | None = None
    merge: bool = False
    """Each state merged into the run's partial state, or replacing it (``strata.state.confirm``)."""


def _read_states(stream: IO[bytes], backend: Any, state_id: str, states: _Counter, log: _RunLog) -> None:
    """Every state line the target prints is stored as partial state right away."""
    from strata.state import confirm

    for raw in stream:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            message = json.loads(text)
        except ValueError:
            log.write("(target stdout)", text)
            continue
        value = message.get("value") if isinstance(message, dict) and message.get("type") == "STATE" else message
        if not isinstance(value, dict) or not value or backend is None:
            continue
        try:
            record = confirm(states.record, {"singer_state": value}, merge=states.merge)
            backend.put(state_id, record)
            states.record = record
            states.count += 1
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure
            states.error = str(exc)


def _wait(
    plugins: list[_Plugin],
    run: Any,
    lock: Any,
    records: dict[str, int],
    started: float,
    options: RunOptions,
    exited: dict[str, float],
) -> str | None:
    """Wait for every plugin; on the first failure stop the rest and say who failed.

    ``exited`` gets each plugin's exit time, in seconds since ``started``.
    """
    last_beat = 0.0
    failed: _Plugin | None = None
    while True:
        codes = [p.proc.poll() for p in plugins]
        for plugin, code in zip(plugins, codes, strict=True):
            if code is not None and plugin.name not in exited:
                exited[plugin.name] = round(time.monotonic() - started, 3)
        bad = [p for p, code in zip(plugins, codes, strict=True) if code not in (None, 0)]
        if bad and failed is None:
            failed = _culprit(plugins, bad)
            for plugin in plugins:
                if plugin.proc.poll() is None:
                    plugin.proc.terminate()
            _reap(plugins)
            break
        if all(code == 0 for code in codes):
            break
        run.set_records(records)  # the counts so far go with every heartbeat: a killed run keeps them
        now = time.monotonic()
        if now - last_beat >= _HEARTBEAT_SECONDS:
            last_beat = now
            run.heartbeat()
            if lock is not None:
                lock.check()  # raises if another run took the lock over with --force
        if options.progress is not None:
            options.progress(dict(records), now - started)
        time.sleep(0.05)
    if failed is None:
        return None
    code = exit_code(failed.proc.returncode or 0)
    role = "extractor" if failed is plugins[0] else ("loader" if failed is plugins[-1] else "mapper")
    return f"{role} `{failed.name}` failed with exit code {code}: {_last_words(failed)}"


def _last_words(plugin: _Plugin) -> str:
    """Its last three lines that say something, for the one line a failure ends with.

    Terminal colours are dropped, and so are lines without a letter (a bare timestamp, carets
    under a column, a rule), which tools such as dbt print after their error.
    """
    lines = [_ESCAPES.sub("", line).strip() for line in plugin.tail]
    return " / ".join([line for line in lines if re.search(r"[^\W\d_]", line)][-3:]) or "no output"


def _culprit(plugins: list[_Plugin], bad: list[_Plugin]) -> _Plugin:
    """The plugin to blame: one that died of a broken pipe was usually stopped by its consumer."""
    for plugin in bad:
        if plugin.proc.returncode not in (-signal.SIGPIPE, 128 + signal.SIGPIPE):
            return plugin
    downstream = [p for p in plugins if p not in bad and p.proc.poll() not in (None, 0)]
    return downstream[0] if downstream else bad[0]


def _stop(plugins: list[_Plugin]) -> None:
    """Stop the plugins still running, the extractor first, and wait for them.

    The extractor gets SIGTERM; mappers and the target then see the end of their input and may
    commit and confirm what they received. Whatever still runs after ``_GRACE_SECONDS`` gets
    SIGTERM, then SIGKILL after as long again. Their stderr and the target's last states are read
    until they are gone. Another Ctrl-C (or SIGTERM) meanwhile kills them at once instead of
    unwinding half-way through.
    """

    def kill_now(_signum: int, _frame: FrameType | None) -> None:
        for plugin in plugins:
            if plugin.proc.poll() is None:
                plugin.proc.kill()

    with _handling((signal.SIGINT, *_STOPPING), kill_now):
        if plugins and plugins[0].proc.poll() is None:
            plugins[0].proc.terminate()
        if not _exited(plugins, _GRACE_SECONDS):
            for plugin in plugins:
                if plugin.proc.poll() is None:
                    plugin.proc.terminate()
            _reap(plugins)


def _exited(plugins: list[_Plugin], seconds: float) -> bool:
    """Whether every plugin has exited within ``seconds``."""
    deadline = time.monotonic() + seconds
    for plugin in plugins:
        try:
            plugin.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


def _join(threads: list[threading.Thread], timeout: float) -> None:
    """Wait for the reader threads (they end when the plugins close their pipes) at most ``timeout`` in all."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _reap(plugins: list[_Plugin]) -> None:
    """Wait for the plugins; SIGKILL those still running after ``_GRACE_SECONDS``."""
    if not _exited(plugins, _GRACE_SECONDS):
        for plugin in plugins:
            if plugin.proc.poll() is None:
                plugin.proc.kill()
            plugin.proc.wait()


def singer_state(stored: dict[str, Any] | None, state_id: str = "") -> dict[str, Any] | None:
    """The state a tap gets: Meltano stores it under ``singer_state``; bare states pass as they are.

    A ``singer_state`` that is not an object is refused rather than dropped: starting from
    nothing would re-read everything and then overwrite it.
    """
    if not stored:
        return None
    inner = stored.get("singer_state", stored)
    if inner is not None and not isinstance(inner, dict):
        raise UsageError(
            f"the stored state of `{state_id}` has a `singer_state` that is not an object",
            f"fix it with `strata state set '{state_id}' JSON` or clear it with `strata state clear '{state_id}'`",
        )
    return inner or None


def _complete(backend: Any, state_id: str, states: _Counter) -> None:
    """At success, the partial state becomes the completed state (merged onto it, or replacing it)."""
    from strata.state import finish

    record = states.record
    if backend is not None and record is not None and record.partial:
        backend.put(state_id, finish(record, merge=states.merge))
