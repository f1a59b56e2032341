"""A store opened read-only changes nothing: not its rows, bookkeeping, tables, types or functions.

Every reporting command (``status``, ``build --dry-run``, ``lookup``) opens the store so; each
store is checked from outside, as its engine keeps it: the files of DuckDB and SQLite byte for
byte, PostgreSQL's catalog of the store's schema and every table's rows, ClickHouse's
``system.tables``.
"""

# ruff: noqa: SLF001 - the in-memory store's state is what is compared
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import graph_of, roots, rows

KINDS = ["memory", "duckdb-file", "sqlite-file", "postgres", "clickhouse"]
"""Every kind of store that keeps what it holds across opening it again (a ``:memory:`` DuckDB does not)."""


def state(store: st.MetadataStore) -> Any:
    """All the store holds, read from outside it (the store closed)."""
    if isinstance(store, st.InMemoryStore):
        history = {t: [_rows(f) for f in frames] for t, frames in store._history.items()}
        kept = ({t: _rows(f) for t, f in store._latest.items()}, history, store._meta, store._sync, store._table_seq)
        return copy.deepcopy((*kept, store._seq))
    if isinstance(store, st.PostgresStore):
        return _postgres_state(store)
    if isinstance(store, st.ClickHouseStore):
        return _clickhouse_state(store)
    return _file_state(Path(str(store.path)))  # type: ignore[attr-defined]


def _rows(frame: pl.DataFrame) -> tuple[Any, ...]:
    return frame.schema, frame.rows()


def _file_state(path: Path) -> dict[str, bytes]:
    """The database file's bytes; beside it, SQLite's write-ahead log may only be empty.

    A reader of a SQLite file in WAL mode makes the log and its index (``-shm``) when they are
    missing, and cannot remove them: SQLite's own files, which hold no change.
    """
    files = {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name)}
    wal = files.pop(path.name + "-wal", b"")
    assert not wal, "the write-ahead log holds changes"
    files.pop(path.name + "-shm", None)
    return files


def _postgres_state(store: st.PostgresStore) -> dict[str, Any]:
    """The schema's types, relations and functions, and every table's rows as text."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(store.uri, autocommit=True) as con:
        schema = str(store.schema)
        found = con.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [schema]).fetchall()
        assert found, "the store's schema does not exist"
        (oid,) = found[0]
        out: dict[str, Any] = {
            "types": con.execute("SELECT typname FROM pg_type WHERE typnamespace = %s ORDER BY 1", [oid]).fetchall(),
            "relations": con.execute(
                "SELECT relname, relkind FROM pg_class WHERE relnamespace = %s ORDER BY 1", [oid]
            ).fetchall(),
            "functions": con.execute(
                "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc WHERE pronamespace = %s "
                "ORDER BY 1, 2",
                [oid],
            ).fetchall(),
        }
        for name, kind in out["relations"]:
            if kind == "r":
                query = sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(schema, name))
                out[name] = sorted(map(repr, con.execute(query).fetchall()))
        return out


def _clickhouse_state(store: st.ClickHouseStore) -> list[tuple[Any, ...]]:
    """Every table of the directory (but ClickHouse's own) with its rows, through a connection of its own."""
    with st.ClickHouseStore(str(store.path), graph=store.graph, read_only=True) as reader:
        engine = reader.to_native()
        listed = engine.query(
            "SELECT database, name, engine, total_rows FROM system.tables "
            "WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name"
        )
        return sorted(zip(*(c.to_pylist() for c in listed.columns), strict=True))


def reader_of(store: st.MetadataStore, store_factory: StoreFactory, graph: st.FeatureGraph) -> st.MetadataStore:
    """The same store, opened read-only (an in-memory store is only itself: it is switched to read-only)."""
    if isinstance(store, st.InMemoryStore):
        store.read_only = True
        return store
    return store_factory(graph=graph, read_only=True)


@pytest.mark.parametrize("store_factory", KINDS, indirect=True)
def test_a_read_only_store_changes_nothing_whatever_it_resolves_and_reads(store_factory: StoreFactory) -> None:
    graph = graph_of()
    writer = store_factory(graph=graph)
    with writer:
        writer.write("video", roots(4).with_columns(pl.lit(1).alias("note")))
        writer.write("transcript", rows(writer.resolve_update("transcript")))
        writer.write("video", roots(5, audio={1: "changed"}))  # transcript is stale; embedding never written
    before = state(writer)
    reader = reader_of(writer, store_factory, graph)
    with reader:
        assert not reader.has_feature("embedding")
        never = reader.resolve_update("embedding")
        assert never.counts() == {"added": 4, "changed": 0, "removed": 0}
        stale = reader.resolve_update("transcript")
        assert stale.counts() == {"added": 1, "changed": 1, "removed": 0}
        assert reader.resolve_update("transcript").counts() == stale.counts()  # nothing recorded
        assert reader.resolve_update("embedding", lazy=True).counts() == never.counts()
        unsigned = roots(6, audio={1: "changed"}).with_columns(
            pl.col("sample_uid").cast(pl.UInt32)
        )  # ids typed otherwise than stored
        assert reader.resolve_update("video", samples=unsigned).counts() == {"added": 1, "changed": 0, "removed": 0}
        small = roots(5).with_columns(pl.col("sample_uid").cast(pl.Int8))
        for _ in range(2):  # the types these ids need, made once for the session, are found again
            assert reader.resolve_update("video", samples=small).counts()["changed"] == 1
        assert len(reader.read("video")) == 5
        assert len(reader.read("video", feature_version="all")) == 9
        assert len(reader.read("embedding")) == 0
        assert len(reader.read("embedding", feature_version="all")) == 0
        assert reader.lookup("video", {"sample_uid": 1})["transcript"]["status"] == "stale"
        assert reader.lookup("video", {"sample_uid": 2})["embedding"]["status"] == "to add"
        assert reader.delete_preview("video") == 5
        assert reader.compact(keep=0, dry_run=True) == {"video": 4, "transcript": 0, "embedding": 0}
    assert state(writer) == before
