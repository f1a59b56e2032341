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
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from strata.errors import RunNotFoundError
from strata.history import db
from strata.history.migrations import migrate
from strata.history.model import (
    FLUSH_EVERY,
    HEARTBEAT_EVERY,
    MAX_ERROR,
    STALE_AFTER,
    Run,
    RunStatus,
    _now,
    clean_error,
    database_failure,
    death,
    new_run,
)
from strata.history.tables import build_errors, runs

if TYPE_CHECKING:
    import builtins
    from collections.abc import Iterator
    from datetime import timedelta

    from sqlalchemy.engine import URL

    from strata.project.project import Project

log = logging.getLogger("strata.history")

__all__ = [
    "FLUSH_EVERY",
    "HEARTBEAT_EVERY",
    "MAX_ERROR",
    "STALE_AFTER",
    "Run",
    "RunHistory",
    "RunStatus",
    "clean_error",
]


@contextlib.contextmanager
def _database_errors(where: str) -> Iterator[None]:
    """Turn a database failure into one line naming the database (never its password)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise database_failure(where, exc) from exc


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
        builds=list(row.builds or []),
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
        self,
        state_id: str,
        environment: str | None,
        blocks: list[str],
        log_path: Path | str | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Record a new ``running`` run owned by this process and return it (``run_id``: else a new one)."""
        run = new_run(self, state_id, environment, blocks, log_path, run_id)
        now = run.started_at
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
                    builds=[],
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

    def last_success(self, state_id: str) -> Run | None:
        """The run of ``state_id`` that succeeded last (the newest ``ended_at``), if any."""
        query = (
            sa.select(runs)
            .where(runs.c.state_id == state_id, runs.c.status == str(RunStatus.SUCCESS))
            .order_by(runs.c.ended_at.desc(), runs.c.run_id.desc())
            .limit(1)
        )
        with _database_errors(self.where), self.engine.begin() as connection:
            row = connection.execute(query).first()
        return None if row is None else _from_row(row)

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

    def failures(self, store: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every sample whose compute failed (in ``store``), newest first: where, which, why and since when."""
        t = build_errors
        query = sa.select(t).order_by(t.c.failed_at.desc(), t.c.feature, t.c.sample)
        if store is not None:
            query = query.where(t.c.store == store)
        with _database_errors(self.where), self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]  # noqa: SLF001 - SQLAlchemy's public row API

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
        failed = 0
        for row in connection.execute(query).all():
            reason = death(row.heartbeat_at, row.pid, row.host, self.stale_after)
            if reason is None:
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
