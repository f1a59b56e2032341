"""The narrowed read of ``why``, ``lookup`` and a narrowed chained resolve (``_read_matching``), in every store.

It gives exactly the rows ``read(include_deleted=True, filters=...)`` gives, for ids of every
type, expansions after rewrites and deletes, grown columns and hostile names, while the SQL
stores have their engine pick the rows (the backend contract, docs/stores.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import narwhals as nw
import polars as pl
import pytest

import strata as st
from strata.errors import SampleNotFoundError
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import lineage_graph, one_root
from tests.stores.test_why import children, lineage_store


def by_read(store: st.MetadataStore, key: str, match: dict[str, Any], *, history: bool) -> pl.DataFrame:
    filters = [nw.col(c).is_null() if v is None else nw.col(c) == v for c, v in match.items()]
    frame = store.read(key, filters=filters, include_deleted=True, feature_version="all" if history else None)
    native: pl.DataFrame = frame.to_native()
    return native


def by_matching(store: st.MetadataStore, key: str, match: dict[str, Any], *, history: bool) -> pl.DataFrame:
    plan = store.plan(key)
    got = store._holder(plan)._read_matching(plan, match, history=history)  # noqa: SLF001
    return pl.DataFrame() if got is None else got


def same(store: st.MetadataStore, key: str, match: dict[str, Any]) -> None:
    for history in (False, True):
        want = by_read(store, key, match, history=history).sort("strata_seq", maintain_order=True)
        got = by_matching(store, key, match, history=history).sort("strata_seq", maintain_order=True)
        assert got.schema == want.schema, (match, history)
        assert sorted(map(repr, got.rows())) == sorted(map(repr, want.rows())), (match, history, got, want)


IDS: dict[str, tuple[Any, list[Any]]] = {
    "int": (pl.Int64, [1, 2, -3]),
    "str": (pl.String, ["it's", 'a "b" \\ c', "ü 𝄞", "x' OR '1'='1", ""]),
    "date": (pl.Date, [dt.date(2020, 1, 1), dt.date(1969, 12, 31)]),
    "datetime": (pl.Datetime("us"), [dt.datetime(2020, 1, 1, 12, 30, 1, 5), dt.datetime(1960, 1, 1)]),  # noqa: DTZ001 - naive ids
    "datetime_utc": (
        pl.Datetime("us", "UTC"),
        [dt.datetime(2020, 1, 1, 12, 30, 1, 5, tzinfo=dt.UTC), dt.datetime(1960, 1, 1, tzinfo=dt.UTC)],
    ),
    "float": (pl.Float64, [0.1, 1e300, -2.5]),
    "bool": (pl.Boolean, [True, False]),
    "decimal": (pl.Decimal(10, 2), [Decimal("1.50"), Decimal("-3.25")]),
    "int32": (pl.Int32, [1, 7]),
    "uint64": (pl.UInt64, [1, 2**63 + 5]),
    "time": (pl.Time, [dt.time(1, 2, 3, 4), dt.time(0)]),
    "binary": (pl.Binary, [b"a'b", b"\x00\xff"]),
    "enum": (pl.Enum(["x'", "y"]), ["x'", "y"]),
}


@pytest.mark.parametrize("kind", list(IDS))
def test_ids_of_every_type(store_factory: StoreFactory, kind: str) -> None:
    dtype, values = IDS[kind]
    if kind == "uint64" and "sqlite" in store_factory().describe():
        pytest.skip("a SQLite store refuses integers above 2^63 - 1 when written")
    with store_factory(graph=one_root("root", id_columns=("k",))) as store:
        frame = pl.DataFrame(
            {"k": pl.Series(values, dtype=dtype), "strata_dv__audio": [f"a{i}" for i in range(len(values))]}
        )
        store.write("root", frame)
        store.write("root", frame.head(1).with_columns(strata_dv__audio=pl.lit("again")))
        store.delete("root", frame.slice(1, 1).select("k"))
        for v in values:
            same(store, "root", {"k": v})
        same(store, "root", {"k": None})


def test_expansion_children_after_rewrite_and_delete(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        parent = store.read("frames").to_native().filter(pl.col("sample_uid") == 2)
        parent = parent.select("sample_uid", "strata_in__video__frames").unique()
        store.write("frames", pl.concat([children(parent, [1], "-new"), children(parent, [3])]))
        store.delete("frames", pl.DataFrame({"sample_uid": [1], "frame": [1]}))
        store.delete("video", pl.DataFrame({"sample_uid": [1]}))
        for match in (
            {"sample_uid": 2},
            {"sample_uid": 1},
            {"sample_uid": 2, "frame": 0},
            {"sample_uid": 2, "frame": 1},
            {"sample_uid": 2, "frame": 3},
            {"sample_uid": 1, "frame": 1},
            {"sample_uid": 1, "frame": 2},
            {"frame": 1},
            {"sample_uid": 9},
        ):
            same(store, "frames", match)
        for match in ({"sample_uid": 1}, {"sample_uid": 2}):
            same(store, "video", match)
            same(store, "summary", match)


def test_columns_grown(store_factory: StoreFactory) -> None:
    with store_factory(graph=one_root("root")) as store:
        store.write("root", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"]}))
        store.write("root", pl.DataFrame({"sample_uid": [2], "strata_dv__audio": ["b2"], "extra": ["x"]}))
        for v in (1, 2):
            same(store, "root", {"sample_uid": v})
            same(store, "root", {"sample_uid": v, "extra": None})
            same(store, "root", {"sample_uid": v, "extra": "x"})


def test_hostile_names(store_factory: StoreFactory) -> None:
    from tests.stores import test_hostile_names as h

    with store_factory(graph=h.hostile_graph()) as store:
        store.write_changed(h.ROOT, h.roots())
        h.build(store)
        store.write_changed(h.ROOT, h.roots(select={1: "new"}))
        h.build(store)
        store.delete(h.ROOT, pl.DataFrame({h.ID: [h.VALUES[0]], h.SUB: [h.VALUES[-1]]}))
        for i, v in enumerate(h.VALUES):
            w = list(reversed(h.VALUES))[i]
            for key in (h.ROOT, h.FLAT, h.KIDS, h.FOLD):
                same(store, key, {h.ID: v, h.SUB: w})
            same(store, h.KIDS, {h.ID: v, h.SUB: w, h.CHILD: "'"})
            found = st.why(store, h.FOLD, {h.ID: v, h.SUB: w})
            assert found.samples[0].nodes


def temp_tables(store: st.MetadataStore) -> list[Any]:
    if store.kind == "sqlite":
        return list(store._run("SELECT name FROM sqlite_temp_master WHERE type = 'table'"))  # type: ignore[attr-defined]  # noqa: SLF001
    if store.kind == "postgres":
        return list(store._run("SELECT relname FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'"))  # type: ignore[attr-defined]  # noqa: SLF001
    if store.kind == "clickhouse":
        return list(store._rows("SELECT name FROM system.tables WHERE is_temporary"))  # type: ignore[attr-defined]  # noqa: SLF001
    return []


def test_no_temp_table_is_left(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        store.write("video", pl.DataFrame({"sample_uid": [2], "strata_dv__frames": ["v2-new"]}))
        before = temp_tables(store)
        for key, ids in (("summary", 2), ("frames", {"sample_uid": 2, "frame": 1}), ("video", 1)):
            st.why(store, key, ids)
        with pytest.raises(SampleNotFoundError):
            st.why(store, "summary", 99)
        assert temp_tables(store) == before


def test_an_empty_match_reads_every_row(store_factory: StoreFactory) -> None:
    with store_factory(graph=one_root("root")) as store:
        store.write("root", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"]}))
        same(store, "root", {})


def test_a_value_its_stored_type_cannot_hold_matches_nothing(store_factory: StoreFactory) -> None:
    """A datetime with a time of day is no Date; 1.0 is the integer 1, as a comparison in the engine says."""
    with store_factory(graph=one_root("root", id_columns=("k",))) as store:
        store.write("root", pl.DataFrame({"k": [dt.date(2020, 1, 1)], "strata_dv__audio": ["a"]}))
        match = {"k": dt.datetime(2020, 1, 1, 13)}  # noqa: DTZ001 - a naive datetime id
        assert len(by_read(store, "root", match, history=False)) == 0
        assert len(by_matching(store, "root", match, history=False)) == 0
    with store_factory(graph=one_root("other", id_columns=("k",))) as store:
        store.write("other", pl.DataFrame({"k": [1, 2], "strata_dv__audio": ["a", "b"]}))
        for value in (1.0, 1.5, "x"):
            got = by_matching(store, "other", {"k": value}, history=True)
            assert got["k"].to_list() == ([1] if value == 1 else []), value


def test_why_of_a_root_on_a_postgres_session_that_may_not_write(postgres_schema: tuple[str, str]) -> None:
    """A read replica or a read-only role: every transaction is read-only; a lookup creates nothing."""
    from tests.stores.test_conformance import graph_of, roots, sync

    uri, schema = postgres_schema
    with st.PostgresStore(uri, schema=schema, graph=graph_of()) as store:
        sync(store, roots(3))
    sep = "&" if "?" in uri else "?"
    replica = f"{uri}{sep}options=-c%20default_transaction_read_only%3Don"
    with st.PostgresStore(replica, schema=schema, graph=graph_of(), read_only=True) as store:
        assert len(store.read("video")) == 3
        assert st.why(store, "video", 1).samples[0].nodes[-1].status == "present"
