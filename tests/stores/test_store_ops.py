"""Store operations through the Python API: copy between stores, compact history, deletion reaching downstream.

Every test runs on each store kind; copies also go between kinds (in-memory <-> DuckDB).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import strata as st
from strata.errors import DefinitionError, FeatureNotFoundError
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import lineage_graph
from tests.stores.test_conformance import graph_of, roots, rows, sync
from tests.stores.test_sync_paths import summary

KEYS = ("video", "transcript", "embedding")
HOSTILE = 'it\'s; a "col" DROP TABLE video; --'


def other_store(store: st.MetadataStore, tmp_path: Path, graph: st.FeatureGraph) -> st.MetadataStore:
    """A store of the other kind: DuckDB for an in-memory store, in-memory for a DuckDB one."""
    if isinstance(store, st.InMemoryStore):
        return st.DuckDBStore(tmp_path / "other.duckdb", graph=graph)
    return st.InMemoryStore(graph=graph)


def read(store: st.MetadataStore, key: str, **how: object) -> pl.DataFrame:
    """``store.read`` as a Polars frame."""
    frame = store.read(key, **how).to_native()  # type: ignore[arg-type]
    assert isinstance(frame, pl.DataFrame)
    return frame


def everything(store: st.MetadataStore, key: str) -> pl.DataFrame:
    """Every row of ``key`` (latest and history) without the store's own sequence numbers, in one order."""
    frame = read(store, key, feature_version="all").drop("strata_seq")
    return frame.select(sorted(frame.columns)).sort(pl.all(), nulls_last=True)


def latest(store: st.MetadataStore, key: str) -> pl.DataFrame:
    frame = read(store, key, include_deleted=True).drop("strata_seq")
    return frame.select(sorted(frame.columns)).sort(pl.all(), nulls_last=True)


def with_history(store: st.MetadataStore) -> None:
    """Three versions of the graph, a user column with a hostile name, and a deleted root sample."""
    store.write("video", roots(3).with_columns(pl.lit("x").alias(HOSTILE)))
    sync(store, roots(3))
    sync(store, roots(3, audio={1: "a1-new"}))
    store.delete("video", pl.DataFrame({"sample_uid": [2]}))
    store.write("video", rows(store.resolve_update("video", samples=roots(2, audio={0: "a0-new", 1: "a1-new"}))))


@pytest.mark.parametrize("direction", ["into", "out of"])
def test_copy_brings_every_row_with_its_history_and_system_columns(
    store_factory: StoreFactory, tmp_path: Path, direction: str
) -> None:
    graph = graph_of()
    with store_factory(graph=graph) as one, other_store(one, tmp_path, graph) as two:
        source, target = (two, one) if direction == "into" else (one, two)
        with_history(source)
        copied = target.copy_from(source)
        assert copied == {key: len(read(source, key, feature_version="all")) for key in KEYS}
        for key in KEYS:
            assert everything(target, key).equals(everything(source, key)), key
            assert latest(target, key).equals(latest(source, key)), key
        assert read(target, "video", include_deleted=True).filter(pl.col("sample_uid") == 2)["strata_deleted"].all()
        assert HOSTILE in read(target, "video", feature_version="all").columns
        assert target.copy_from(source) == dict.fromkeys(KEYS, 0)  # idempotent: nothing twice
        for key in KEYS:
            assert everything(target, key).equals(everything(source, key)), key


def test_after_a_copy_the_target_resolves_what_the_source_resolves(store_factory: StoreFactory, tmp_path: Path) -> None:
    graph = graph_of()
    with store_factory(graph=graph) as source, other_store(source, tmp_path, graph) as target:
        with_history(source)
        sync(source, roots(2, audio={0: "a0-new", 1: "a1-new"}))
        target.copy_from(source)
        assert all(target.resolve_update(key).is_empty for key in KEYS[1:])  # and the target records its sync
        # the source moves on: a root change and a deleted sample, not yet resolved downstream
        source.write("video", rows(source.resolve_update("video", samples=roots(2, frames={0: "f0-new"}))))
        source.delete("video", pl.DataFrame({"sample_uid": [1]}))
        assert target.copy_from(source) == {"video": 3, "transcript": 0, "embedding": 0}  # 2 new rows, 1 tombstone
        for key in KEYS[1:]:
            there, here = source.resolve_update(key), target.resolve_update(key)
            assert here.meta["mode"] == "since last sync", key  # the target's sync records held
            assert summary(here) == summary(there), key
            assert not here.is_empty, key


def test_copy_of_named_features_and_of_an_unknown_one(store_factory: StoreFactory, tmp_path: Path) -> None:
    graph = graph_of()
    with store_factory(graph=graph) as source, other_store(source, tmp_path, graph) as target:
        with_history(source)
        assert target.copy_from(source, ["video"]) == {"video": 6}
        assert not target.has_feature("transcript")
        with pytest.raises(FeatureNotFoundError):
            target.copy_from(source, ["nope"])


def test_copy_refuses_stores_of_different_hash_algorithms(store_factory: StoreFactory) -> None:
    graph = graph_of()
    with store_factory(graph=graph) as source, st.InMemoryStore(graph=graph, hash_algorithm="sha256") as target:
        sync(source, roots(2))
        with pytest.raises(DefinitionError, match="md5"):
            target.copy_from(source)
        assert not target.has_feature("video")


def test_copy_of_an_expansion_keeps_each_parent_s_children(store_factory: StoreFactory, tmp_path: Path) -> None:
    graph = lineage_graph()
    with store_factory(graph=graph) as source, other_store(source, tmp_path, graph) as target:
        source.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]}))
        children = (
            source.resolve_update("frames").added.to_native().join(pl.DataFrame({"frame": [0, 1, 2]}), how="cross")
        )
        source.write("frames", children)
        source.write("frames", children.filter((pl.col("sample_uid") == 2) & (pl.col("frame") < 2)))  # 2's frame 2 goes
        target.copy_from(source)
        assert latest(target, "frames").equals(latest(source, "frames"))
        assert sorted(read(target, "frames").drop("strata_seq").rows()) == sorted(
            read(source, "frames").drop("strata_seq").rows()
        )
        assert target.resolve_update("frames").is_empty


def only_video(n: int) -> dict[str, int]:
    """What compact says when only ``video`` has rows to drop."""
    return {"video": n, "transcript": 0, "embedding": 0}


def three_writes(store: st.MetadataStore) -> None:
    """Sample 1 of video written three times, sample 0 twice, sample 2 once, then deleted."""
    store.write("video", roots(3))
    store.write("video", roots(2, audio={0: "b", 1: "b"}))
    store.write("video", roots(2, audio={1: "c"}).filter(pl.col("sample_uid") == 1))
    store.delete("video", pl.DataFrame({"sample_uid": [2]}))


def history_of(store: st.MetadataStore, key: str) -> dict[int, int]:
    """Rows per sample, latest included."""
    frame = read(store, key, feature_version="all").group_by("sample_uid").len()
    return dict(frame.sort("sample_uid").rows())


def test_compact_keeps_the_latest_rows_and_the_newest_superseded_ones(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        three_writes(store)
        assert history_of(store, "video") == {0: 2, 1: 3, 2: 2}
        before = latest(store, "video")
        assert store.compact(keep=1, dry_run=True) == only_video(1)
        assert history_of(store, "video") == {0: 2, 1: 3, 2: 2}  # a dry run changes nothing
        assert store.compact(keep=1) == only_video(1)
        assert history_of(store, "video") == {0: 2, 1: 2, 2: 2}
        assert read(store, "video", feature_version="all").filter(pl.col("sample_uid") == 1)[
            "strata_dv__audio"
        ].sort().to_list() == ["b", "c"]  # the newest superseded row stays
        assert store.compact(keep=0) == only_video(3)
        assert history_of(store, "video") == {0: 1, 1: 1, 2: 1}  # the tombstone of 2 stays
        assert latest(store, "video").equals(before)
        assert store.compact(keep=0) == only_video(0)


def test_compact_older_than_keeps_what_was_current_since(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        three_writes(store)
        cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        store.write("video", roots(1, audio={0: "d"}))  # 0's row "b" is superseded after the cutoff
        assert history_of(store, "video") == {0: 3, 1: 3, 2: 2}
        # before the cutoff: 0's first row and 1's first two were superseded; 2 was deleted (its tombstone goes too)
        assert store.compact(older_than=cutoff, dry_run=True) == only_video(5)
        assert store.compact(older_than=cutoff) == only_video(5)
        assert history_of(store, "video") == {0: 2, 1: 1}
        assert read(store, "video", feature_version="all").filter(pl.col("sample_uid") == 0)[
            "strata_dv__audio"
        ].sort().to_list() == ["b", "d"]
        assert store.compact(older_than=dt.timedelta(days=30)) == only_video(0)


@pytest.mark.parametrize("how", [{"keep": 0}, {"older_than": dt.timedelta(0)}])
def test_a_resolve_after_compact_gives_the_increment_it_gave_before(
    store_factory: StoreFactory, how: dict[str, object]
) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(4))
        sync(store, roots(4, audio={1: "new"}))
        store.delete("video", pl.DataFrame({"sample_uid": [3]}))
        sync(store, roots(3, audio={1: "new"}))
        store.write("video", rows(store.resolve_update("video", samples=roots(3, audio={1: "newer", 2: "new"}))))
        store.delete("video", pl.DataFrame({"sample_uid": [0]}))
        before = {key: summary(store.resolve_update(key)) for key in KEYS[1:]}
        assert any(before[key] != ([], {}, []) for key in before)
        dropped = store.compact(**how)  # type: ignore[arg-type]
        assert sum(dropped.values()) > 0
        for key in KEYS[1:]:
            after = store.resolve_update(key)
            assert summary(after) == before[key], key
            # history alone leaves the sync records; a dropped tombstone forgets them (a full comparison)
            assert after.meta["mode"] == ("since last sync" if "keep" in how else "full"), key


def test_compact_older_than_keeps_an_expansions_no_children_row(store_factory: StoreFactory) -> None:
    """A parent computed with no children is a latest row marked deleted; it is no tombstone to drop."""
    with store_factory(graph=lineage_graph()) as store:
        store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["a", "b"]}))
        added = store.resolve_update("frames").added.to_native()
        children = pl.concat(
            [
                added.filter(pl.col("sample_uid") == 1).with_columns(frame=pl.lit(0, pl.Int64)),
                added.filter(pl.col("sample_uid") == 2).with_columns(frame=pl.lit(None, pl.Int64)),  # no children
            ]
        )
        store.write("frames", children.with_columns(strata_dv__pixels=pl.lit("p")))
        assert store.resolve_update("frames").is_empty
        later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=1)
        assert store.compact(["frames"], older_than=later) == {"frames": 0}
        assert store.resolve_update("frames").is_empty


def test_compact_asks_for_one_retention(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        with pytest.raises(DefinitionError):
            store.compact()
        with pytest.raises(DefinitionError):
            store.compact(keep=1, older_than=dt.timedelta(days=1))
        with pytest.raises(DefinitionError):
            store.compact(keep=-1)


def test_a_deleted_root_sample_is_removed_downstream_by_the_next_resolve(store_factory: StoreFactory) -> None:
    """Deletion reaches downstream through the increment: each feature's next resolve lists the sample as removed."""
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.delete("video", pl.DataFrame({"sample_uid": [1]}))
        seen = sync(store, roots(3).filter(pl.col("sample_uid") != 1))
        assert summary(seen["transcript"])[2] == [1]
        assert summary(seen["embedding"])[2] == [1]
        assert all(sorted(read(store, key)["sample_uid"]) == [0, 2] for key in KEYS)
        assert read(store, "embedding", include_deleted=True).filter(pl.col("sample_uid") == 1)["strata_deleted"].all()


def test_a_deleted_root_sample_takes_its_expanded_children(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]}))
        children = store.resolve_update("frames").added.to_native().join(pl.DataFrame({"frame": [0, 1]}), how="cross")
        store.write("frames", children)
        store.delete("video", pl.DataFrame({"sample_uid": [2]}), soft=False)
        removed = store.resolve_update("frames").removed.to_native()
        assert removed["sample_uid"].to_list() == [2]  # the parent: every child of it goes
        store.delete("frames", removed)
        assert sorted(read(store, "frames").select(children.columns).rows()) == sorted(
            children.filter(pl.col("sample_uid") == 1).rows()
        )


def test_copy_again_after_a_childless_parent_got_children(store_factory: StoreFactory, tmp_path: Path) -> None:
    graph = lineage_graph()
    with store_factory(graph=graph) as source, other_store(source, tmp_path, graph) as target:
        source.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]}))
        parents = source.resolve_update("frames").added.to_native()
        none = parents.with_columns(pl.lit(None, pl.Int64).alias("frame"))
        source.write("frames", none)  # no children yet: one row per parent, child ids null
        target.copy_from(source)
        source.write("video", pl.DataFrame({"sample_uid": [1], "strata_dv__frames": ["v1-new"]}))
        changed = source.resolve_update("frames").changed.to_native().drop("strata_cause__pixels")
        source.write("frames", changed.join(pl.DataFrame({"frame": [0, 1]}), how="cross"))
        target.copy_from(source)
        assert latest(target, "frames").equals(latest(source, "frames"))
        for key in ("frames", "summary"):
            assert summary(target.resolve_update(key)) == summary(source.resolve_update(key)), key


def test_a_column_that_holds_only_nulls_is_copied_as_text(tmp_path: Path) -> None:
    graph = graph_of()
    with st.InMemoryStore(graph=graph) as source, st.DuckDBStore(tmp_path / "t.duckdb", graph=graph) as target:
        source.write("video", roots(2).with_columns(pl.lit(None).alias("note")))
        assert target.copy_from(source, ["video"]) == {"video": 2}
        target.write("video", roots(3, audio={2: "x"}).with_columns(pl.lit("later").alias("note")))
        assert sorted(read(target, "video")["note"].to_list(), key=str) == ["later", "later", "later"]


def test_a_write_whose_column_holds_only_nulls_leaves_it_open_to_text(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(2).with_columns(pl.lit(None).alias("note")))
        store.write("video", roots(3, audio={2: "x"}).with_columns(pl.lit("later").alias("note")))
        assert read(store, "video")["note"].to_list() == ["later"] * 3


@pytest.mark.parametrize("soft", [True, False])
def test_delete_downstream_takes_the_rows_derived_from_deleted_samples(store_factory: StoreFactory, soft: bool) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        sync(store, roots(3, audio={1: "new"}))
        gone = pl.DataFrame({"sample_uid": [1]})
        store.delete("video", gone, soft=soft)
        assert store.delete_downstream("video", gone, soft=soft) == {"transcript": 1, "embedding": 1}
        for key in KEYS:
            assert sorted(read(store, key)["sample_uid"]) == [0, 2], key
            assert (1 in read(store, key, feature_version="all")["sample_uid"].to_list()) is soft, key
            if key != "video":
                assert store.resolve_update(key).is_empty, key  # nothing left for a build to remove
        assert store.delete_downstream("video", gone, soft=soft) == {"transcript": 0, "embedding": 0}


def test_delete_downstream_follows_an_expansion_and_skips_an_aggregation(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]}))
        children = store.resolve_update("frames").added.to_native().join(pl.DataFrame({"frame": [0, 1]}), how="cross")
        store.write("frames", children)
        store.write("summary", store.resolve_update("summary").added.to_native())
        gone = pl.DataFrame({"sample_uid": [2]})
        store.delete("video", gone)
        assert store.delete_downstream("video", gone) == {"frames": 2, "summary": 1}
        assert read(store, "frames")["sample_uid"].to_list() == [1, 1]
        assert store.resolve_update("frames").is_empty
        assert store.resolve_update("summary").is_empty
        # a child deleted alone: its parent's summary aggregates the others, so it is recomputed, not deleted
        assert store.delete_downstream("frames", pl.DataFrame({"sample_uid": [1], "frame": [0]})) == {}
