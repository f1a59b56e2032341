"""The DuckDB store's in-place writes: `write_changed_from` (what target-strata loads through) and
`write` of a relation of the store's own connection (an increment's lazy parts)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import narwhals as nw
import polars as pl
import pytest

import strata as st
from strata.errors import DefinitionError, WriteError
from strata.stores.duckdb.store import DuckDBStore
from tests.stores.graphs import lineage_graph
from tests.stores.test_conformance import graph_of, roots, rows


def stage(store: DuckDBStore, frame: pl.DataFrame) -> str:
    """Put ``frame`` in a temp table of the store's own connection; return its quoted name."""
    store.con.register("incoming", frame.to_arrow())
    store.con.execute('CREATE OR REPLACE TEMP TABLE "staged" AS SELECT * FROM incoming')
    store.con.unregister("incoming")
    return '"staged"'


def test_rows_already_in_duckdb_are_written_like_write_changed(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with DuckDBStore(path, graph=graph_of()) as store:
        first = roots(5).with_columns(pl.lit("x").alias("note"))
        assert store.write_changed_from("video", stage(store, first)) == {"added": 5, "changed": 0, "unchanged": 0}
        batch = roots(8, audio={1: "new"}).filter(pl.col("sample_uid").is_in([0, 1, 2, 7]))
        batch = batch.with_columns(pl.lit("y").alias("note"))
        counts = store.write_changed_from("video", stage(store, batch), checked=True)
        assert counts == {"added": 1, "changed": 1, "unchanged": 2}
    with DuckDBStore(path, graph=graph_of()) as store:  # committed: another open sees it
        live = store.read("video").sort("sample_uid")
        assert live["sample_uid"].to_list() == [0, 1, 2, 3, 4, 7]
        assert live["note"].to_list() == ["x", "y", "x", "x", "x", "y"]
        assert len(store.read("video", feature_version="all")) == 7
        assert len(store.resolve_update("transcript").added) == 6


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (pl.concat([roots(2), roots(2)]), "2 repeated ids"),
        (roots(2).with_columns(pl.lit(None, pl.String).alias("strata_dv__audio")), "nulls in data-version column"),
        (roots(2).drop("strata_dv__frames"), "lack data-version column"),
        (roots(2).drop("sample_uid"), "lack id column"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(tmp_path: Path, frame: pl.DataFrame, error: str) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        with pytest.raises(WriteError, match=error):
            store.write_changed_from("video", stage(store, frame))
        assert not store.has_feature("video")
        with pytest.raises(DefinitionError, match="write_changed is for root features"):
            store.write_changed_from("transcript", stage(store, roots(1)))


# -- writing a DuckDB relation of the store's own connection (an increment's lazy parts) --------


def settle(
    store: DuckDBStore,
    samples: pl.DataFrame,
    *,
    lazy: bool,
    keys: tuple[str, ...] = ("video", "transcript", "embedding"),
) -> dict[str, dict[str, list[int]]]:
    """Resolve and write ``keys``; ``lazy``: write the increment's parts in place. Return the id sets."""
    seen = {}
    for key in keys:
        kwargs = {"samples": samples} if key == "video" else {}
        inc = store.resolve_update(key, lazy=lazy, **kwargs)
        eager = inc.collect()
        seen[key] = {
            p: sorted(getattr(eager, p).to_native()["sample_uid"].to_list()) for p in ("added", "changed", "removed")
        }
        if lazy:
            store.write(key, inc.added)
            store.write(key, inc.changed)
            if seen[key]["removed"]:
                store.delete(key, inc.removed)
        else:
            store.write(key, rows(eager))
            if seen[key]["removed"]:
                store.delete(key, eager.removed)
    return seen


def stored(store: DuckDBStore, key: str) -> pl.DataFrame:
    """Every row ever written (latest and history), without when or under which write sequence number."""
    frame: pl.DataFrame = store.read(key, feature_version="all", include_deleted=True).to_native()
    frame = frame.drop("strata_written_at", "strata_seq")
    return frame.sort(frame.columns, nulls_last=True)


def test_a_lazy_increment_written_in_place_gives_the_rows_and_later_increments_of_the_eager_one(
    tmp_path: Path,
) -> None:
    rounds = [roots(6), roots(8, audio={1: "new"}, frames={2: "new"}).filter(pl.col("sample_uid") != 3)]
    with (
        DuckDBStore(tmp_path / "eager.duckdb", graph=graph_of()) as eager,
        DuckDBStore(tmp_path / "lazy.duckdb", graph=graph_of()) as lazy,
    ):
        for samples in rounds:
            assert settle(lazy, samples, lazy=True) == settle(eager, samples, lazy=False)
            for key in ("video", "transcript", "embedding"):
                assert stored(lazy, key).equals(stored(eager, key)), key
            for key in ("transcript", "embedding"):  # the writes settled what the lazy resolve asked for
                assert lazy.resolve_update(key).meta["mode"] == eager.resolve_update(key).meta["mode"] == "in sync"
        with pytest.raises(WriteError, match="another database"), duckdb.connect() as other:
            lazy.write("video", other.sql("SELECT 9 AS sample_uid, 'a' AS strata_dv__audio, 'f' AS strata_dv__frames"))


def test_a_relation_that_reads_the_feature_itself_is_written_as_it_was_before_the_write(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        settle(store, roots(3), lazy=True)
        inc = store.resolve_update("video", samples=roots(3, audio={0: "new"}), lazy=True)
        assert store.write("video", inc.changed) == 1  # `changed` joins the live rows the write replaces
        assert store.read("video").filter(nw.col("sample_uid") == 0)["strata_dv__audio"].to_list() == ["new"]
        assert len(store.read("video", feature_version="all")) == 4


def test_writes_of_parts_of_an_increment_settle_it_and_an_unasked_write_only_forgets(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        settle(store, roots(6), lazy=True)
        settle(store, roots(6, audio={0: "x", 1: "x", 2: "x"}), lazy=True, keys=("video", "transcript"))
        inc = store.resolve_update("embedding", lazy=True)
        assert store.write("embedding", inc.changed.filter(nw.col("sample_uid") < 1)) == 1
        assert store.write("embedding", inc.changed.filter(nw.col("sample_uid") >= 1)) == 2
        assert store.resolve_update("embedding").meta["mode"] == "in sync"
        settle(store, roots(6, audio={0: "y"}), lazy=True, keys=("video", "transcript"))
        inc = store.resolve_update("embedding", lazy=True)
        done = inc.collect()
        unasked = store.con.sql('SELECT * FROM "embedding" WHERE sample_uid = 5')  # a row nobody asked for
        assert store.write("embedding", unasked) == 1
        again = store.resolve_update("embedding")
        assert again.meta["mode"] == "since last sync"  # forgotten, then compared: the same answer
        assert sorted(again.changed["sample_uid"].to_list()) == sorted(done.changed.to_native()["sample_uid"].to_list())


def staged_relation(store: DuckDBStore, frame: pl.DataFrame) -> duckdb.DuckDBPyRelation:
    """``frame`` as a relation of the store's connection (over a temp table)."""
    return store.con.sql(f"SELECT * FROM {stage(store, frame)}")  # noqa: S608 - a name this module made


def transcript_rows(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_uid": list(range(n)),
            "strata_in__video__audio": [f"a{i}" for i in range(n)],
            "strata_dv__text": [f"t{i}" for i in range(n)],
        }
    )


BAD_ROWS = [
    pl.concat([transcript_rows(3), transcript_rows(2)]),
    transcript_rows(3).with_columns(pl.Series("sample_uid", [0, None, 2], pl.Int64)),
    transcript_rows(3).with_columns(pl.Series("strata_dv__text", ["t", None, "t"], pl.String)),
    transcript_rows(3).drop("strata_in__video__audio"),
    transcript_rows(3).drop("strata_dv__text"),
    transcript_rows(3).drop("sample_uid"),
]


@pytest.mark.parametrize("frame", BAD_ROWS)
@pytest.mark.parametrize("first", [True, False])
def test_bad_rows_in_a_relation_are_refused_like_bad_frames_and_nothing_is_written(
    tmp_path: Path, frame: pl.DataFrame, first: bool
) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        if not first:
            settle(store, roots(4), lazy=False)
        before = None if first else stored(store, "transcript")
        with pytest.raises(WriteError) as eager:
            store.write("transcript", frame)
        with pytest.raises(WriteError) as in_place:
            store.write("transcript", staged_relation(store, frame))
        assert str(in_place.value) == str(eager.value)
        if first:
            assert not store.has_feature("transcript")
        else:
            assert before is not None
            assert stored(store, "transcript").equals(before)
            assert store.resolve_update("transcript").is_empty


def frame_rows(rows: list[tuple[int, int | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_uid": [r[0] for r in rows],
            "frame": [r[1] for r in rows],
            "strata_in__video__frames": ["v"] * len(rows),
            "strata_dv__pixels": ["p"] * len(rows),
        },
        schema_overrides={"frame": pl.Int64},
    )


@pytest.mark.parametrize(
    ("rows_", "error"),
    [
        ([(1, 0), (1, 0), (2, 0)], "2 rows with repeated ids"),
        ([(1, 0), (1, None), (2, None)], "both children and a row saying it has none"),
    ],
)
def test_an_expansion_s_rows_in_a_relation_are_checked_like_a_frame_s(
    tmp_path: Path, rows_: list[tuple[int, int | None]], error: str
) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=lineage_graph()) as store:
        frame = frame_rows(rows_)
        with pytest.raises(WriteError, match=error) as eager:
            store.write("frames", frame)
        with pytest.raises(WriteError) as in_place:
            store.write("frames", staged_relation(store, frame))
        assert str(in_place.value) == str(eager.value)
        assert not store.has_feature("frames")
        good = frame_rows([(1, 0), (1, 1), (2, None)])
        assert store.write("frames", staged_relation(store, good)) == 3
        assert store.write("frames", staged_relation(store, frame_rows([(1, 0)]))) == 1  # frame 1 of sample 1 goes
        assert sorted(store.read("frames")["frame"].to_list()) == [0]


@pytest.mark.parametrize("parent", ["n", "childless", "len"])
def test_an_expansion_keyed_by_ids_named_like_the_columns_its_checks_count_is_checked_like_a_frame(
    tmp_path: Path, parent: str
) -> None:
    """The checks' counts share their query with the parent ids: valid rows are written, bad ones refused alike."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", id_columns=[parent], fields=["frames"])):
            pass

        class Frames(
            st.Feature,
            spec=st.FeatureSpec(
                "frames",
                id_columns=[parent, "frame"],
                deps=[st.FeatureDep(Video, st.Lineage.expansion([parent]))],
                fields=["pixels"],
            ),
        ):
            pass

    def children(pairs: list[tuple[int, int | None]]) -> pl.DataFrame:
        return frame_rows(pairs).rename({"sample_uid": parent})

    with DuckDBStore(tmp_path / "m.duckdb", graph=graph) as store:
        store.write("video", pl.DataFrame({parent: [0, 1, 2, 3], "strata_dv__frames": ["v"] * 4}))
        good = children([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, None)])
        assert store.write("frames", staged_relation(store, good)) == 7
        bad = children([(1, 0), (1, 0), (2, 0)])
        with pytest.raises(WriteError, match="2 rows with repeated ids") as eager:
            store.write("frames", bad)
        with pytest.raises(WriteError) as in_place:
            store.write("frames", staged_relation(store, bad))
        assert str(in_place.value) == str(eager.value)
        assert len(store.read("frames", include_deleted=True)) == 7


def test_writing_the_empty_parts_of_a_lazy_increment_records_the_feature_in_sync(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        settle(store, roots(4), lazy=True)
        store.graph = graph_of(audio_cv="2")  # transcript's definition changes, its inputs do not
        settle(store, roots(4), lazy=True, keys=("video",))
        inc = store.resolve_update("transcript", lazy=True)
        assert inc.meta["mode"] == "full"
        assert store.write("transcript", inc.added) + store.write("transcript", inc.changed) == 0
        assert store.resolve_update("transcript").meta["mode"] == "in sync"


def test_a_lazy_first_pass_that_writes_only_what_was_added_is_recorded_in_sync(tmp_path: Path) -> None:
    """Nothing stored yet: `changed` and `removed` cannot hold rows, so writing `added` is all it asks."""
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        store.write("video", roots(5))
        inc = store.resolve_update("transcript", lazy=True)
        assert inc.counts() == {"added": 5, "changed": 0, "removed": 0}
        assert store.write("transcript", inc.added) == 5
        assert store.resolve_update("transcript").meta["mode"] == "in sync"
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:  # and another process sees it
        assert store.resolve_update("transcript").meta["mode"] == "in sync"
