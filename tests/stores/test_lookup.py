"""A few changed samples are found through the ids, wherever they lie in a big table.

The DuckDB store keeps an index on each feature table's first id; a resolve of a few changed
samples reads only their rows, and the answer is the full comparison's, for every id type and
for many changed samples too (which go the scanning way).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import strata as st
from tests.stores.test_conformance import graph_of, roots, rows, sync
from tests.stores.test_sync_paths import forget_sync, keyed_graph, summary

N = 600_000
"""Samples in the big store: five of DuckDB's row groups in each table."""
SPREAD = 100
"""Changed samples, one every N // SPREAD ids: more than DuckDB pushes into a scan as an IN list (50), and
few enough for the index (N / SPREAD rows per id is above ``DuckDBStore.lookup_ratio``)."""


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file store of N samples in sync, with SPREAD samples' audio and frames changed since."""
    path = tmp_path_factory.mktemp("lookup") / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        sync(store, roots(N))
        changed = {i: f"new{i}" for i in range(7, N, N // SPREAD)}
        store.write_changed("video", roots(N, audio=changed, frames=changed))
    return path


def scanned(con: duckdb.DuckDBPyConnection, query: str, out: Path) -> dict[str, int]:
    """Rows each table scan of ``query`` read, by table (DuckDB's detailed profile, written to ``out``)."""
    con.execute("SET enable_profiling = 'json'")
    con.execute(f"SET profiling_output = '{out}'")
    con.execute("SET profiling_mode = 'detailed'")
    try:
        con.execute(query).fetchall()
    finally:
        con.execute("PRAGMA disable_profiling")
    found: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "TABLE_SCAN":
            table = str(node["extra_info"]["Table"]).split(".")[-1]
            found[table] = found.get(table, 0) + int(node["rows_scanned"])
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(out.read_text())["operator"]:
        walk(node)
    return found


def test_every_feature_table_has_an_index_on_its_first_id(big_store: Path) -> None:
    with duckdb.connect(str(big_store), read_only=True) as con:
        indexed = con.execute("SELECT table_name, expressions FROM duckdb_indexes() ORDER BY table_name").fetchall()
    assert indexed == [("embedding", "[sample_uid]"), ("transcript", "[sample_uid]"), ("video", "[sample_uid]")]


@pytest.mark.parametrize("key", ["transcript", "embedding"])
def test_a_resolve_of_a_few_spread_changes_reads_their_rows_not_the_tables(
    big_store: Path, key: str, tmp_path: Path
) -> None:
    with st.DuckDBStore(big_store, graph=graph_of(), read_only=True) as store:
        inc = store.resolve_update(key, lazy=True)
        read = scanned(store.to_native(), inc.changed.to_native().sql_query(), tmp_path / "profile.json")
        assert len(inc.changed.collect()) == SPREAD
    assert read, "the increment reads some table"
    assert max(read.values()) <= 4 * SPREAD, read  # today: every row of each table (N each)


def test_few_and_many_changes_give_the_full_comparison_s_answer(tmp_path: Path) -> None:
    """A few changes take the index; more than it takes (3,000 here) scan: both give the full comparison's answer."""
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as store:
        sync(store, roots(N))
        for step, every in enumerate((N // 5, N // 3000)):
            audio = {i: f"s{step}-{i}" for i in range(step, N, every)}
            store.write_changed("video", roots(N, audio=audio))
            first = {key: store.resolve_update(key) for key in ("transcript", "embedding")}
            assert first["transcript"].meta["mode"] == "since last sync"
            for key, inc in first.items():
                store.write(key, rows(inc))
            store.write_changed("video", roots(N, audio={**audio, step + 1: "again"}))
            synced = {key: summary(store.resolve_update(key)) for key in ("transcript", "embedding")}
            forget_sync(store)
            assert synced == {key: summary(store.resolve_update(key)) for key in ("transcript", "embedding")}
            sync(store, roots(N, audio={**audio, step + 1: "again"}))


ID_TYPES = [
    pl.Series("k", [1, 2, 3], pl.Int32),
    pl.Series("k", [2**63 + 1, 2, 3], pl.UInt64),
    pl.Series("k", [1.5, -0.0, 1e300], pl.Float64),
    pl.Series("k", [1.1, 2.2, 3.3], pl.Float32),
    pl.Series("k", ["it's", "", "naïve \\ 'q'"], pl.String),
    pl.Series("k", [b"\x00\xff", b"a", b"'"], pl.Binary),
    pl.Series("k", [dt.date(2026, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31)], pl.Date),
    pl.Series(
        "k", [dt.datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC), None]
    ).fill_null(dt.datetime(1999, 1, 1, tzinfo=dt.UTC)),
    pl.Series(
        "k", [dt.datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC), dt.datetime(1970, 1, 1, tzinfo=dt.UTC)]
    ).dt.replace_time_zone(None),
    pl.Series("k", [decimal.Decimal("1.001"), decimal.Decimal(-2), decimal.Decimal("3.5")], pl.Decimal(18, 3)),
    pl.Series("k", [True, False, True], pl.Boolean).head(2),
]


@pytest.mark.parametrize("ids", ID_TYPES, ids=lambda s: str(s.dtype))
def test_a_changed_sample_is_found_through_its_id_whatever_its_type(ids: pl.Series, tmp_path: Path) -> None:
    """The index path (however small the table) writes each id's value back as a constant of its type."""
    graph = keyed_graph()
    versions = [f"v{i}" for i in range(len(ids))]
    store = st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph)
    store.lookup_ratio = 0
    with store:
        store.write("root", pl.DataFrame([ids, pl.Series("strata_dv__f", versions)]))
        store.write("leaf", rows(store.resolve_update("leaf")))
        store.write("root", pl.DataFrame([ids.head(1), pl.Series("strata_dv__f", ["changed"])]))
        inc = store.resolve_update("leaf")
        assert inc.meta["mode"] == "since last sync"
        assert inc.changed.to_native()["k"].to_list() == ids.head(1).to_list()
        store.write("leaf", rows(inc))
        assert store.resolve_update("leaf").meta["mode"] == "in sync"
        assert len(store.read("leaf").to_native()) == len(ids)
