"""One conformance suite over every store: the ``store_factory`` fixture names them all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import strata as st

StoreFactory = Callable[..., st.MetadataStore]

STORES = ["memory", "duckdb-memory", "duckdb-file", "duckdb-lookup"]
"""``duckdb-lookup``: a file store that reads changed ids through its index however small its tables."""


@pytest.fixture(params=STORES)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Make a store of the parametrised kind: ``store_factory(graph=..., hash_algorithm=...)``."""
    kind = request.param

    def make(**kwargs: object) -> st.MetadataStore:
        if kind == "memory":
            return st.InMemoryStore(**kwargs)  # type: ignore[arg-type]
        path = ":memory:" if kind == "duckdb-memory" else tmp_path / "meta.duckdb"
        store = st.DuckDBStore(path, **kwargs)  # type: ignore[arg-type]
        if kind == "duckdb-lookup":
            store.lookup_ratio = 0
        return store

    return make
