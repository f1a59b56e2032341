"""The two ways into ClickHouse: chDB embedded in this process, or a server through clickhouse-connect.

Both give the store the same three calls: :meth:`Engine.query` (rows as Arrow), :meth:`Engine.command`
(a statement) and :meth:`Engine.insert` (an Arrow table into a table), under the same session
settings (:data:`SETTINGS`). chDB holds one data directory per process: a second store on another
directory, while the first is open, is refused in one line (:class:`ChdbSessions`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import RuntimeFailure
from strata.extras import needs

if TYPE_CHECKING:
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
    """A connection to ClickHouse, embedded or remote."""

    def query(self, sql: str) -> pa.Table:
        """The rows of ``sql`` as an Arrow table."""
        raise NotImplementedError

    def command(self, sql: str) -> None:
        """Run a statement."""
        raise NotImplementedError

    def insert(self, table: str, data: pa.Table) -> None:
        """Append ``data`` to ``table`` (quoted name); its columns are the table's, in order."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the connection."""


class ChdbSessions:
    """chDB's one session per process, shared by every store on its directory and closed with the last."""

    _lock = threading.Lock()
    _path: str | None = None
    _session: Any = None
    _users = 0

    @classmethod
    def take(cls, path: str, describe: str) -> Any:
        """The session on ``path``, opened if needed; refused when another directory's is open."""
        with needs("clickhouse", "the ClickHouse store"):
            from chdb import session

        resolved = str(Path(path).resolve())
        with cls._lock:
            if cls._session is not None and cls._path != resolved:
                raise RuntimeFailure(
                    f"cannot open {describe}: chDB holds one directory per process and {cls._path} is open",
                    "close the other embedded ClickHouse store first, or use a ClickHouse server for both",
                )
            if cls._session is None:
                Path(resolved).mkdir(parents=True, exist_ok=True)
                Path(resolved).chmod(0o700)
                cls._session = session.Session(resolved)  # type: ignore[no-untyped-call]
                cls._path = resolved
                for name, value in SETTINGS.items():
                    cls._session.query(f"SET {name} = {_setting(value)}")
            cls._users += 1
            return cls._session

    @classmethod
    def give_back(cls) -> None:
        """One store fewer uses the session; the last closes it."""
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._session is not None:
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
        self._scratch: str | None = None
        if read_only and not Path(path).exists():
            import tempfile

            self._scratch = path = tempfile.mkdtemp(prefix="strata-chdb-")
        self._session = ChdbSessions.take(path, describe)
        self._open = True

    def query(self, sql: str) -> pa.Table:
        table: pa.Table = self._session.query(sql, "ArrowTable")
        return table

    def command(self, sql: str) -> None:
        self._session.query(sql)

    def insert(self, table: str, data: pa.Table) -> None:
        """Through chDB's ``Python()`` table function, which finds ``data`` by its name in this frame."""
        names = ", ".join('"' + c.replace('"', '""') + '"' for c in data.column_names)
        self._session.query(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(data)")

    def close(self) -> None:
        if self._open:
            self._open = False
            ChdbSessions.give_back()
            if self._scratch is not None:
                import shutil

                shutil.rmtree(self._scratch, ignore_errors=True)


class ServerEngine(Engine):
    """A ClickHouse server, through clickhouse-connect (HTTP)."""

    def __init__(self, options: dict[str, Any], describe: str) -> None:
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
            )
        except ClickHouseError as exc:
            raise RuntimeFailure(
                f"cannot reach {describe}: {_without(str(exc), options)}",
                "check host, port, username and password (and that the server is running); nothing was written",
            ) from None

    def query(self, sql: str) -> pa.Table:
        table: pa.Table = self._client.query_arrow(sql, use_strings=True)
        return table

    def command(self, sql: str) -> None:
        self._client.command(sql)

    def insert(self, table: str, data: pa.Table) -> None:
        self._client.insert_arrow(table, data)

    def close(self) -> None:
        self._client.close()


def server_port(options: dict[str, Any]) -> int:
    """The port given, else ClickHouse's: 8443 for HTTPS (``secure``), 8123 for HTTP."""
    port = options.get("port")
    return int(port) if port else (8443 if options.get("secure") else 8123)


def _without(message: str, options: dict[str, Any]) -> str:
    """``message`` on one line, the password (if any) blanked out."""
    text = " ".join(message.split())
    password = str(options.get("password") or "")
    return text.replace(password, "***") if password else text
