"""The system database: where it is and how to connect to it.

SQLite at ``.strata/system.db`` (0600, like its ``-wal`` and ``-shm`` files: run errors quote
plugin output) unless ``database_uri`` (or ``STRATA_DATABASE_URI``) names
another database; ``postgresql://`` URLs use psycopg 3. SQLite runs in WAL mode, and strata
issues ``BEGIN IMMEDIATE`` itself, so two processes never deadlock upgrading a read to a write:
the second waits (``busy_timeout``) instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import SystemDatabaseError
from strata.project.expand import expand_str
from strata.project.files import SQLITE_FILES, private_file

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL, Engine

    from strata.project.project import Project

DEFAULT_FILE = "system.db"
"""The default SQLite file, inside ``.strata/``."""

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another one before giving up."""

_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "sqlite": "sqlite"}
"""Accepted URL schemes and the SQLAlchemy driver each one uses."""


def default_file(project: Project) -> Path | None:
    """The default SQLite file when ``database_uri`` names no database, else None (no SQLAlchemy needed)."""
    raw = project.setting("database_uri")
    return project.system_dir / DEFAULT_FILE if raw is None or raw == "" else None


def database_url(project: Project) -> URL:
    """The system database URL: ``database_uri`` (``${VAR}`` expanded) or the default SQLite file.

    A relative SQLite path is relative to the project root, not the working directory.
    ``$MELTANO_SYS_DIR_ROOT`` (Meltano's default URI uses it) means ``.strata/``.
    """
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    default = default_file(project)
    if default is not None:
        return sa.URL.create("sqlite", database=str(default))
    raw = project.setting("database_uri")
    variables = {"MELTANO_SYS_DIR_ROOT": str(project.system_dir), **project.variables}
    text = expand_str(str(raw), variables, "database_uri", strict=project.strict_env_var_mode)
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise SystemDatabaseError(
            "database_uri is not a database URL", "write it as sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from exc
    scheme = url.drivername.split("+")[0]
    if scheme not in _DRIVERS:
        raise SystemDatabaseError(
            f"database_uri uses `{url.drivername}`, which strata cannot use for its system database",
            "use sqlite:///PATH or postgresql://USER@HOST/DB",
        )
    if scheme != "sqlite" and "+" not in url.drivername:
        url = url.set(drivername=_DRIVERS[scheme])
    if scheme == "sqlite" and url.database and url.database != ":memory:" and not Path(url.database).is_absolute():
        url = url.set(database=str(project.root / url.database))
    return url


def shown(url: URL) -> str:
    """``url`` as it may appear in messages: the password hidden."""
    return url.render_as_string(hide_password=True)


def create_engine(url: URL) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and explicit ``BEGIN IMMEDIATE``."""
    import sqlalchemy as sa
    from sqlalchemy import event

    if url.get_backend_name() != "sqlite":
        from strata.extras import needs

        with needs("postgres", "a PostgreSQL system database (database_uri)"):
            return sa.create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            private_file(Path(url.database), SQLITE_FILES)
        except OSError as exc:
            raise SystemDatabaseError(
                f"cannot create {url.database} owner-only: {exc.strerror}",
                "check the path in database_uri and its permissions",
            ) from exc
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite would BEGIN on its own, deferred, only before writes; strata begins itself.
        dbapi_connection.isolation_level = None
        setup(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def setup(connection: Any) -> None:
    """Busy timeout, WAL and ``synchronous=NORMAL`` on a new sqlite3 connection (autocommit mode)."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """Switch to WAL, retrying until the busy timeout.

    A new database being set up by another process at the same moment answers "locked" to the
    switch without waiting for the busy handler.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF  # the primary result code
            busy = code in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
            if not busy or time.monotonic() > deadline:  # a full disk, say, does not pass by waiting
                raise
            time.sleep(0.05)
        else:
            return
