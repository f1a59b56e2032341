"""The run path's history writer on the standard library's ``sqlite3``.

``strata run`` with the default system database (SQLite under ``.strata/``, no ``database_uri``)
only starts a run, updates it and finishes it. Importing SQLAlchemy for that costs ~0.3 s of
CPU, more than everything else strata does around a run with nothing new, so this module does
those writes with ``sqlite3`` in exactly the format SQLAlchemy uses (``runs.py`` reads them
back): timestamps as naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``, JSON as ``json.dumps`` text.
It takes the same precautions as ``db.create_engine``: WAL, a busy timeout, ``BEGIN IMMEDIATE``.

It only opens a database whose schema is current. A new database, one an older strata made, or
one a newer strata made goes through ``RunHistory.open`` (SQLAlchemy), which creates, migrates
or refuses it; a test checks both write the same rows.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from strata.history import db
from strata.history.model import STALE_AFTER, Run, RunStatus, database_failure, death, new_run
from strata.project.files import SQLITE_FILES, private_file

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from strata.history.runs import RunHistory
    from strata.project.project import Project

SCHEMA_VERSION = 3
"""The schema version this writer knows (the last step of ``migrations.MIGRATIONS``; a test checks)."""

_COLUMNS = frozenset(
    {"state_id", "environment", "blocks", "status", "started_at", "ended_at", "heartbeat_at", "pid", "host"}
    | {"records", "error", "log_path", "strata_version", "builds"}
)


def stamp(value: datetime) -> str:
    """A timestamp as SQLAlchemy's SQLite dialect stores it (naive UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


@contextlib.contextmanager
def _errors(where: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise database_failure(where, exc) from exc


class LiteHistory:
    """Starts and writes runs in the default SQLite system database. Use it as a context manager."""

    def __init__(self, connection: sqlite3.Connection, path: Path, stale_after: timedelta = STALE_AFTER) -> None:
        self.connection = connection
        self._lock = threading.Lock()  # one connection; heartbeats may come from another thread
        self.where = f"sqlite:///{path}"
        self.stale_after = stale_after

    @classmethod
    def open(cls, project: Project) -> LiteHistory | None:
        """The writer, or None unless the database is the default SQLite file with the current schema.

        None means: use ``RunHistory.open``, which creates, migrates or refuses it.
        """
        path = db.default_file(project)
        if path is None or not path.is_file():
            return None
        where = f"sqlite:///{path}"
        with _errors(where):
            private_file(path, SQLITE_FILES)
            connection = sqlite3.connect(
                path, timeout=db.BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            try:
                db.setup(connection)
                version = connection.execute("SELECT max(version) FROM strata_schema_version").fetchone()[0]
            except sqlite3.OperationalError:  # no version table: a database being created
                connection.close()
                return None
            except BaseException:
                connection.close()
                raise
        if version != SCHEMA_VERSION:
            connection.close()
            return None
        return cls(connection, path)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _errors(self.where):
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def start(
        self,
        state_id: str,
        environment: str | None,
        blocks: list[str],
        log_path: Path | str | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Record a new ``running`` run owned by this process and return it (as ``RunHistory.start``)."""
        run = new_run(self, state_id, environment, blocks, log_path, run_id)
        now = run.started_at
        with self._transaction() as connection:
            self._reap(connection)
            connection.execute(
                "INSERT INTO strata_runs (run_id, state_id, environment, blocks, status, started_at, heartbeat_at, "
                "pid, host, records, builds, log_path, strata_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    run.state_id,
                    run.environment,
                    json.dumps(run.blocks),
                    str(run.status),
                    stamp(now),
                    stamp(now),
                    run.pid,
                    run.host,
                    json.dumps({}),
                    json.dumps([]),
                    run.log_path,
                    run.strata_version,
                ),
            )
        return run

    def update(self, run_id: str, **values: Any) -> None:
        """Write columns of one run (used by ``Run``)."""
        unknown = set(values) - _COLUMNS
        if unknown:
            raise ValueError(f"not columns of a run: {', '.join(sorted(unknown))}")
        names = sorted(values)
        assignments = ", ".join(f"{name} = ?" for name in names)  # names checked against _COLUMNS above
        with self._transaction() as connection:
            connection.execute(
                f"UPDATE strata_runs SET {assignments} WHERE run_id = ?",  # noqa: S608 - fixed column names
                [*(_value(values[name]) for name in names), run_id],
            )

    def _reap(self, connection: sqlite3.Connection) -> int:
        """Fail ``running`` runs whose heartbeat stopped or whose pid on this host is gone (as ``RunHistory``)."""
        rows = connection.execute(
            "SELECT run_id, heartbeat_at, pid, host FROM strata_runs WHERE status = ?", (str(RunStatus.RUNNING),)
        ).fetchall()
        failed = 0
        for run_id, beat, pid, run_host in rows:
            reason = death(_parse(beat), pid, run_host, self.stale_after)
            if reason is None:
                continue
            done = connection.execute(
                "UPDATE strata_runs SET status = ?, ended_at = ?, error = ? "
                "WHERE run_id = ? AND status = ? AND heartbeat_at = ?",
                (str(RunStatus.FAILED), beat, reason, run_id, str(RunStatus.RUNNING), beat),
            )
            failed += done.rowcount
        return failed


def open_writer(project: Project) -> LiteHistory | RunHistory:
    """What ``strata run`` records its run with: ``LiteHistory`` when it can, else ``RunHistory``."""
    lite = LiteHistory.open(project)
    if lite is not None:
        return lite
    from strata.history.runs import RunHistory

    return RunHistory.open(project)
