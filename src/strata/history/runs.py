"""Runs: started, kept alive, finished, listed, and failed when their process died.

A run row is written when the run starts (status ``running``), touched by heartbeats while it
runs, and closed by ``finish``. A process that dies without finishing leaves a ``running`` row;
the next look at the history (``list``, ``get``, ``running``, ``start``) marks it ``failed``
with the error ``process died …`` when its heartbeat is older than ``stale_after`` (5 minutes
by default), or at once when it ran on this host and its pid is gone. The update is
conditional on the heartbeat just read, so a run that is still beating is never failed by a
race.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from strata import __version__
from strata.errors import RunNotFoundError, SystemDatabaseError
from strata.history import db
from strata.history.migrations import migrate
from strata.history.tables import build_errors, runs
from strata.project.settings import redact_urls

if TYPE_CHECKING:
    import builtins
    from collections.abc import Iterator, Mapping
    from types import TracebackType

    from sqlalchemy.engine import URL

    from strata.project.project import Project

log = logging.getLogger("strata.history")

STALE_AFTER = timedelta(minutes=5)
"""A running run whose last heartbeat is older than this is taken for dead."""

HEARTBEAT_EVERY = timedelta(seconds=30)
"""How often ``Run.keep_alive`` (and a run used as a context manager) beats."""

FLUSH_EVERY = timedelta(seconds=10)
"""``add_records`` writes the counts at most this often; ``heartbeat`` and ``finish`` always do."""

MAX_ERROR = 4000
"""Characters of an error message kept in the history."""


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


def _alive(pid: int) -> bool:
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


@contextlib.contextmanager
def _database_errors(where: str) -> Iterator[None]:
    """Turn a database failure into one line naming the database (never its password)."""
    try:
        yield
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = redact_urls(detail[0]) if detail else type(exc).__name__
        raise SystemDatabaseError(
            f"the system database {where} failed: {reason}", "check that it is reachable and writable"
        ) from exc


@dataclass(eq=False)
class Run:
    """One run as the history knows it; the run that ``start`` returned also writes itself.

    ``records`` counts records per stream. ``log_path`` is as the pipeline gave it (relative
    paths are relative to the project root).
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
    _history: RunHistory | None = field(default=None, repr=False)
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
        }

    # -- writing (the run this process started) ------------------------------------------

    def heartbeat(self) -> None:
        """Record that the run is alive, with the record counts so far."""
        with self._lock:
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
    def keep_alive(self, every: timedelta = HEARTBEAT_EVERY) -> Iterator[Self]:
        """Beat from a background thread every ``every`` until the block ends.

        A heartbeat that fails (database briefly unreachable) is logged and tried again on the
        next beat; the run itself goes on.
        """
        stop = threading.Event()
        self._stop = stop

        def beat() -> None:
            while not stop.wait(every.total_seconds()):
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
        self._history.update(self.run_id, records=dict(self.records), **values)
        self._written = values.get("heartbeat_at", _now())
        self.heartbeat_at = self._written


def _from_row(row: sa.Row[Any], history: RunHistory | None = None) -> Run:
    return Run(
        run_id=row.run_id,
        state_id=row.state_id,
        environment=row.environment,
        blocks=list(row.blocks or []),
        status=RunStatus(row.status),
        started_at=row.started_at,
        ended_at=row.ended_at,
        heartbeat_at=row.heartbeat_at,
        pid=row.pid,
        host=row.host,
        records={str(k): int(v) for k, v in (row.records or {}).items()},
        error=row.error,
        log_path=row.log_path,
        strata_version=row.strata_version,
        _history=history,
    )


_RUN_ID = re.compile(r"[0-9a-f]{1,32}")
_SHOWN = 5
"""Matching ids named when a prefix is ambiguous."""


class RunHistory:
    """The run history of a project, in its system database. Use it as a context manager."""

    def __init__(self, engine: sa.Engine, url: URL, root: Path, stale_after: timedelta = STALE_AFTER) -> None:
        self.engine = engine
        self.url = url
        self.where = db.shown(url)
        self.root = root
        self.stale_after = stale_after

    @classmethod
    def open(cls, project: Project, *, stale_after: timedelta = STALE_AFTER) -> RunHistory:
        """Open (and create or migrate) the project's system database."""
        url = db.database_url(project)
        engine = db.create_engine(url)
        where = db.shown(url)
        try:
            with _database_errors(where):
                migrate(engine, where)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url, project.root, stale_after)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------

    def start(
        self, state_id: str, environment: str | None, blocks: list[str], log_path: Path | str | None = None
    ) -> Run:
        """Record a new ``running`` run owned by this process and return it."""
        now = _now()
        run = Run(
            run_id=uuid.uuid4().hex,
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
            _history=self,
        )
        with _database_errors(self.where), self.engine.begin() as connection:
            self._reap(connection)
            connection.execute(
                runs.insert().values(
                    run_id=run.run_id,
                    state_id=run.state_id,
                    environment=run.environment,
                    blocks=run.blocks,
                    status=str(run.status),
                    started_at=now,
                    heartbeat_at=now,
                    pid=run.pid,
                    host=run.host,
                    records={},
                    log_path=run.log_path,
                    strata_version=run.strata_version,
                )
            )
        return run

    def list(self, state_id: str | None = None, limit: int = 20) -> builtins.list[Run]:
        """The latest runs (of ``state_id``), newest first."""
        query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(max(1, limit))
        if state_id is not None:
            query = query.where(runs.c.state_id == state_id)
        with _database_errors(self.where), self.engine.begin() as connection:
            self._reap(connection)
            return [_from_row(row) for row in connection.execute(query)]

    def get(self, run_id: str) -> Run:
        """The run with this id, or the one run whose id starts with it."""
        key = run_id.strip().lower().replace("-", "")
        if not _RUN_ID.fullmatch(key):
            raise RunNotFoundError(
                f"`{run_id}` is not a run id", "run ids are hexadecimal; `strata runs list` shows them"
            )
        query = sa.select(runs).where(runs.c.run_id.startswith(key)).order_by(runs.c.started_at.desc())
        with _database_errors(self.where), self.engine.begin() as connection:
            self._reap(connection)
            found = [_from_row(row) for row in connection.execute(query.limit(_SHOWN + 1))]
        if not found:
            raise RunNotFoundError(f"no run with id `{run_id}`", "`strata runs list` shows the latest runs")
        if len(found) > 1:
            some = ", ".join(r.run_id[:12] for r in found[:_SHOWN])
            raise RunNotFoundError(
                f"`{run_id}` is the start of several run ids ({some}{', …' if len(found) > _SHOWN else ''})",
                "give more characters of the id",
            )
        return found[0]

    def running(self, state_id: str) -> builtins.list[Run]:
        """Runs of ``state_id`` still running (dead ones are failed first)."""
        query = sa.select(runs).where(runs.c.state_id == state_id, runs.c.status == str(RunStatus.RUNNING))
        with _database_errors(self.where), self.engine.begin() as connection:
            self._reap(connection)
            return [_from_row(row) for row in connection.execute(query.order_by(runs.c.started_at))]

    def log_file(self, run: Run) -> Path | None:
        """The run's log file as a path (relative ones are under the project root)."""
        if not run.log_path:
            return None
        path = Path(run.log_path)
        return path if path.is_absolute() else self.root / path

    def update(self, run_id: str, **values: Any) -> None:
        """Write columns of one run (used by ``Run``)."""
        with _database_errors(self.where), self.engine.begin() as connection:
            connection.execute(runs.update().where(runs.c.run_id == run_id).values(**values))

    # -- build errors ---------------------------------------------------------------------

    def build_errors(self, store: str, feature: str) -> dict[str, tuple[str, str]]:
        """Samples of ``feature`` whose compute failed: sample -> (inputs it failed on, error)."""
        t = build_errors
        query = sa.select(t.c.sample, t.c.inputs, t.c.error).where(t.c.store == store, t.c.feature == feature)
        with _database_errors(self.where), self.engine.connect() as connection:
            return {row.sample: (row.inputs, row.error) for row in connection.execute(query)}

    def record_build_errors(
        self, store: str, feature: str, samples: dict[str, str], error: str, run_id: str | None = None
    ) -> None:
        """Remember that ``samples`` (sample -> inputs) failed with ``error``; replaces earlier entries."""
        t = build_errors
        now = _now()
        rows = [
            {
                "store": store,
                "feature": feature,
                "sample": k,
                "inputs": v,
                "error": error,
                "run_id": run_id,
                "failed_at": now,
            }
            for k, v in samples.items()
        ]
        with _database_errors(self.where), self.engine.begin() as connection:
            self._delete_errors(connection, store, feature, list(samples))
            if rows:
                connection.execute(t.insert(), rows)

    def clear_build_errors(self, store: str, feature: str, samples: builtins.list[str] | None = None) -> None:
        """Forget failures of ``samples`` (all of the feature's when ``None``)."""
        with _database_errors(self.where), self.engine.begin() as connection:
            self._delete_errors(connection, store, feature, samples)

    @staticmethod
    def _delete_errors(connection: sa.Connection, store: str, feature: str, samples: builtins.list[str] | None) -> None:
        t = build_errors
        where = [t.c.store == store, t.c.feature == feature]
        if samples is None:
            connection.execute(t.delete().where(*where))
            return
        for start in range(0, len(samples), 500):
            connection.execute(t.delete().where(*where, t.c.sample.in_(samples[start : start + 500])))

    def fail_dead(self) -> int:
        """Mark runs whose process died as failed now; return how many."""
        with _database_errors(self.where), self.engine.begin() as connection:
            return self._reap(connection)

    def _reap(self, connection: sa.Connection) -> int:
        """Fail ``running`` runs whose heartbeat stopped, or whose pid on this host is gone."""
        query = sa.select(runs.c.run_id, runs.c.heartbeat_at, runs.c.pid, runs.c.host).where(
            runs.c.status == str(RunStatus.RUNNING)
        )
        now, host, failed = _now(), _host(), 0
        for row in connection.execute(query).all():
            if now - row.heartbeat_at > self.stale_after:
                reason = f"process died: no heartbeat since {row.heartbeat_at.isoformat(timespec='seconds')}"
            elif row.host == host and row.pid is not None and row.pid != os.getpid() and not _alive(row.pid):
                reason = f"process died: pid {row.pid} on {host} is gone"
            else:
                continue
            done = connection.execute(
                runs.update()
                .where(
                    runs.c.run_id == row.run_id,
                    runs.c.status == str(RunStatus.RUNNING),
                    runs.c.heartbeat_at == row.heartbeat_at,
                )
                .values(status=str(RunStatus.FAILED), ended_at=row.heartbeat_at, error=reason)
            )
            if done.rowcount:
                failed += 1
                log.debug("run %s marked failed: %s", row.run_id[:8], reason)
        return failed
