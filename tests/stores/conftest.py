"""One conformance suite over every store: the ``store_factory`` fixture names them all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import strata as st

StoreFactory = Callable[..., st.MetadataStore]

STORES = ["memory", "duckdb-memory", "duckdb-file", "sqlite-file", "clickhouse"]


@pytest.fixture(params=STORES)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Make a store of the parametrised kind: ``store_factory(graph=..., hash_algorithm=...)``."""
    kind = request.param

    def make(**kwargs: object) -> st.MetadataStore:
        if kind == "memory":
            return st.InMemoryStore(**kwargs)  # type: ignore[arg-type]
        if kind == "clickhouse":
            return st.ClickHouseStore(tmp_path / "meta.clickhouse", **kwargs)  # type: ignore[arg-type]
        if kind == "sqlite-file":
            return st.SQLiteStore(tmp_path / "meta.sqlite", **kwargs)  # type: ignore[arg-type]
        path = ":memory:" if kind == "duckdb-memory" else tmp_path / "meta.duckdb"
        return st.DuckDBStore(path, **kwargs)  # type: ignore[arg-type]

    return make
