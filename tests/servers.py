"""Real servers for tests: PostgreSQL, S3 (moto's server mode) and Azure Blob Storage (Azurite).

Each fixture is session-scoped: the server starts on first use, listens on 127.0.0.1 at a free
port, and is stopped (its files removed) when the session ends; every pytest-xdist worker has
its own. Nothing waits by sleeping for a fixed time: ports are polled with a bounded timeout.
To use them, import the fixtures into a conftest::

    from tests.servers import azurite_server, moto_server, postgres_database, postgres_server  # noqa: F401

- ``postgres_server`` -> :class:`PostgresServer`: Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``),
  installed with ``apt-get install -y postgresql`` when missing and running as root (as CI does);
  missing and not root, the tests that need it are skipped, saying how to install it.
  Host connections need the password (scram-sha-256); the unix socket lives in the server's
  temporary directory. ``postgres_database`` is a fresh database per test, dropped afterwards.
- ``moto_server`` -> :class:`S3Server`: ``moto.server.ThreadedMotoServer`` in this process.
- ``azurite_server`` -> :class:`AzuriteServer`: Azurite's blob service from npm, installed once
  into ``.tools/azurite`` (``npm install azurite@3``).
- ``graphviz_dot`` -> the path of Graphviz's ``dot`` (``graphviz``), installed like PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".tools"
HOST = "127.0.0.1"
T = TypeVar("T")

START_TIMEOUT = 60.0
"""Seconds a server may take to accept connections."""


# -- helpers --------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = START_TIMEOUT, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll ``HOST:port`` until it accepts a connection; ``False`` on timeout or when ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return True
        if not alive():
            return False
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One installer at a time across pytest-xdist workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _apt_install(*packages: str) -> None:
    """``apt-get install -y`` (after ``apt-get update`` if the first try fails); root only."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        pytest.fail(f"{' and '.join(packages)} missing and there is no apt-get to install it: install it by hand")
    with _file_lock(Path(tempfile.gettempdir()) / "strata-tests-apt.lock"):
        install = [apt_get, "install", "-y", "--no-install-recommends", *packages]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode == 0:
            return
        subprocess.run([apt_get, "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(install)}` failed: {done.stderr.strip()[-500:]}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- PostgreSQL -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server; ``superuser`` logs in with ``password`` over TCP."""

    host: str
    port: int
    superuser: str
    password: str
    socket_dir: Path
    control: _PgControl | None = None
    """Stops and starts the server (fault tests use a server of their own for that)."""

    def stop(self) -> None:
        """Stop the server at once; connections drop."""
        assert self.control is not None
        self.control.stop()

    def start(self) -> None:
        """Start the stopped server again on its port."""
        assert self.control is not None
        if not self.control.start():
            raise ServerError(f"PostgreSQL did not start again: {_tail(self.control.log)}")

    def dsn(
        self,
        database: str = "postgres",
        *,
        user: str | None = None,
        password: str | None = None,
        scheme: str = "postgresql",
    ) -> str:
        """A URL such as ``postgresql://postgres:pw@127.0.0.1:5432/postgres`` (``scheme`` may name a driver)."""
        user = user or self.superuser
        password = self.password if password is None and user == self.superuser else password
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{database}"

    @property
    def superuser_dsn(self) -> str:
        return self.dsn()

    def execute(self, statement: Any, database: str = "postgres") -> None:
        """Run one statement as the superuser, outside a transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str | None = None, owner: str | None = None) -> str:
        """Create a database (a fresh name unless given); its name."""
        from psycopg import sql

        name = name or f"t_{secrets.token_hex(6)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement = sql.SQL("{} OWNER {}").format(statement, sql.Identifier(owner))
        self.execute(statement)
        return name

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_user(self, name: str, password: str, *, superuser: bool = False) -> None:
        """A login role with a password."""
        from psycopg import sql

        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} {}").format(
                sql.Identifier(name), sql.Literal(password), sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER")
            )
        )


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``pg_ctl``, else ``None``."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


def _installed(package: str, find: Callable[[], T | None], what: str) -> T:
    """What ``find`` finds, after ``apt-get install package`` when it finds nothing.

    The tests install only as root; elsewhere the test is skipped, saying how to install it.
    """
    found = find()
    if found is None:
        if os.geteuid() != 0:
            pytest.skip(
                f"{what} is not installed and the tests install it only as root: "
                f"run `sudo apt-get install -y {package}` to run these tests"
            )
        _apt_install(package)
        found = find()
        if found is None:
            pytest.fail(f"`apt-get install {package}` left no {what}")
    return found


def _postgres_binaries() -> Path:
    return _installed("postgresql", postgres_bin_dir, "PostgreSQL (/usr/lib/postgresql/*/bin/pg_ctl)")


@pytest.fixture(scope="session")
def graphviz_dot() -> str:
    """Graphviz's ``dot`` program (Debian's ``graphviz``), installed when missing; its path."""
    return _installed("graphviz", lambda: shutil.which("dot"), "Graphviz's `dot`")


class ServerError(Exception):
    """A server that could not be installed or started (the fixtures turn it into a test failure)."""


@contextlib.contextmanager
def running_postgres(bin_dir: Path, *, durable: bool = False) -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own on 127.0.0.1 (as the ``postgres`` user when running as root), removed after.

    Shared by the fixtures and the benchmarks (``bench/features/postgres.py``); :class:`ServerError` when it
    does not start. It runs without ``fsync`` and, unless ``durable``, without ``synchronous_commit``: a
    server stopped at once (:meth:`_PgControl.stop`) may then lose transactions committed just before,
    which tests that stop it mid-work must not see.
    """
    as_postgres: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="strata-pg-"))
    if os.geteuid() == 0:
        as_postgres = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    password = secrets.token_hex(12)
    pwfile.write_text(password + "\n")
    if as_postgres:
        shutil.chown(pwfile, "postgres", "postgres")
    control = _PgControl(str(bin_dir / "pg_ctl"), data, log, root, tuple(as_postgres), durable=durable)
    try:
        init = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile)]
        init += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"]
        done = subprocess.run([*as_postgres, *init], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerError(f"initdb failed: {done.stderr.strip()[-800:]}")
        for _ in range(3):
            control.port = free_port()
            if control.start():
                break
            control.stop()
        else:
            raise ServerError(f"PostgreSQL did not start: {_tail(log)}")
        yield PostgresServer(HOST, control.port, "postgres", password, root, control)
    finally:
        control.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class _PgControl:
    """``pg_ctl`` for one server's data directory: stop it and start it again on the same port."""

    pg_ctl: str
    data: Path
    log: Path
    socket_dir: Path
    as_postgres: tuple[str, ...]
    port: int = 0
    durable: bool = False
    """A commit returns once its log is written (to the OS: it survives the server, not the machine)."""

    def start(self) -> bool:
        """Start the server; whether it accepts connections."""
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.socket_dir} -c fsync=off"
        options += " -c full_page_writes=off" + ("" if self.durable else " -c synchronous_commit=off")
        start = [self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(START_TIMEOUT))]
        started = subprocess.run([*self.as_postgres, *start, "-o", options, "start"], capture_output=True, check=False)
        return started.returncode == 0 and wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``: connections drop, open transactions are lost)."""
        if (self.data / "postmaster.pid").exists():
            stop = [self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            subprocess.run([*self.as_postgres, *stop], capture_output=True, check=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own for the session (see :func:`running_postgres`)."""
    try:
        with running_postgres(_postgres_binaries()) as server:
            yield server
    except ServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards); its superuser DSN."""
    name = postgres_server.create_database()
    yield postgres_server.dsn(name)
    postgres_server.drop_database(name)


# -- S3 (moto) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """moto's S3 in server mode; any key id and secret are accepted."""

    endpoint_url: str
    access_key_id: str = "testing"
    secret_access_key: str = "testing"
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client for this server (close it when done)."""
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh name unless given); its name."""
        name = name or f"strata-{secrets.token_hex(6)}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3-compatible server on 127.0.0.1, in a thread of this process."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        if not wait_for_port(port):
            pytest.fail(f"moto's server did not listen on {HOST}:{port}")
        yield S3Server(f"http://{HOST}:{port}")
    finally:
        server.stop()


# -- Azure Blob Storage (Azurite) -----------------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account and key (public, in Azurite's documentation)."""


@dataclass(frozen=True)
class AzuriteServer:
    """Azurite's blob service."""

    blob_endpoint: str
    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def create_container(self, name: str | None = None) -> str:
        """Create a container (a fresh name unless given); its name."""
        from azure.storage.blob import BlobServiceClient

        name = name or f"strata-{secrets.token_hex(6)}"
        with BlobServiceClient.from_connection_string(self.connection_string) as service:
            service.create_container(name)
        return name


def azurite_binary() -> Path:
    """``.tools/azurite/node_modules/.bin/azurite-blob``, installed with npm on first use."""
    home = TOOLS / "azurite"
    binary = home / "node_modules" / ".bin" / "azurite-blob"
    with _file_lock(TOOLS / "azurite.install.lock"):
        if binary.exists():
            return binary
        npm = shutil.which("npm")
        if npm is None:
            if os.geteuid() != 0:
                pytest.fail("npm is not installed and this is not root: run `sudo apt-get install -y npm`")
            _apt_install("npm")
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("`apt-get install npm` left no npm on PATH")
        command = [npm, "install", "--prefix", str(home), "azurite@3", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0 or not binary.exists():
            pytest.fail(f"`npm install azurite@3` failed: {done.stderr.strip()[-800:]}")
    return binary


def _running(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it lingers.

    Azurite waits for idle keep-alive connections before it exits; the data is thrown away anyway.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """Azurite's blob service on 127.0.0.1, its data in a temporary directory."""
    binary = azurite_binary()
    location = Path(tempfile.mkdtemp(prefix="strata-azurite-"))
    log = location / "azurite.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(3):
            port = free_port()
            command = [str(binary), "--blobHost", HOST, "--blobPort", str(port), "--location", str(location / "data")]
            command += ["--silent", "--skipApiVersionCheck"]
            with log.open("ab") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            if wait_for_port(port, alive=partial(_running, process)):
                break
            _stop(process)
        else:
            pytest.fail(f"Azurite did not start: {_tail(log)}")
        yield AzuriteServer(f"http://{HOST}:{port}/{AZURITE_ACCOUNT}")
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(location, ignore_errors=True)
