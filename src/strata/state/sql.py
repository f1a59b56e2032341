"""SQL databases through SQLAlchemy: ``sqlite:///path`` and ``postgresql://…`` (psycopg 3).

```
strata_state       (state_id PK, completed JSON, partial JSON, updated_at)
strata_state_lock  (state_id PK, holder, process, token, version, since, renewed, expires)
```

Tables are created on first use. A ``put`` is one upsert in one transaction. Lease times are
seconds since the epoch *on the database's clock* (``clock_timestamp()`` in PostgreSQL,
``julianday('now')`` in SQLite), so machines with different clocks agree on expiry. A lease is
created with ``INSERT … ON CONFLICT DO NOTHING`` and changed with ``UPDATE … WHERE token = ? AND
version = ?``: each is one atomic statement, so of two racing takers exactly one wins. Every value
is a bound parameter; no SQL text is built from input.
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from strata.errors import SettingError, StateBackendError
from strata.extras import needs
from strata.project.files import SQLITE_FILES, private_file
from strata.state.base import StateBackend, StateRecord
from strata.state.ids import MAX_LENGTH, check_state_id, is_state_id
from strata.state.lock import Lease, LeaseRequest

if TYPE_CHECKING:
    from collections.abc import Iterator

_metadata = sa.MetaData()

STATES = sa.Table(
    "strata_state",
    _metadata,
    sa.Column("state_id", sa.String(MAX_LENGTH), primary_key=True),
    sa.Column("completed", sa.JSON(none_as_null=True)),
    sa.Column("partial", sa.JSON(none_as_null=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

LOCKS = sa.Table(
    "strata_state_lock",
    _metadata,
    sa.Column("state_id", sa.String(MAX_LENGTH), primary_key=True),
    sa.Column("holder", sa.String(300), nullable=False),
    sa.Column("process", sa.String(200), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Column("renewed", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
)


def database_url(uri: str, root: Path) -> sa.URL:
    """The SQLAlchemy URL for ``uri``: psycopg 3 for PostgreSQL, SQLite paths relative to ``root``."""
    try:
        url = sa.make_url(uri)
    except sa.exc.ArgumentError:
        raise SettingError(
            "state_backend.uri is not a database URL", "write it as sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    relative = url.database and url.database != ":memory:" and not os.path.isabs(url.database)  # noqa: PTH117 - a string
    if url.get_backend_name() == "sqlite" and relative:
        url = url.set(database=str(root / str(url.database)))
    return url


class SqlStateBackend(StateBackend):
    """States in two tables of a SQL database."""

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        self._dialect = url.get_backend_name()
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self._dialect == "sqlite":
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
            if url.database and url.database != ":memory:":
                _create_private_file(url.database)
        try:
            with needs("postgres", "the PostgreSQL state backend"):
                self.engine = sa.create_engine(url, **options)
        except (sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
            raise SettingError(
                f"no database driver for `{url.drivername}` ({exc})", "use sqlite:///PATH or postgresql://…"
            ) from None
        self._finalizer = weakref.finalize(self, self.engine.dispose)
        self._ready = False

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._finalizer()

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A transaction, with the tables in place and database errors as one ``StateBackendError``."""
        try:
            if not self._ready:
                self._create_tables()
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            raise StateBackendError(
                f"state database {self.describe()} failed: {first}",
                "check state_backend.uri and that the database is reachable",
            ) from None

    def _create_tables(self) -> None:
        # ``IF NOT EXISTS`` makes racing creators harmless on SQLite; PostgreSQL can still refuse the
        # loser of two simultaneous CREATEs (a unique catalog entry), so a failure is retried after
        # a short pause, by which time the winner has committed.
        attempts = 5
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    for table in (STATES, LOCKS):
                        conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
                break
            except sa.exc.DBAPIError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        self._ready = True

    def _now(self, conn: sa.Connection) -> float:
        """Seconds since the epoch by the database's clock."""
        if self._dialect == "postgresql":
            query = sa.select(sa.extract("epoch", sa.func.clock_timestamp()))
        elif self._dialect == "sqlite":
            query = sa.select((sa.func.julianday("now") - 2440587.5) * 86400.0)
        else:  # pragma: no cover - only SQLite and PostgreSQL are offered
            return datetime.now(UTC).timestamp()
        return float(conn.execute(query).scalar_one())

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    # -- states --------------------------------------------------------------------------

    def get(self, state_id: str) -> StateRecord | None:
        check_state_id(state_id)
        with self._begin() as conn:
            row = conn.execute(
                sa.select(STATES.c.completed, STATES.c.partial, STATES.c.updated_at).where(
                    STATES.c.state_id == state_id
                )
            ).one_or_none()
        if row is None:
            return None
        updated_at = row.updated_at
        if updated_at is not None and updated_at.tzinfo is None:
            updated_at = updated_at.replace(tzinfo=UTC)
        return StateRecord(row.completed or None, row.partial or None, updated_at)

    def put(self, state_id: str, record: StateRecord) -> None:
        check_state_id(state_id)
        values = {
            "completed": record.completed or None,
            "partial": record.partial or None,
            "updated_at": datetime.now(UTC),
        }
        statement = self._insert(STATES).values(state_id=state_id, **values)
        with self._begin() as conn:
            conn.execute(statement.on_conflict_do_update(index_elements=[STATES.c.state_id], set_=values))

    def delete(self, state_id: str) -> bool:
        check_state_id(state_id)
        with self._begin() as conn:
            return conn.execute(sa.delete(STATES).where(STATES.c.state_id == state_id)).rowcount > 0

    def ids(self, pattern: str | None = None) -> list[str]:
        with self._begin() as conn:
            found = conn.execute(sa.select(STATES.c.state_id).order_by(STATES.c.state_id)).scalars().all()
        return sorted(i for i in found if is_state_id(i) and (pattern is None or fnmatchcase(i, pattern)))

    # -- lease ---------------------------------------------------------------------------

    def _read_lease(self, state_id: str) -> Lease | None:
        check_state_id(state_id)
        with self._begin() as conn:
            now = self._now(conn)
            row = conn.execute(
                sa.select(
                    LOCKS.c.holder, LOCKS.c.process, LOCKS.c.token, LOCKS.c.version, LOCKS.c.since, LOCKS.c.expires
                ).where(LOCKS.c.state_id == state_id)
            ).one_or_none()
        if row is None:
            return None
        return Lease(row.holder, row.token, row.since, row.expires < now, f"{row.token}:{row.version}", row.process)

    def _create_lease(self, state_id: str, request: LeaseRequest) -> str | None:
        check_state_id(state_id)
        with self._begin() as conn:
            now = self._now(conn)
            statement = self._insert(LOCKS).values(
                state_id=state_id,
                holder=request.holder,
                process=request.process,
                token=request.token,
                version=1,
                since=request.since,
                renewed=now,
                expires=now + request.ttl,
            )
            created = conn.execute(statement.on_conflict_do_nothing(index_elements=[LOCKS.c.state_id])).rowcount
        return f"{request.token}:1" if created == 1 else None

    def _replace_lease(self, state_id: str, request: LeaseRequest, tag: str) -> str | None:
        check_state_id(state_id)
        token, _, version = tag.rpartition(":")
        with self._begin() as conn:
            now = self._now(conn)
            changed = conn.execute(
                sa.update(LOCKS)
                .where(LOCKS.c.state_id == state_id, LOCKS.c.token == token, LOCKS.c.version == int(version))
                .values(
                    holder=request.holder,
                    process=request.process,
                    token=request.token,
                    version=LOCKS.c.version + 1,
                    since=request.since,
                    renewed=now,
                    expires=now + request.ttl,
                )
            ).rowcount
        return f"{request.token}:{int(version) + 1}" if changed == 1 else None

    def _drop_lease(self, state_id: str, tag: str) -> bool:
        check_state_id(state_id)
        token, _, version = tag.rpartition(":")
        with self._begin() as conn:
            return (
                conn.execute(
                    sa.delete(LOCKS).where(
                        LOCKS.c.state_id == state_id, LOCKS.c.token == token, LOCKS.c.version == int(version)
                    )
                ).rowcount
                == 1
            )


def _create_private_file(path: str) -> None:
    """Create the SQLite file owner-only (and its directory) before SQLite does it with the umask."""
    directory = os.path.dirname(path)  # noqa: PTH120 - the URL holds a string
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)  # noqa: PTH103
    private_file(Path(path), SQLITE_FILES)
