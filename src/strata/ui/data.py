"""What each page of ``strata ui`` shows, as plain data, read the way the CLI reads it.

Every function takes a :class:`Source` (where the project is, which environment and store) and
reads the project again, so an edited ``strata.yml`` or feature module shows on the next load.
Staleness comes from :func:`strata.views.graph.status_and_fields`: per feature what ``strata
status`` counts (to add, to recompute, to remove) and per field what ``strata graph render``
counts (in sync, stale, failed), from one resolve; runs from the run
history (``strata runs``), logs through :func:`strata.history.shown.run_with_log` (secrets
redacted), state ids from the state backend (``strata state list``).

The store is opened read-only for one request at a time, and not at all while a run or a build
is writing it (DuckDB lets one process write a file only while no other has it open): the page
then shows the staleness it read last, and says so.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strata.errors import StrataError

if TYPE_CHECKING:
    from pathlib import Path

    from strata.features.graph import FeatureGraph
    from strata.features.project import StoreConfig
    from strata.history.model import Run
    from strata.project.project import Project

RUNS_SHOWN = 50
"""Runs on the runs page (newest first)."""

LOG_LINES = 2000
"""Last lines of a run's log on its page."""


@dataclass
class Source:
    """Where the page reads from, and what it read last of the store (shown while a run writes it)."""

    root: Path
    environment: str | None = None
    no_environment: bool = False
    store_name: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """One request reads at a time: importing feature modules and DuckDB handles are not shared safely."""
    last_status: tuple[float, dict[str, dict[str, Any]]] | None = field(default=None, repr=False)

    def project(self) -> Project:
        from strata.project.project import Project

        return Project.find(self.root, environment=self.environment, no_environment=self.no_environment)


def message(exc: BaseException) -> str:
    """An error as one line for the page (URL credentials hidden); never a traceback."""
    from strata.project.settings import redact_urls

    if isinstance(exc, StrataError):
        return redact_urls(str(exc))
    return redact_urls(f"unexpected {type(exc).__name__}: {exc}; run the same command in the terminal with --debug")


# -- the graph and its staleness ---------------------------------------------------------


def graph_page(source: Source) -> dict[str, Any]:
    """Features in graph order with their fields, the edges between them and each one's staleness."""
    from strata.features.project import load_graph, store_config
    from strata.views.graph import edges, summary

    project = source.project()
    graph = load_graph(project)
    config = store_config(project, source.store_name)
    status, note = _status(source, project, graph, config)
    failed = {key: len(row.get("failed_samples", ())) for key, row in status.items()}
    features = []
    depths: dict[Any, int] = {}
    for key in graph.topological_order():  # upstreams first: a root is 0, else one more than its deepest upstream
        depths[key] = 1 + max((depths[up] for up in graph.upstream(key)), default=-1)
        row = summary(graph, key) | {"status": status.get(str(key)), "failed": failed.get(str(key), 0)}
        features.append(row | {"depth": depths[key]})
    return {
        "store": config.describe(),
        "features": features,
        "edges": [(str(up), str(down), used) for up, down, used in edges(graph)],
        "note": note,
    }


def _status(
    source: Source, project: Project, graph: FeatureGraph, config: StoreConfig
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Per feature key its ``strata status`` row, with ``state``: its fields' counts as ``graph render``'s.

    And a note when it is not read now (busy store, store error).
    """
    from strata.features.project import make_store, opened
    from strata.views.graph import failed_samples, status_and_fields

    busy = _writer(project, config)
    if busy is None:
        try:
            keys = graph.topological_order()
            failed = failed_samples(project, config.name, keys)
            store = make_store(project, source.store_name, graph=graph, read_only=True)
            with opened(store, config):
                rows = status_and_fields(store, keys, failed)
        except StrataError as exc:
            return {}, message(exc)
        found = {row["feature"]: row | {"state": state} for row, state in rows}
        source.last_status = (time.time(), found)
        return found, None
    if source.last_status is None:
        return {}, f"{busy}: staleness is shown once it ends (the page refreshes itself)"
    seen, last = source.last_status
    when = time.strftime("%H:%M:%S", time.localtime(seen))
    return last, f"{busy}: staleness as read at {when}; the page refreshes itself when it ends"


def _writer(project: Project, config: StoreConfig) -> str | None:
    """``a build is running …`` / ``run abc12345 is running`` while something may write the store, else None."""
    from strata.build.lock import holder

    who = holder(config)
    if who is not None:
        return f"a build is running on store `{config.name}` ({who})"
    running = [r for r in _runs(project, RUNS_SHOWN) if str(r["status"]) == "running"]
    if running:
        return f"run {running[0]['run_id'][:8]} is running"
    return None


# -- one feature ---------------------------------------------------------------------------


def feature_page(source: Source, key: str) -> dict[str, Any]:
    """One feature: its definition, staleness per field with causes, failed samples and latest builds."""
    from strata.features.project import load_graph, store_config
    from strata.history.model import build_summary
    from strata.views.graph import describe

    project = source.project()
    graph = load_graph(project)
    spec = graph.spec(key)  # FeatureNotFoundError (one line) for a key the graph does not define
    config = store_config(project, source.store_name)
    status, note = _status(source, project, graph, config)
    name = str(spec.key)
    builds = [
        {"run_id": run["run_id"], "started": run["started"], "summary": build_summary(build)}
        for run in _runs(project, RUNS_SHOWN)
        for build in run["builds"]
        if build.get("feature") == name
    ]
    return {
        "feature": describe(graph, spec.key),
        "status": status.get(name),
        "note": note,
        "store": config.describe(),
        "failures": [
            f
            for f in _still_to_compute(_failures(project, config.name, graph), config.name, status, note)
            if f["feature"] == name
        ],
        "builds": builds[:10],
    }


# -- runs, build errors, state ids -----------------------------------------------------------


def runs_page(source: Source, state_id: str | None = None) -> dict[str, Any]:
    """The latest runs, newest first (of ``state_id``)."""
    return {"runs": _runs(source.project(), RUNS_SHOWN, state_id), "state_id": state_id}


def run_page(source: Source, run_id: str) -> dict[str, Any]:
    """One run with its builds and the end of its log (secrets redacted)."""
    from strata.history.model import build_lines
    from strata.history.shown import run_with_log

    project = source.project()
    from strata.views.graph import run_history

    if run_history(project) is None:
        from strata.errors import RunNotFoundError

        raise RunNotFoundError(f"no run with id `{run_id}`", "this project has no run history yet")
    run, path, log = run_with_log(project, run_id, LOG_LINES)
    cut = None
    if path is not None and log is not None and log.count("\n") >= LOG_LINES:
        with path.open("rb") as lines:
            total = sum(1 for _ in lines)
        cut = f"the last {LOG_LINES} of its {total} lines; the whole log is {path}" if total > LOG_LINES else None
    return {
        "run": _run_row(run),
        "builds": [line for build in run.builds for line in build_lines(build)],
        "log_file": None if path is None else str(path),
        "log": log,
        "log_cut": cut,
    }


def errors_page(source: Source) -> dict[str, Any]:
    """Samples whose compute failed in the page's store (``--store``): which, why, since when, in which run.

    Only the page's store: every other page (a sample's lineage, staleness) reads that one. Only
    those still to compute (as ``strata graph render`` counts them): a sample deleted upstream
    since it failed is nothing to build. The note says when staleness could not be read now.
    """
    from strata.features.project import load_graph, store_config

    project = source.project()
    graph = load_graph(project)
    config = store_config(project, source.store_name)
    status, note = _status(source, project, graph, config)
    failures = _still_to_compute(_failures(project, config.name, graph), config.name, status, note)
    return {"store": config.name, "failures": failures, "note": note}


def state_page(source: Source) -> dict[str, Any]:
    """The state ids with stored state (``strata state list``), each with when it was last written."""
    from strata.state import state_backend_for

    with state_backend_for(source.project()) as backend:
        ids = backend.ids()
        records = {state_id: backend.get(state_id) for state_id in ids}
        where = backend.describe()
    return {
        "backend": where,
        "states": [
            {
                "state_id": state_id,
                "updated_at": None if record is None or record.updated_at is None else record.updated_at.isoformat(),
            }
            for state_id, record in records.items()
        ],
    }


def _runs(project: Project, limit: int, state_id: str | None = None) -> list[dict[str, Any]]:
    from strata.views.graph import run_history

    history = run_history(project)
    if history is None:
        return []
    with history:
        return [_run_row(run) for run in history.list(state_id=state_id, limit=limit)]


def _run_row(run: Run) -> dict[str, Any]:
    from strata.history.shown import duration_text, local_time

    return run.to_dict() | {"duration": duration_text(run), "started": local_time(run.started_at)}


def _failures(project: Project, store: str, graph: FeatureGraph | None = None) -> list[dict[str, Any]]:
    """The build errors of ``store`` (:func:`~strata.views.graph.failures`); given the ``graph``, each with its why."""
    from strata.history.shown import local_time
    from strata.views.graph import failures

    return [
        f
        | {
            "why": None if graph is None else why_of(graph, f["feature"], f["sample"]),
            "since": local_time(f["failed_at"]),
            "failed_at": str(f["failed_at"]),
        }
        for f in failures(project, store)
    ]


def _still_to_compute(
    failures: list[dict[str, Any]], store: str, status: dict[str, dict[str, Any]], note: str | None
) -> list[dict[str, Any]]:
    """``failures`` less those of ``store`` not to compute any more per ``status``; all unless read now (no note)."""
    if note is not None:
        return failures
    kept = []
    for failure in failures:
        row = status.get(failure["feature"]) if failure["store"] == store else None
        if row is None or row["root"] or failure["sample"] in row.get("failed_samples", ()):
            kept.append(failure)
    return kept


def why_of(graph: FeatureGraph, feature: str, recorded: str) -> tuple[str, str, str] | None:
    """``(feature, sample word, text)`` of the ``strata why`` that explains a failed sample, as the build records it.

    ``text`` is what the page shows: the value of a single id column as it is, else the word.

    The build keys a failure by the feature's resolve ids (JSON: the value alone for one id
    column, else a list; ``build/runner.py`` ``sample_keys``), written here as the named word
    :func:`strata.views.why.id_word` makes and ``parse_ids`` reads back (``path="/a,b"``). An
    expansion computes a parent whole, so its key is the parent's: the why is the parent
    feature's sample (its children may not exist). None when the feature is gone from the graph,
    or the key cannot be read as those ids.
    """
    from strata.resolve.plan import FeaturePlan
    from strata.views.why import id_word

    try:
        plan = FeaturePlan.build(graph, graph.spec(feature).key)
        value = json.loads(recorded)
    except (StrataError, ValueError):
        return None
    columns = plan.resolve_ids
    values = value if len(columns) > 1 else [value]
    if not isinstance(values, list) or len(values) != len(columns):
        return None
    word = id_word(dict(zip(columns, values, strict=True)), named=True)
    text = str(values[0]) if len(columns) == 1 else word
    if not plan.child_ids:
        return str(plan.key), word, text
    parent = next(up for up in plan.upstreams if up.lineage.kind == "expansion")
    return (str(parent.key), word, f"{text} (parent {parent.key})") if set(parent.id_columns) == set(columns) else None


# -- what changed: the page asks every few seconds ---------------------------------------------


def live(source: Source) -> dict[str, Any]:
    """Runs going on now, and a token that changes whenever what the pages show may have changed.

    Read from the run history and file times only: asking never opens the store, so it never
    stands in the way of a run or build that wants to write it.
    """
    from strata.build.lock import holder
    from strata.features.project import store_config

    project = source.project()
    runs = _runs(project, 20)
    config = store_config(project, source.store_name)
    failures = _failures(project, config.name)
    stamps = [_mtime(project.root / project.file_name)]
    if config.path is not None:
        stamps += [_mtime(config.path), _mtime(config.path.with_name(config.path.name + ".wal"))]
    building = holder(config)
    seen = [
        [(r["run_id"], r["status"], r["heartbeat_at"], r["records"], len(r["builds"])) for r in runs],
        len(failures),
        stamps,
        building,
    ]
    running = [
        {"run_id": r["run_id"], "state_id": r["state_id"], "records": r["records"], "duration": r["duration"]}
        for r in runs
        if r["status"] == "running"
    ]
    token = hashlib.sha256(json.dumps(seen, default=str).encode()).hexdigest()[:16]
    return {"running": running, "building": building, "token": token}


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


# -- one sample ----------------------------------------------------------------------------------


def sample_page(source: Source, feature: str, sample: str) -> dict[str, Any]:
    """``strata why FEATURE SAMPLE --json``: the sample's lineage from the roots down, field by field, with causes.

    ``sample`` is written as on the command line: a value, values comma-separated in id-column
    order, or ``column=value`` pairs.
    """
    from strata.features.project import load_graph, make_store, opened, store_config
    from strata.views.why import parse_ids, why

    if not feature or not sample:
        raise _usage("give a feature and a sample id", "type both in the search box")
    project = source.project()
    graph = load_graph(project)
    key = graph.spec(feature).key  # FeatureNotFoundError for a key the graph does not define
    config = store_config(project, source.store_name)
    busy = _writer(project, config)
    if busy is not None:
        return {"feature": str(key), "store": config.name, "samples": [], "note": f"{busy}: ask again when it ends"}
    samples = parse_ids([sample], graph.spec(key).id_columns)
    store = make_store(project, source.store_name, graph=graph, read_only=True)
    with opened(store, config):
        found = why(store, key, samples, failures=_failures(project, config.name)).to_json()
    return found | {"store": config.name, "note": None}


def _usage(reason: str, fix: str) -> StrataError:
    from strata.errors import UsageError

    return UsageError(reason, fix)
