"""Runs as the history keeps them, without any database library.

``Run`` is one run; the run a history ``start``-ed writes itself through that history's
``update``. Both the SQLAlchemy history (``runs.py``) and the SQLite one of the run path
(``lite.py``) hand out these objects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

from strata.errors import SystemDatabaseError
from strata.project.settings import redact_urls

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import TracebackType

log = logging.getLogger("strata.history")

STALE_AFTER = timedelta(minutes=5)
"""A running run whose last heartbeat is older than this is taken for dead."""

HEARTBEAT_EVERY = timedelta(seconds=30)
"""How often ``Run.keep_alive`` (and a run used as a context manager) beats."""

FLUSH_EVERY = timedelta(seconds=10)
"""``add_records`` writes the counts at most this often; ``heartbeat`` and ``finish`` always do."""

MAX_ERROR = 4000
"""Characters of an error message kept in the history."""

MAX_FAILURES = 10
"""Failed batches kept per feature in a run's ``builds`` (all of them go to the run log)."""


class Writer(Protocol):
    """What a run needs from the history that started it."""

    def update(self, run_id: str, **values: Any) -> None: ...


class RunStatus(StrEnum):
    """Where a run is: running, or how it ended."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _now() -> datetime:
    return datetime.now(UTC)


def _host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this host (a zombie counts as dead)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there; rely on the heartbeat
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def clean_error(text: str) -> str:
    """An error as the history keeps it: URL credentials hidden, at most ``MAX_ERROR`` characters."""
    text = redact_urls(text.strip())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


@dataclass(eq=False)
class Run:
    """One run as the history knows it; the run that ``start`` returned also writes itself.

    ``records`` counts records per stream. ``log_path`` is as the pipeline gave it (relative
    paths are relative to the project root). ``builds`` says what its ``features:build`` blocks
    did, per feature (``FeatureBuild.to_json``, at most ``MAX_FAILURES`` failures each).
    """

    run_id: str
    state_id: str
    environment: str | None
    blocks: list[str]
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    heartbeat_at: datetime
    pid: int | None
    host: str | None
    records: dict[str, int]
    error: str | None
    log_path: str | None
    strata_version: str | None = None
    builds: list[dict[str, Any]] = field(default_factory=list)
    _history: Writer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _written: datetime = field(default_factory=_now, repr=False)
    _stop: threading.Event | None = field(default=None, repr=False)
    _context: contextlib.AbstractContextManager[Run] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        """The run id (same as ``run_id``)."""
        return self.run_id

    @property
    def duration(self) -> timedelta | None:
        """How long it ran (so far, while running)."""
        if self.status is RunStatus.RUNNING:
            return _now() - self.started_at
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``: times in ISO 8601 UTC, duration in seconds."""
        duration = self.duration
        return {
            "run_id": self.run_id,
            "state_id": self.state_id,
            "environment": self.environment,
            "blocks": list(self.blocks),
            "status": str(self.status),
            "started_at": self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "duration_seconds": None if duration is None else round(duration.total_seconds(), 3),
            "pid": self.pid,
            "host": self.host,
            "records": dict(self.records),
            "error": self.error,
            "log_path": self.log_path,
            "strata_version": self.strata_version,
            "builds": [dict(b) for b in self.builds],
        }

    # -- writing (the run this process started) ------------------------------------------

    def heartbeat(self) -> None:
        """Record that the run is alive, with the record counts so far (nothing once it is finished)."""
        with self._lock:
            if self.status is RunStatus.RUNNING:
                self._write(heartbeat_at=_now())

    def set_records(self, totals: Mapping[str, int]) -> None:
        """Replace the records per stream with running totals; written with the next heartbeat.

        ``totals`` may be a dict another thread adds streams to: it is copied in one step first.
        """
        copied = dict(totals)
        with self._lock:
            self.records = {str(stream): int(count) for stream, count in copied.items()}

    def add_builds(self, builds: list[dict[str, Any]]) -> None:
        """Record what a ``features:build`` block did (``FeatureBuild.to_json`` per feature), now."""
        kept = [_kept_build(b) for b in builds]
        with self._lock:
            self.builds.extend(kept)
            self._write(heartbeat_at=_now())

    def add_records(self, counts: Mapping[str, int]) -> None:
        """Add records per stream; written with the next heartbeat, or now if none for a while."""
        with self._lock:
            for stream, count in counts.items():
                self.records[stream] = self.records.get(stream, 0) + int(count)
            now = _now()
            if now - self._written >= FLUSH_EVERY:
                self._write(heartbeat_at=now)

    def finish(self, status: RunStatus | str, error: str | None = None) -> None:
        """Close the run: ``success``, ``failed`` or ``cancelled``, with an error message (no secrets)."""
        final = RunStatus(status)
        if final is RunStatus.RUNNING:
            raise ValueError("finish needs a final status: success, failed or cancelled")
        with self._lock:
            now = _now()
            self.status, self.ended_at = final, now
            self.error = None if error is None else clean_error(error)
            self._write(heartbeat_at=now, status=str(final), ended_at=now, error=self.error)
        self._stop_beating()

    @contextlib.contextmanager
    def keep_alive(self, every: timedelta | None = None) -> Iterator[Self]:
        """Beat from a background thread every ``every`` (``HEARTBEAT_EVERY``) until the block ends.

        The thread beats whatever the main thread does, so a run stays alive through a single
        step (a build's batch) longer than ``STALE_AFTER``.

        A heartbeat that fails (database briefly unreachable) is logged and tried again on the
        next beat; the run itself goes on.
        """
        stop = threading.Event()
        self._stop = stop
        seconds = (every or HEARTBEAT_EVERY).total_seconds()

        def beat() -> None:
            while not stop.wait(seconds):
                try:
                    self.heartbeat()
                except SystemDatabaseError as exc:
                    log.warning("heartbeat failed: %s", exc, extra={"fields": {"run_id": self.run_id}})

        thread = threading.Thread(target=beat, name=f"strata-heartbeat-{self.run_id[:8]}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def __enter__(self) -> Self:
        self._context = self.keep_alive()
        self._context.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop beating; a run not finished yet ends ``success``, ``failed`` (exception) or ``cancelled``."""
        if self._context is not None:
            self._context.__exit__(exc_type, exc, tb)
            self._context = None
        if self.status is not RunStatus.RUNNING:
            return
        if exc is None:
            self.finish(RunStatus.SUCCESS)
        elif isinstance(exc, KeyboardInterrupt):
            self.finish(RunStatus.CANCELLED, "interrupted")
        else:
            self.finish(RunStatus.FAILED, str(exc) or type(exc).__name__)

    def _stop_beating(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _write(self, **values: Any) -> None:
        if self._history is None:
            raise RuntimeError("this run was read from the history; only the process that started it writes it")
        self._history.update(self.run_id, records=dict(self.records), builds=list(self.builds), **values)
        self._written = values.get("heartbeat_at", _now())
        self.heartbeat_at = self._written


def _kept_build(build: Mapping[str, Any]) -> dict[str, Any]:
    failures = list(build.get("failures") or [])
    kept = [{**f, "error": clean_error(str(f.get("error", "")))} for f in failures[:MAX_FAILURES]]
    out = {**build, "failures": kept, "failed_batches": len(failures)}
    if "skipped_errors" in build:
        skipped = build["skipped_errors"][:MAX_FAILURES]
        out["skipped_errors"] = [{**f, "error": clean_error(str(f.get("error", "")))} for f in skipped]
    return out


def build_summary(build: Mapping[str, Any]) -> str:
    """One feature's build in a line: ``clip: 10 added, 0 recomputed, 0 removed, 6 written (text 6), …``."""
    fields = ", ".join(f"{name} {count}" for name, count in (build.get("written_fields") or {}).items())
    failed = int(build.get("failed_batches", len(build.get("failures") or [])))
    text = (
        f"{build['feature']}: {build.get('added', 0)} added, {build.get('changed', 0)} recomputed, "
        f"{build.get('removed', 0)} removed, {build.get('written', 0)} written"
        + (f" ({fields})" if fields else "")
        + f", {build.get('skipped', 0)} skipped, {failed} failed batch{'' if failed == 1 else 'es'}"
        + f" in {float(build.get('seconds', 0.0)):.2f} s"
    )
    return text if build.get("computable", True) else f"{text} (no compute)"


def failure_line(feature: str, failure: Mapping[str, Any]) -> str:
    """One failed batch: ``clip: batch of 4 failed (0, 1, 2, 3): ValueError: …`` (URL credentials hidden)."""
    return f"{feature}: batch of {failure.get('samples', 0)} failed {_samples(failure)}"


def skipped_line(feature: str, skipped: Mapping[str, Any]) -> str:
    """Samples a build skipped for one error: ``clip: 4 samples skipped, they failed before … (0, 1, 2, 3): …``."""
    count = int(skipped.get("samples", 0))
    said = f"{feature}: {count} sample{'' if count == 1 else 's'} skipped"
    return f"{said}, they failed before on the same inputs and code {_samples(skipped)}"


def _samples(failure: Mapping[str, Any]) -> str:
    """``(0, 1, 2, 3…): error``: the first samples (``…`` when there are more), then the error, URL credentials hidden.

    A sample of several id columns is the JSON list of its ids (``["ex.com","/a,b.html"]``); a
    run recorded before ids were JSON values holds each as its JSON text, shown as it is.
    """
    first = failure.get("first") or []
    shown = ", ".join(s if isinstance(s, str) else json.dumps(s, default=str, separators=(",", ":")) for s in first)
    more = "…" if int(failure.get("samples", 0)) > len(first) else ""
    return f"({shown}{more}): {redact_urls(str(failure.get('error', '')))}"


def build_lines(build: Mapping[str, Any]) -> list[str]:
    """What one feature's build did, for the run log: its summary, each failed batch, each error of skipped samples."""
    return [
        build_summary(build),
        *(failure_line(build["feature"], f) for f in build.get("failures") or []),
        *(skipped_line(build["feature"], f) for f in build.get("skipped_errors") or []),
    ]


RUN_ID_VARIABLE = "STRATA_RUN_ID"
"""The variable a pipeline's plugins find their run's id in (``target-strata`` writes it on the rows it loads)."""


def new_run_id() -> str:
    """A new run's id: 32 hex digits (a pipeline hands it to its plugins before the run is recorded)."""
    import uuid

    return uuid.uuid4().hex


def new_run(
    history: Writer,
    state_id: str,
    environment: str | None,
    blocks: list[str],
    log_path: Path | str | None,
    run_id: str | None = None,
) -> Run:
    """A ``running`` run owned by this process, written through ``history`` (``run_id``: else a new one)."""
    from strata import __version__

    now = _now()
    return Run(
        run_id=run_id or new_run_id(),
        state_id=state_id,
        environment=environment,
        blocks=[str(b) for b in blocks],
        status=RunStatus.RUNNING,
        started_at=now,
        ended_at=None,
        heartbeat_at=now,
        pid=os.getpid(),
        host=_host(),
        records={},
        error=None,
        log_path=None if log_path is None else str(log_path),
        strata_version=__version__,
        _history=history,
    )


def death(heartbeat: datetime, pid: int | None, host: str | None, stale_after: timedelta) -> str | None:
    """Why a ``running`` run is dead (``process died: …``), or None while it may be alive."""
    if _now() - heartbeat > stale_after:
        return f"process died: no heartbeat since {heartbeat.isoformat(timespec='seconds')}"
    here = _host()
    if host == here and pid is not None and pid != os.getpid() and not pid_alive(pid):
        return f"process died: pid {pid} on {here} is gone"
    return None


def damaged_database(where: str, reason: str) -> SystemDatabaseError:
    """A SQLite system database that is not one, or whose pages are damaged: which file to move aside."""
    path = Path(where.removeprefix("sqlite:///"))
    return SystemDatabaseError(
        f"the system database {path} is damaged ({reason})",
        f"move {path} (and any {path.name}-wal and {path.name}-shm beside it) aside and run again: "
        "strata starts a new, empty run history",
    )


def _full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has no room left: SQLite may report a write there as an I/O error."""
    import shutil

    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def database_failure(where: str, exc: BaseException) -> SystemDatabaseError:
    """A database failure as one line naming the database (never its password).

    A SQLite file that is not a database, or whose pages are damaged, fails every run the same
    way: the message says which file to move aside (strata then starts a new run history).
    """
    import sqlite3

    original = getattr(exc, "orig", None) or exc
    detail = str(original).strip().splitlines()
    reason = redact_urls(detail[0]) if detail else type(exc).__name__
    if getattr(original, "sqlite_errorcode", None) in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}:
        return damaged_database(where, reason)
    code = getattr(original, "sqlite_errorcode", None)
    path = Path(where.removeprefix("sqlite:///"))
    if code == sqlite3.SQLITE_FULL or (code is not None and code & 0xFF == sqlite3.SQLITE_IOERR and _full(path.parent)):
        return SystemDatabaseError(
            f"the system database {where} failed: {reason}", f"free some space on the file system of {path.parent}"
        )
    return SystemDatabaseError(
        f"the system database {where} failed: {reason}", "check that it is reachable and writable"
    )
