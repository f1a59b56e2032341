"""One suite over every state backend: ``backend_case`` names them all, each on a real server."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from strata.state import StateBackend, open_backend
from tests.servers import (  # noqa: F401 - fixtures
    AzuriteServer,
    PostgresServer,
    S3Server,
    azurite_server,
    moto_server,
    postgres_database,
    postgres_server,
)

KINDS = ["file", "sqlite", "postgres", "s3", "azure"]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class BackendCase:
    """How to reach one backend from this process, a child process, or the CLI."""

    kind: str
    uri: str
    root: Path
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    raw: Callable[[], list[str]] = list
    """Everything the backend holds (files, keys, rows), to prove that nothing was written."""

    def open(self) -> StateBackend:
        return open_backend(self.uri, root=self.root, options=self.options, environ={})

    def environ(self) -> dict[str, str]:
        """The variables that select this backend for ``strata`` (``STRATA_STATE_BACKEND_*``)."""
        env = {"STRATA_STATE_BACKEND_URI": self.uri}
        for group, values in self.options.items():
            for key, value in values.items():
                env[f"STRATA_STATE_BACKEND_{group}_{key}".upper()] = value
        return env

    def child_env(self) -> dict[str, str]:
        spec = {"uri": self.uri, "root": str(self.root), "options": self.options}
        return {**os.environ, "STRATA_TEST_BACKEND": json.dumps(spec), "PYTHONPATH": str(REPO)}

    def child(self, *args: str) -> list[str]:
        """The command line of ``tests/state/child.py`` for this backend."""
        return [sys.executable, "-m", "tests.state.child", self.kind, *args]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _sql_rows(url: str) -> Callable[[], list[str]]:
    def rows() -> list[str]:
        import sqlalchemy as sa

        from strata.state.sql import database_url

        engine = sa.create_engine(database_url(url, Path("/")))
        try:
            names = set(sa.inspect(engine).get_table_names())
            found = []
            with engine.connect() as conn:
                for table in ("strata_state", "strata_state_lock"):
                    if table in names:
                        found += [f"{table}:{r[0]}" for r in conn.execute(sa.text(f"SELECT state_id FROM {table}"))]  # noqa: S608 - a constant table name
            return found
        finally:
            engine.dispose()

    return rows


def _s3_keys(server: S3Server, bucket: str) -> Callable[[], list[str]]:
    def keys() -> list[str]:
        client = server.client()
        try:
            return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))
        finally:
            client.close()

    return keys


def _blob_names(server: AzuriteServer, container: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        from azure.storage.blob import ContainerClient

        with ContainerClient.from_connection_string(server.connection_string, container) as client:
            return sorted(client.list_blob_names())

    return names


@pytest.fixture(params=KINDS)
def backend_case(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    """A fresh, empty backend of the parametrised kind."""
    kind = request.param
    if kind == "file":
        return BackendCase(kind, f"file://{tmp_path / 'state'}", tmp_path, raw=lambda: _files(tmp_path))
    if kind == "sqlite":
        uri = f"sqlite:///{tmp_path / 'state.db'}"
        return BackendCase(kind, uri, tmp_path, raw=_sql_rows(uri))
    if kind == "postgres":
        dsn = request.getfixturevalue("postgres_database")
        return BackendCase(kind, dsn, tmp_path, raw=_sql_rows(dsn))
    if kind == "s3":
        s3: S3Server = request.getfixturevalue("moto_server")
        bucket = s3.create_bucket()
        options = {
            "s3": {
                "endpoint_url": s3.endpoint_url,
                "aws_access_key_id": s3.access_key_id,
                "aws_secret_access_key": s3.secret_access_key,
            }
        }
        return BackendCase(kind, f"s3://{bucket}/some/prefix", tmp_path, options, raw=_s3_keys(s3, bucket))
    azurite: AzuriteServer = request.getfixturevalue("azurite_server")
    container = azurite.create_container()
    options = {"azure": {"connection_string": azurite.connection_string}}
    return BackendCase(kind, f"azure://{container}/states", tmp_path, options, raw=_blob_names(azurite, container))


@pytest.fixture
def backend(backend_case: BackendCase) -> Iterator[StateBackend]:
    with backend_case.open() as opened:
        yield opened
