"""The full comparison against the sync-record path, and root samples given as a DuckDB relation.

A resolve with no sync record compares every sample (one pass over both sides); with one it
compares only what was written since. Both must give the same increment, eager or lazy; and
root samples must give the same increment whether they come as a Polars frame or as a DuckDB
relation of the store's own connection (read in place, never copied into Python).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from polars.testing import assert_frame_equal

import strata as st
from strata.errors import WriteError
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import graph_of, roots, rows, sync
from tests.stores.test_properties import (
    FeatureDef,
    build,
    changes,
    graphs,
    resolve_and_write,
    root_values,
    second_round,
)


def parts(inc: st.Increment, ids: list[str]) -> list[pl.DataFrame]:
    """The three parts as Polars frames, rows sorted by ids and columns by name."""
    eager = inc.collect()
    frames = [eager.added.to_native(), eager.changed.to_native(), eager.removed.to_native()]
    return [f.select(sorted(f.columns)).sort(ids) for f in frames]


def assert_same(one: st.Increment, other: st.Increment, ids: list[str]) -> None:
    for mine, theirs in zip(parts(one, ids), parts(other, ids), strict=True):
        assert_frame_equal(mine, theirs)


def forget_sync(store: st.MetadataStore, root: str) -> None:
    """A hard delete (here of a sample no one has) clears every sync record: the next resolves compare in full."""
    store.delete(root, pl.DataFrame({"sample_uid": [-1]}, schema={"sample_uid": pl.Int64}), soft=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(defs=graphs(), change=changes)
def test_the_full_comparison_and_the_sync_record_path_agree(defs: list[FeatureDef], change: dict[str, Any]) -> None:
    root = defs[0].name
    for store in (st.DuckDBStore(":memory:"), st.InMemoryStore()):
        with store:
            for roots, round_defs in ((root_values(defs, change["n"], [], 0), defs), second_round(defs, change)):
                store.graph = build(round_defs)
                for d in round_defs:
                    if not d.deps:
                        resolve_and_write(store, d, roots)
                        continue
                    recorded = store.resolve_update(d.name)  # in sync, since last sync, or full after a new definition
                    forget_sync(store, root)
                    full = store.resolve_update(d.name)
                    assert full.meta["mode"] == "full"
                    assert_same(recorded, full, ["sample_uid"])
                    forget_sync(store, root)
                    assert_same(store.resolve_update(d.name, lazy=True), full, ["sample_uid"])
                    resolve_and_write(store, d, roots)


def video_graph() -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio", "frames"])):
            pass

    return graph


def samples(n: int, edited: tuple[int, ...] = (), dropped: tuple[int, ...] = (), extra: int = 0) -> pl.DataFrame:
    ids = [i for i in range(n + extra) if i not in dropped]
    return pl.DataFrame(
        {
            "sample_uid": ids,
            "strata_dv__audio": [f"a{i}v2" if i in edited else f"a{i}" for i in ids],
            "strata_dv__frames": [f"f{i}" for i in ids],
        },
        schema_overrides={"sample_uid": pl.Int64},
    )


def as_relation(store: st.DuckDBStore, frame: pl.DataFrame) -> duckdb.DuckDBPyRelation:
    """``frame`` as a table of the store's own database, and a relation reading it there."""
    con = store.to_native()
    con.register("strata_test_frame", frame)
    con.execute("CREATE OR REPLACE TABLE raw AS SELECT * FROM strata_test_frame")
    con.unregister("strata_test_frame")
    return con.sql("SELECT sample_uid, strata_dv__frames, strata_dv__audio FROM raw")


@pytest.fixture(params=["memory", "file"])
def duckdb_store(request: pytest.FixtureRequest, tmp_path: Path) -> st.DuckDBStore:
    return st.DuckDBStore(":memory:" if request.param == "memory" else tmp_path / "meta.duckdb", graph=video_graph())


@pytest.mark.parametrize("lazy", [False, True])
def test_root_samples_as_a_duckdb_relation_give_the_increment_of_the_same_polars_samples(
    duckdb_store: st.DuckDBStore, lazy: bool
) -> None:
    with duckdb_store as store:
        first = samples(50)
        assert_same(
            store.resolve_update("video", samples=as_relation(store, first), lazy=lazy),
            store.resolve_update("video", samples=first, lazy=lazy),
            ["sample_uid"],
        )
        store.write("video", first)
        later = samples(50, edited=(3, 7), dropped=(10, 11), extra=4)
        by_relation = store.resolve_update("video", samples=as_relation(store, later), lazy=lazy)
        by_polars = store.resolve_update("video", samples=later, lazy=lazy)
        assert by_polars.counts() == {"added": 4, "changed": 2, "removed": 2}
        assert_same(by_relation, by_polars, ["sample_uid"])


def test_a_relation_of_another_connection_is_read_the_general_way(duckdb_store: st.DuckDBStore) -> None:
    with duckdb_store as store:
        store.write("video", samples(20))
        other = duckdb.connect()
        other.register("later", samples(20, edited=(1,)))
        relation = other.sql("SELECT * FROM later")
        inc = store.resolve_update("video", samples=relation)
        assert inc.counts() == {"added": 0, "changed": 1, "removed": 0}
        other.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pl.concat([samples(5), samples(2)]), "repeated ids"),
        (samples(5).with_columns(pl.lit(None, pl.String).alias("strata_dv__audio")), "nulls"),
        (samples(5).drop("strata_dv__frames"), "lack data-version column"),
    ],
)
def test_root_samples_as_a_relation_are_checked_like_polars_samples(
    duckdb_store: st.DuckDBStore, bad: pl.DataFrame, message: str
) -> None:
    with duckdb_store as store:
        store.write("video", samples(5))
        con = store.to_native()
        con.register("bad_samples", bad)
        relation = con.sql("SELECT * FROM bad_samples")
        for given_samples in (bad, relation):
            with pytest.raises(WriteError, match=message):
                store.resolve_update("video", samples=given_samples)


def test_rows_written_without_a_resolve_give_the_same_increment_both_ways(store_factory: StoreFactory) -> None:
    """Upstream rows written straight (no resolve in between), then the leaf: since last sync = full comparison."""
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(30))
        assert store.resolve_update("embedding").meta["mode"] == "in sync"
        video = roots(34, audio={2: "a2v2", 5: "a5v2"}, frames={7: "f7v2"})
        store.write("video", video.filter(pl.col("sample_uid").is_in([2, 5, 7, 30, 31, 32, 33])))
        store.delete("video", pl.DataFrame({"sample_uid": [9, 10]}))
        transcript = store.resolve_update("transcript")
        store.write("transcript", rows(transcript).filter(pl.col("sample_uid") != 31))
        recorded = store.resolve_update("embedding")
        assert recorded.meta["mode"] == "since last sync"
        assert recorded.counts() == {"added": 3, "changed": 3, "removed": 2}
        forget_sync(store, "video")
        full = store.resolve_update("embedding")
        assert full.meta["mode"] == "full"
        assert_same(recorded, full, ["sample_uid"])


def stored_rows(store: st.DuckDBStore) -> pl.DataFrame:
    """The feature's live rows and history, without the columns a write stamps (sequence, time)."""
    frame: pl.DataFrame = store.read("video", feature_version="all", include_deleted=True).to_native()
    kept = frame.drop("strata_seq", "strata_written_at")
    return kept.select(sorted(kept.columns)).sort(sorted(kept.columns), nulls_last=True)


@pytest.mark.parametrize("given", ["polars", "relation"])
def test_a_lazy_root_increment_is_the_comparison_at_resolve_time(tmp_path: Path, given: str) -> None:
    """Its parts, written one by one, leave the table the eager increment leaves, and read the same after."""
    later = samples(40, edited=(3, 7), dropped=(10, 11), extra=4)
    tables = []
    for lazy in (False, True):
        with st.DuckDBStore(tmp_path / f"lazy{lazy}.duckdb", graph=video_graph()) as store:
            store.write("video", samples(40))
            inc = store.resolve_update(
                "video", samples=as_relation(store, later) if given == "relation" else later, lazy=lazy
            )
            before = parts(inc, ["sample_uid"])
            store.write("video", inc.added)
            store.write("video", inc.changed)
            store.delete("video", inc.removed)
            assert inc.counts() == {"added": 4, "changed": 2, "removed": 2}
            for mine, theirs in zip(parts(inc, ["sample_uid"]), before, strict=True):
                assert_frame_equal(mine, theirs)
            tables.append(stored_rows(store))
    assert_frame_equal(tables[0], tables[1])


def with_id(frame: pl.DataFrame, ids: list[int | None]) -> pl.DataFrame:
    return frame.with_columns(pl.Series("sample_uid", ids, pl.Int64))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pl.concat([samples(5), samples(5).slice(1, 2)]), "have 2 repeated ids"),  # stored and in sync
        (pl.concat([samples(5), samples(7).slice(5, 2), samples(7).slice(6, 1)]), "have 1 repeated ids"),  # new
        (pl.concat([samples(5), samples(5, edited=(2,)).slice(2, 1)]), "have 1 repeated ids"),  # one copy differs
        (with_id(samples(6), [0, 1, 2, 3, 4, None]), "have nulls in id column `sample_uid`"),
        (with_id(samples(6), [0, 1, 2, 3, None, None]), "have nulls in id column `sample_uid`"),
        (
            samples(5).with_columns(pl.lit(None, pl.String).alias("strata_dv__frames")),
            "have nulls in data-version column `strata_dv__frames`",
        ),
        (
            samples(5).with_columns(
                pl.when(pl.col("sample_uid") == 2)
                .then(None)
                .otherwise(pl.col("strata_dv__audio"))
                .alias("strata_dv__audio")
            ),
            "have nulls in data-version column `strata_dv__audio`",
        ),
    ],
)
@pytest.mark.parametrize("lazy", [False, True])
def test_samples_given_as_a_relation_are_refused_whole_at_resolve_time(
    duckdb_store: st.DuckDBStore, bad: pl.DataFrame, message: str, lazy: bool
) -> None:
    """The one-line error of a relation's checks, raised by the resolve itself, even a lazy one; nothing changes."""
    with duckdb_store as store:
        store.write("video", samples(5))
        before = stored_rows(store)
        with pytest.raises(WriteError, match=f"^samples for `video` {message}"):
            store.resolve_update("video", samples=as_relation(store, bad), lazy=lazy)
        assert_frame_equal(stored_rows(store), before)
        assert store.resolve_update("video", samples=as_relation(store, samples(5)), lazy=lazy).counts() == {
            "added": 0,
            "changed": 0,
            "removed": 0,
        }


sample_rows = hs.lists(hs.tuples(hs.integers(0, 9), hs.sampled_from(["a", "b"])), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=hs.sets(hs.integers(0, 9), max_size=8),
    given_rows=sample_rows,
    null_in=hs.sampled_from([None, "sample_uid", "strata_dv__audio", "strata_dv__frames"]),
    lazy=hs.booleans(),
)
def test_samples_as_a_relation_are_refused_or_compared_as_polars_samples_are(
    stored: set[int], given_rows: list[tuple[int, str]], null_in: str | None, lazy: bool
) -> None:
    """Random samples (repeats, new and stored ids, a null in the last): a relation is refused exactly when the frame is, else the same increment."""
    frame = pl.DataFrame(
        {
            "sample_uid": [r[0] for r in given_rows],
            "strata_dv__audio": [r[1] for r in given_rows],
            "strata_dv__frames": ["f"] * len(given_rows),
        },
        schema={"sample_uid": pl.Int64, "strata_dv__audio": pl.String, "strata_dv__frames": pl.String},
    )
    if null_in is not None and given_rows:
        last = pl.int_range(pl.len()) == len(given_rows) - 1
        frame = frame.with_columns(pl.when(last).then(None).otherwise(pl.col(null_in)).alias(null_in))
    with st.DuckDBStore(":memory:", graph=video_graph()) as store:
        if stored:
            kept = sorted(stored)
            store.write(
                "video",
                samples(10)
                .filter(pl.col("sample_uid").is_in(kept))
                .with_columns(pl.lit("a").alias("strata_dv__audio"), pl.lit("f").alias("strata_dv__frames")),
            )
        before = stored_rows(store) if stored else None
        outcomes: list[st.Increment | str] = []
        for given_samples in (frame, as_relation(store, frame)):
            try:
                outcomes.append(store.resolve_update("video", samples=given_samples, lazy=lazy))
            except WriteError as exc:  # the two paths may name different faults first: compare the refusal
                outcomes.append(str(exc).split(" have ")[0])
        if before is not None:
            assert_frame_equal(stored_rows(store), before)
        by_frame, by_relation = outcomes
        if isinstance(by_frame, st.Increment) and isinstance(by_relation, st.Increment):
            assert_same(by_relation, by_frame, ["sample_uid"])
        else:
            assert [by_frame, by_relation] == ["samples for `video`"] * 2
