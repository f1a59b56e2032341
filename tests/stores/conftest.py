"""One conformance suite over every store: the ``store_factory`` fixture names them all."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import strata as st
from tests.servers import PostgresServer, postgres_server  # noqa: F401 - the fixture postgres_schema uses

StoreFactory = Callable[..., st.MetadataStore]

STORES = ["memory", "duckdb-memory", "duckdb-file", "sqlite-file", "postgres", "clickhouse"]


@pytest.fixture(params=STORES)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Make a store of the parametrised kind: ``store_factory(graph=..., hash_algorithm=...)``."""
    kind = request.param
    uri, schema = request.getfixturevalue("postgres_schema") if kind == "postgres" else ("", "")

    def make(**kwargs: object) -> st.MetadataStore:
        if kind == "memory":
            return st.InMemoryStore(**kwargs)  # type: ignore[arg-type]
        if kind == "clickhouse":
            return st.ClickHouseStore(tmp_path / "meta.clickhouse", **kwargs)  # type: ignore[arg-type]
        if kind == "sqlite-file":
            return st.SQLiteStore(tmp_path / "meta.sqlite", **kwargs)  # type: ignore[arg-type]
        if kind == "postgres":
            return st.PostgresStore(uri, schema=schema, **kwargs)  # type: ignore[arg-type]
        path = ":memory:" if kind == "duckdb-memory" else tmp_path / "meta.duckdb"
        return st.DuckDBStore(path, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def postgres_schema(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The session server's URI and a schema name of this test's own.

    Its schemas (that name, or starting with it and `_`) are dropped afterwards.

    A schema costs under a millisecond to create and drop where a fresh database costs ~0.1 s (PostgreSQL 15, measured).
    """
    server: PostgresServer = request.getfixturevalue("postgres_server")
    schema = f"t_{secrets.token_hex(6)}"
    yield server.dsn(), schema
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.dsn(), autocommit=True) as con:
        found = "SELECT nspname FROM pg_namespace WHERE nspname = %s OR starts_with(nspname, %s)"
        for (name,) in con.execute(found, [schema, schema + "_"]).fetchall():
            con.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
