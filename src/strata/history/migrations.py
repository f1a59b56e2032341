"""Versioned schema changes of the system database.

The schema version is the highest ``version`` recorded in ``strata_schema_version``;
``MIGRATIONS`` lists every step in order. Opening the database applies the steps it has not
seen, each in its own transaction together with the row that records it, so a step lands whole
or not at all and opening again does nothing. Two processes opening a new database at once queue:
SQLite through ``BEGIN IMMEDIATE`` (see ``db.py``), PostgreSQL through a transaction-scoped
advisory lock; each re-reads the version inside its transaction. A database whose version is
higher than the last step here was written by a newer strata and is refused, never touched.

A released step is frozen: it declares its tables itself instead of importing the current ones
(``tables.py``), so later changes to the code cannot change what an old step does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from strata.errors import SystemDatabaseError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

VERSION_TABLE = "strata_schema_version"

_PG_LOCK_KEY = 0x5354_5241_5441_0001
"""Advisory lock id (``STRATA`` + 1) held while a PostgreSQL schema is migrated."""


@dataclass(frozen=True)
class Migration:
    """One schema step: its version (1, 2, … in order), what it does, and the function doing it."""

    version: int
    description: str
    apply: Callable[[sa.Connection], None]


def _v1_runs(connection: sa.Connection) -> None:
    metadata = sa.MetaData()
    runs = sa.Table(
        "strata_runs",
        metadata,
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("state_id", sa.Text, nullable=False),
        sa.Column("environment", sa.Text),
        sa.Column("blocks", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.Text),
        sa.Column("records", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("log_path", sa.Text),
        sa.Column("strata_version", sa.String(32)),
    )
    sa.Index("strata_runs_state_started", runs.c.state_id, runs.c.started_at)
    sa.Index("strata_runs_started", runs.c.started_at)
    sa.Index("strata_runs_status", runs.c.status)
    metadata.create_all(connection)


def _v2_build_errors(connection: sa.Connection) -> None:
    metadata = sa.MetaData()
    sa.Table(
        "strata_build_errors",
        metadata,
        sa.Column("store", sa.String(200), primary_key=True),
        sa.Column("feature", sa.String(500), primary_key=True),
        sa.Column("sample", sa.Text, primary_key=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(connection)


def _v3_run_builds(connection: sa.Connection) -> None:
    kind = sa.JSON().compile(dialect=connection.dialect)
    connection.execute(sa.text(f"ALTER TABLE strata_runs ADD COLUMN builds {kind}"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs table", _v1_runs),
    Migration(2, "build errors table", _v2_build_errors),
    Migration(3, "what each run built (strata_runs.builds)", _v3_run_builds),
)
"""Every schema step, oldest first. Append new steps; never edit a released one."""


def _version_table() -> sa.Table:
    return sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )


def current_version(connection: sa.Connection) -> int:
    """The schema version of the database behind ``connection`` (0 when it has none yet)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return 0
    version = connection.execute(sa.select(sa.func.max(_version_table().c.version))).scalar()
    return int(version or 0)


def migrate(engine: sa.Engine, where: str, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to the last of ``migrations``; return the version it is at.

    ``where`` names the database in errors (its URL without the password).
    """
    known = migrations[-1].version if migrations else 0
    with engine.connect() as connection:
        version = current_version(connection)
        if version > known:
            _check_intact(connection, where)
    _refuse_newer(version, known, where)
    for step in migrations:
        if step.version <= version:
            continue
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            table = _version_table()
            table.create(connection, checkfirst=True)
            version = current_version(connection)
            _refuse_newer(version, known, where)
            if step.version <= version:
                continue
            step.apply(connection)
            connection.execute(
                table.insert().values(version=step.version, description=step.description, applied_at=datetime.now(UTC))
            )
            version = step.version
    return version


def _check_intact(connection: sa.Connection, where: str) -> None:
    """A version from the future may be a damaged SQLite page: ask SQLite before blaming the version."""
    if connection.dialect.name != "sqlite":
        return
    problems = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        from strata.history.model import damaged_database

        raise damaged_database(where, problems[-1].splitlines()[-1])


def _refuse_newer(version: int, known: int, where: str) -> None:
    if version > known:
        raise SystemDatabaseError(
            f"the system database {where} has schema version {version}, newer than this strata knows ({known})",
            "upgrade strata, or point database_uri at another database",
        )
