"""The two ways into ClickHouse: chDB embedded in this process, or a server through clickhouse-connect.

Both give the store the same three calls: :meth:`Engine.query` (rows as Arrow), :meth:`Engine.command`
(a statement) and :meth:`Engine.insert` (an Arrow table into a table), under the same session
settings (:data:`SETTINGS`), each failing with one line naming the store (:meth:`Engine.failure`).
Both keep one session, whose temporary tables a store's operation uses and which vanish with it.
chDB opens one data directory at a time per process: stores on two directories take turns
(:class:`ChdbSessions`), never while one holds temporary tables (:meth:`Engine.hold`).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from strata.errors import RuntimeFailure, StrataError, hiding
from strata.extras import needs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pyarrow as pa

SETTINGS: dict[str, Any] = {
    "join_use_nulls": 1,
    "cast_keep_nullable": 1,
    "transform_null_in": 1,
    "union_default_mode": "DISTINCT",
    "mutations_sync": 2,
    "session_timezone": "UTC",
}
"""What every query of the store runs under: a full join's missing side and a cast of null are null (as in
DuckDB), ``IN`` matches nulls to nulls (ids are matched as a write matches them), a bare ``UNION`` is
``UNION DISTINCT``, a delete is done when its statement returns, and times are UTC."""


class Engine:
    """A connection to ClickHouse, embedded or remote, for the store ``describe`` names."""

    describe = "clickhouse store"
    secret = ""
    """A text never shown in a message (the password)."""

    def query(self, sql: str) -> pa.Table:
        """The rows of ``sql`` as an Arrow table."""
        raise NotImplementedError

    def command(self, sql: str) -> None:
        """Run a statement."""
        raise NotImplementedError

    def insert(self, table: str, data: pa.Table) -> None:
        """Append ``data`` to ``table`` (quoted name); its columns are the table's, in order."""
        raise NotImplementedError

    def hold(self) -> None:
        """Keep this session (and its temporary tables) until :meth:`release`; calls may nest."""

    def release(self) -> None:
        """One :meth:`hold` fewer."""

    def close(self) -> None:
        """Let go of the connection."""

    @contextlib.contextmanager
    def failing(self, doing: str) -> Iterator[None]:
        """The engine's errors inside as :meth:`failure`."""
        try:
            yield
        except StrataError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error of the engine is one line naming the store
            raise self.failure(doing, exc) from hiding(exc, self.hide)

    def hide(self, text: str) -> str:
        """``text`` with the password (if any) blanked out."""
        return text.replace(self.secret, "***") if self.secret else text

    def failure(self, doing: str, exc: Exception) -> RuntimeFailure:
        """``cannot <doing> in <store>: <the engine's first line>; what to do``, the password hidden."""
        return RuntimeFailure(
            f"cannot {doing} in {self.describe}: {first_line(str(exc) or type(exc).__name__, self.secret)}",
            "check that its tables were not dropped or changed by hand, the disk and the connection, then run "
            "again (a write counts only once committed: nothing of one that failed is read); --debug shows more",
        )


class DirectoryBusyError(RuntimeFailure):
    """Another process has the chDB directory open."""


class _Busy(Exception):
    """The directory's ``status`` file is locked by another process (chDB's own lock); never shown as such."""


def _busy(path: str) -> bool:
    """Whether another process holds ``path`` open (ClickHouse locks its ``status`` file with ``flock`` while open)."""
    import fcntl
    import os

    try:
        fd = os.open(Path(path) / "status", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # lets go of the lock too
    return False


class ChdbSessions:
    """chDB's one session per process, taken in turns by the stores on each directory.

    chDB opens one data directory at a time: every call of a store runs on its own directory's session
    (:meth:`run`), which is opened in place of another directory's when that one was used last
    (~0.02 s), and closed with the last store on it. Nothing of a store outlives one call on a
    session but its tables, so stores on two directories (a copy, a read-through chain) take turns;
    an operation's temporary tables live in the session, which it holds meanwhile (:meth:`hold`).
    A directory another process has open is refused before chDB tries it (:func:`_busy`).
    """

    _lock = threading.RLock()
    _path: str | None = None
    _session: Any = None
    _users: ClassVar[dict[str, int]] = {}

    @classmethod
    def take(cls, path: str) -> str:
        """Count one more store on ``path``; its resolved path (the directory is made when first used)."""
        with needs("clickhouse", "the ClickHouse store"):
            import chdb  # noqa: F401 - the extra is there before anything runs

        resolved = str(Path(path).resolve())
        with cls._lock:
            cls._users[resolved] = cls._users.get(resolved, 0) + 1
        return resolved

    @classmethod
    def run(cls, path: str, call: Callable[[Any], Any]) -> Any:
        """``call(session)`` on ``path``'s session, opening it in place of another directory's if needed."""
        with cls._lock:
            if cls._path != path:
                cls._close()
                with needs("clickhouse", "the ClickHouse store"):
                    from chdb import session
                if _busy(path):  # asked first: chDB would write its own line to stderr, then fail obscurely
                    raise _Busy(path)

                Path(path).mkdir(parents=True, exist_ok=True)
                Path(path).chmod(0o700)
                cls._session = session.Session(path)  # type: ignore[no-untyped-call]
                cls._path = path
                for name, value in SETTINGS.items():
                    cls._session.query(f"SET {name} = {_setting(value)}")
            return call(cls._session)

    @classmethod
    def hold(cls, path: str) -> None:
        """Keep ``path``'s session open (other threads wait) until :meth:`release`: its temporary tables live."""
        cls._lock.acquire()  # released by release(), called by whoever holds it
        try:
            cls.run(path, lambda session: session)
        except BaseException:
            cls._lock.release()
            raise

    @classmethod
    def release(cls) -> None:
        cls._lock.release()

    @classmethod
    def give_back(cls, path: str) -> None:
        """One store fewer uses ``path``; with the last, its session (if open) is closed."""
        with cls._lock:
            cls._users[path] -= 1
            if cls._users[path] == 0:
                del cls._users[path]
                if cls._path == path:
                    cls._close()

    @classmethod
    def _close(cls) -> None:
        if cls._session is not None:
            cls._session.close()
        cls._session = None
        cls._path = None


def _setting(value: Any) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value) + "'"


class ChdbEngine(Engine):
    """chDB in this process, its data in a local directory.

    ``read_only`` on a directory that does not exist: an empty store, which must not create it; chDB
    then runs on a directory of its own, removed at close.
    """

    def __init__(self, path: str, describe: str, *, read_only: bool = False) -> None:
        self.describe = describe
        self._scratch: str | None = None
        if read_only and not Path(path).exists():
            import tempfile

            self._scratch = path = tempfile.mkdtemp(prefix="strata-chdb-")
        self._path = ChdbSessions.take(path)
        self._open = True
        self._holds = 0

    def query(self, sql: str) -> pa.Table:
        with self.failing("run a query"):
            table: pa.Table = ChdbSessions.run(self._path, lambda session: session.query(sql, "ArrowTable"))
        return table

    def command(self, sql: str) -> None:
        with self.failing("run a statement"):
            ChdbSessions.run(self._path, lambda session: session.query(sql))

    def insert(self, table: str, data: pa.Table) -> None:
        """Through chDB's ``Python()`` table function, which finds ``data`` by its name in the calling frame."""
        from strata.resolve.sql import CLICKHOUSE

        names = ", ".join(CLICKHOUSE.ident(c) for c in data.column_names)
        with self.failing("insert rows"):
            ChdbSessions.run(self._path, lambda session: _insert(session, table, names, data))

    def failure(self, doing: str, exc: Exception) -> RuntimeFailure:
        if isinstance(exc, _Busy):
            return DirectoryBusyError(
                f"cannot open {self.describe}: another process has its directory open",
                "chDB opens a directory in one process at a time: run again once that process is done "
                "(several processes at once need a ClickHouse server)",
            )
        return super().failure(doing, exc)

    def hold(self) -> None:
        with self.failing("open its session"):
            ChdbSessions.hold(self._path)
        self._holds += 1

    def release(self) -> None:
        if self._holds:
            self._holds -= 1
            ChdbSessions.release()

    def close(self) -> None:
        """Let go of the directory, and of the holds an operation that failed half-way kept."""
        while self._holds:
            self.release()
        if self._open:
            self._open = False
            ChdbSessions.give_back(self._path)
            if self._scratch is not None:
                import shutil

                shutil.rmtree(self._scratch, ignore_errors=True)


def _insert(session: Any, table: str, names: str, data: pa.Table) -> None:  # noqa: ARG001 - read by its name
    """``INSERT ... SELECT ... FROM Python(data)``: chDB finds ``data`` by its name in this frame."""
    session.query(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(data)")


class ServerEngine(Engine):
    """A ClickHouse server, through clickhouse-connect (HTTP), in one session of its own."""

    def __init__(self, options: dict[str, Any], describe: str) -> None:
        self.describe = describe
        self.secret = str(options.get("password") or "")
        with needs("clickhouse", "the ClickHouse store"):
            import clickhouse_connect
            from clickhouse_connect.driver.exceptions import ClickHouseError

        import logging

        # its failures reach the user as our one-line errors; unhandled, its log lines went to stderr as well
        logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())
        try:
            self._client = clickhouse_connect.get_client(
                host=options.get("host") or "localhost",
                port=server_port(options),
                username=options.get("username") or "default",
                password=options.get("password") or "",
                secure=bool(options.get("secure", False)),
                settings=SETTINGS,
                connect_timeout=10,
                autogenerate_session_id=True,  # the session holding an operation's temporary tables
            )
        except ClickHouseError as exc:
            raise RuntimeFailure(
                f"cannot reach {describe}: {first_line(str(exc), self.secret)}",
                "check host, port, username and password (and that the server is running); nothing was written",
            ) from hiding(exc, self.hide)

    def query(self, sql: str) -> pa.Table:
        with self.failing("run a query"):
            table: pa.Table = self._client.query_arrow(sql, use_strings=True)
        return table

    def command(self, sql: str) -> None:
        with self.failing("run a statement"):
            self._client.command(sql)

    def insert(self, table: str, data: pa.Table) -> None:
        with self.failing("insert rows"):
            self._client.insert_arrow(table, data)

    def close(self) -> None:
        self._client.close()


def server_port(options: dict[str, Any]) -> int:
    """The port given, else ClickHouse's: 8443 for HTTPS (``secure``), 8123 for HTTP."""
    port = options.get("port")
    return int(port) if port else (8443 if options.get("secure") else 8123)


def first_line(message: str, secret: str) -> str:
    """``message`` on one line (at most 300 characters), ``secret`` (if any) blanked out."""
    text = " ".join(message.split())
    return (text.replace(secret, "***") if secret else text)[:300]
