"""strata: fresh data for ML features, from the source system to the last embedding.

The package root is the public API. Stores and increments load lazily on first use, so
``import strata`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.errors import StrataError
from strata.features.graph import Feature, FeatureGraph, FieldInput, current_graph
from strata.features.keys import FeatureKey, FieldKey
from strata.features.spec import ALL, FeatureDep, FeatureSpec, FieldDep, FieldSpec, Lineage

if TYPE_CHECKING:
    from strata.features.diff import GraphDiff, diff_graphs
    from strata.resolve.increment import Increment
    from strata.stores.base import MetadataStore, Reconciled
    from strata.stores.clickhouse.store import ClickHouseStore
    from strata.stores.duckdb.store import DuckDBStore
    from strata.stores.memory.store import InMemoryStore
    from strata.stores.postgres.store import PostgresStore
    from strata.stores.sqlite.store import SQLiteStore
    from strata.views.why import Why, why
    from strata.workspace import StrataProject, open_project

__version__ = "0.1.0"

_LAZY = {
    "ClickHouseStore": "strata.stores.clickhouse.store",
    "DuckDBStore": "strata.stores.duckdb.store",
    "GraphDiff": "strata.features.diff",
    "InMemoryStore": "strata.stores.memory.store",
    "Increment": "strata.stores.base",
    "MetadataStore": "strata.stores.base",
    "PostgresStore": "strata.stores.postgres.store",
    "Reconciled": "strata.stores.base",
    "SQLiteStore": "strata.stores.sqlite.store",
    "StrataProject": "strata.workspace",
    "Why": "strata.views.why",
    "diff_graphs": "strata.features.diff",
    "open_project": "strata.workspace",
    "why": "strata.views.why",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'strata' has no attribute {name!r}")


__all__ = [
    "ALL",
    "ClickHouseStore",
    "DuckDBStore",
    "Feature",
    "FeatureDep",
    "FeatureGraph",
    "FeatureKey",
    "FeatureSpec",
    "FieldDep",
    "FieldInput",
    "FieldKey",
    "FieldSpec",
    "GraphDiff",
    "InMemoryStore",
    "Increment",
    "Lineage",
    "MetadataStore",
    "PostgresStore",
    "Reconciled",
    "SQLiteStore",
    "StrataError",
    "StrataProject",
    "Why",
    "__version__",
    "current_graph",
    "diff_graphs",
    "open_project",
    "why",
]
