"""What every store must do, run against each of them."""

from __future__ import annotations

from typing import Any

import narwhals as nw
import polars as pl
import pytest

import strata as st
from strata.errors import DefinitionError, WriteError
from strata.features.versions import sample_hash
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import embedding, lineage_graph, loader_graph, transcript, video


def graph_of(audio_cv: str = "1", frames_cv: str = "1", text_cv: str = "1", vector_cv: str = "1") -> st.FeatureGraph:
    """video(audio, frames) -> transcript(text <- audio) -> embedding(vector <- text, frames)."""
    graph = st.FeatureGraph()
    with graph.use():
        source = video(st.FieldSpec("audio", audio_cv), st.FieldSpec("frames", frames_cv))
        embedding(transcript(source, text_cv), source, vector_cv)
    return graph


def roots(n: int, audio: dict[int, str] | None = None, frames: dict[int, str] | None = None) -> pl.DataFrame:
    audio, frames = audio or {}, frames or {}
    return pl.DataFrame(
        {
            "sample_uid": list(range(n)),
            "strata_dv__audio": [audio.get(i, f"a{i}") for i in range(n)],
            "strata_dv__frames": [frames.get(i, f"f{i}") for i in range(n)],
        }
    )


def rows(inc: st.Increment, *parts: str) -> pl.DataFrame:
    frames: list[pl.DataFrame] = [getattr(inc, p).to_native() for p in parts or ("added", "changed")]
    frames = [f.drop([c for c in f.columns if c.startswith("strata_cause__")]) for f in frames]
    return pl.concat(frames, how="vertical")


def sync(store: st.MetadataStore, samples: pl.DataFrame, **extra: Any) -> dict[str, st.Increment]:
    """Bring the whole graph up to date; return the increments seen on the way."""
    seen = {}
    for key in ("video", "transcript", "embedding"):
        inc = store.resolve_update(key, samples=samples) if key == "video" else store.resolve_update(key)
        seen[key] = inc
        new = rows(inc)
        if key in extra:
            new = extra[key](new)
        store.write(key, new)
        if len(inc.removed):
            store.delete(key, inc.removed)
    return seen


def ids(frame: Any) -> list[int]:
    native = frame.to_native() if hasattr(frame, "to_native") else frame
    return sorted(native["sample_uid"].to_list())


def causes(inc: st.Increment, field: str) -> dict[int, str]:
    changed = inc.changed.to_native()
    return dict(zip(changed["sample_uid"].to_list(), changed[f"strata_cause__{field}"].to_list(), strict=True))


def test_first_sync_adds_everything_and_then_nothing_is_stale(store_factory: StoreFactory) -> None:
    graph = graph_of()
    with store_factory(graph=graph) as store:
        seen = sync(store, roots(5))
        assert {k: v.counts() for k, v in seen.items()} == {k: {"added": 5, "changed": 0, "removed": 0} for k in seen}
        for key in ("transcript", "embedding"):
            again = store.resolve_update(key)
            assert again.is_empty
            assert store.resolve_update(key).meta["mode"] == "in sync"
        assert store.resolve_update("video", samples=roots(5)).is_empty


def test_data_versions_follow_the_documented_formula(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        text = store.read("transcript").to_native().sort("sample_uid")
        assert text["strata_dv__text"].to_list() == [
            sample_hash("md5", ["text", "1", "video.audio", f"a{i}"]) for i in range(3)
        ]
        vector = store.read("embedding").to_native().sort("sample_uid")
        expected = [
            sample_hash("md5", ["vector", "1", "transcript.text", text["strata_dv__text"][i], "video.frames", f"f{i}"])
            for i in range(3)
        ]
        assert vector["strata_dv__vector"].to_list() == expected


def test_data_versions_of_awkward_values_follow_the_formula(store_factory: StoreFactory) -> None:
    """Byte lengths of multi-byte text, empty values, quotes, and values that look like the encoding itself."""
    audio = {0: "é", 1: "", 2: "it's", 3: "3:abc", 4: "-1:", 5: "日本語\n"}
    frames = {0: "", 1: "ü" * 40, 2: "'", 3: "1:", 4: "x" * 300, 5: ":"}
    with store_factory(graph=graph_of(vector_cv="v'2")) as store:
        sync(store, roots(6, audio=audio, frames=frames))
        text = store.read("transcript").to_native().sort("sample_uid")["strata_dv__text"].to_list()
        assert text == [sample_hash("md5", ["text", "1", "video.audio", audio[i]]) for i in range(6)]
        vector = store.read("embedding").to_native().sort("sample_uid")["strata_dv__vector"].to_list()
        assert vector == [
            sample_hash("md5", ["vector", "v'2", "transcript.text", text[i], "video.frames", frames[i]])
            for i in range(6)
        ]


def test_a_source_change_reaches_exactly_the_dependent_fields_with_causes(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(10))
        seen = sync(store, roots(10, audio={1: "A1", 2: "A2"}, frames={2: "F2", 7: "F7"}))
        assert causes(seen["video"], "audio") == {1: "data", 2: "data", 7: None}
        assert causes(seen["video"], "frames") == {1: None, 2: "data", 7: "data"}
        assert causes(seen["transcript"], "text") == {1: "video.audio", 2: "video.audio"}
        assert causes(seen["embedding"], "vector") == {
            1: "transcript.text",
            2: "transcript.text,video.frames",
            7: "video.frames",
        }
        assert seen["embedding"].changed_fields() == {"vector": {"transcript.text": 2, "video.frames": 2}}
        assert all(inc.counts()["added"] == 0 and inc.counts()["removed"] == 0 for inc in seen.values())


def test_upstream_code_bump_stales_only_dependent_fields_never_orphans(
    store_factory: StoreFactory, tmp_path: object
) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(4))
        store.graph = graph_of(text_cv="2")  # the same store seen by new code
        tinc = store.resolve_update("transcript")
        assert tinc.counts() == {"added": 0, "changed": 4, "removed": 0}
        assert set(causes(tinc, "text").values()) == {"code"}
        einc = store.resolve_update("embedding")
        assert einc.is_empty  # nothing orphaned, nothing stale until transcript really changes
        store.write("transcript", rows(tinc))
        einc = store.resolve_update("embedding")
        assert einc.counts() == {"added": 0, "changed": 4, "removed": 0}
        assert set(causes(einc, "vector").values()) == {"transcript.text"}


def test_each_graph_gets_its_own_plans_even_at_a_freed_graphs_address(store_factory: StoreFactory) -> None:
    """The active graph changes under a store with no graph of its own; CPython reuses freed addresses."""
    store = store_factory()
    with store:
        with graph_of().use():
            sync(store, roots(4))
        for code in ("2", "3", "2", "4"):
            with graph_of(text_cv=code).use():  # the previous graph is freed: this one may take its place
                inc = store.resolve_update("transcript")
                assert set(causes(inc, "text").values()) == {"code"}, code
                store.write("transcript", rows(inc))
                assert store.resolve_update("transcript").is_empty
            with graph_of(text_cv=code).use():
                assert store.resolve_update("transcript").is_empty


def test_handing_a_store_new_definitions(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(3))
        store.graph = graph_of(text_cv="2")
        assert set(causes(store.resolve_update("transcript"), "text").values()) == {"code"}
        store.graph = graph_of()
        assert store.resolve_update("transcript").is_empty


def test_root_field_code_bump_flags_only_that_field(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(3))
        store.graph = graph_of(frames_cv="2")
        inc = store.resolve_update("video", samples=roots(3))
        assert causes(inc, "frames") == {0: "code", 1: "code", 2: "code"}
        assert causes(inc, "audio") == {0: None, 1: None, 2: None}
        store.write("video", rows(inc))
        assert store.resolve_update("transcript").is_empty  # audio untouched: nothing downstream of it moves


def test_an_unchanged_data_version_stops_propagation(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3, audio={0: "v1"}), transcript=lambda f: f.with_columns(strata_dv__text=pl.lit("same-text")))
        seen = sync(
            store,
            roots(3, audio={0: "v2"}),
            transcript=lambda f: f.with_columns(strata_dv__text=pl.lit("same-text")),  # content hash unchanged
        )
        assert seen["transcript"].counts()["changed"] == 1
        assert seen["embedding"].is_empty


def test_removed_samples_and_soft_and_hard_delete(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(5))
        seen = sync(store, roots(5).filter(pl.col("sample_uid") != 3))
        assert ids(seen["video"].removed) == [3]
        assert ids(seen["transcript"].removed) == [3]
        assert ids(seen["embedding"].removed) == [3]
        assert ids(store.read("embedding")) == [0, 1, 2, 4]
        assert 3 in ids(store.read("embedding", include_deleted=True))
        history = store.read("embedding", feature_version="all").to_native()
        assert history.filter(pl.col("sample_uid") == 3).height == 2  # the row and its tombstone
        assert store.delete("embedding", pl.DataFrame({"sample_uid": [0]}), soft=False) == 1
        assert 0 not in ids(store.read("embedding", feature_version="all"))
        assert ids(store.resolve_update("embedding").added) == [0]


def test_reads_filter_select_and_pick_versions(store_factory: StoreFactory) -> None:
    graph = graph_of()
    with store_factory(graph=graph) as store:
        sync(store, roots(4))
        got = store.read("video", filters=[nw.col("sample_uid") >= 2], columns=["sample_uid", "strata_dv__audio"])
        assert got.to_native().sort("sample_uid").to_dicts() == [
            {"sample_uid": 2, "strata_dv__audio": "a2"},
            {"sample_uid": 3, "strata_dv__audio": "a3"},
        ]
        assert len(store.read("video", feature_version="current")) == 4
        assert len(store.read("video", feature_version=graph.feature_version("video"))) == 4
        assert len(store.read("video", feature_version="0000000000000000")) == 0
        lazy = store.read("video", lazy=True)
        assert isinstance(lazy, nw.LazyFrame)
        store.write("video", roots(4, audio={0: "new"}).filter(pl.col("sample_uid") == 0))
        latest = store.read("video").to_native().sort("sample_uid")
        assert latest["strata_dv__audio"].to_list() == ["new", "a1", "a2", "a3"]
        assert len(store.read("video", feature_version="all")) == 5


def test_user_columns_are_kept_and_may_grow(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(2).with_columns(path=pl.lit("s3://x")))
        store.write("video", roots(3).filter(pl.col("sample_uid") == 2).with_columns(duration=pl.lit(1.5)))
        got = store.read("video").to_native().sort("sample_uid")
        assert got["path"].to_list() == ["s3://x", "s3://x", None]
        assert got["duration"].to_list() == [None, None, 1.5]


def test_lazy_increments_equal_eager_ones(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(6))
        store.write("video", rows(store.resolve_update("video", samples=roots(6, audio={4: "x"}))))
        lazy = store.resolve_update("transcript", lazy=True)
        eager = store.resolve_update("transcript")
        assert lazy.lazy
        assert lazy.collect().counts() == eager.counts() == {"added": 0, "changed": 1, "removed": 0}
        assert lazy.collect().changed.to_native().to_dicts() == eager.changed.to_native().to_dicts()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"strata_dv__audio": ["a"], "strata_dv__frames": ["f"]}), "lack id column"),
        (pl.DataFrame({"sample_uid": [1], "strata_dv__audio": ["a"]}), "lack data-version column"),
        (
            pl.DataFrame({"sample_uid": [1, 1], "strata_dv__audio": ["a", "b"], "strata_dv__frames": ["f", "g"]}),
            "have 2 rows with repeated ids",
        ),
        (
            pl.DataFrame({"sample_uid": [None, 2], "strata_dv__audio": ["a", "b"], "strata_dv__frames": ["f", "g"]}),
            "nulls in id column",
        ),
        (
            pl.DataFrame(
                {"sample_uid": [1], "strata_dv__audio": [None], "strata_dv__frames": ["f"]},
                schema_overrides={"strata_dv__audio": pl.String},
            ),
            "nulls in `strata_dv__audio`",
        ),
    ],
)
def test_bad_writes_write_nothing(store_factory: StoreFactory, frame: pl.DataFrame, message: str) -> None:
    with store_factory(graph=graph_of()) as store:
        with pytest.raises(WriteError, match=message):
            store.write("video", frame)
        assert not store.has_feature("video")


def test_non_root_writes_need_the_increment_columns(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(2))
        with pytest.raises(WriteError, match="lack input column"):
            store.write("transcript", pl.DataFrame({"sample_uid": [0], "strata_dv__text": ["x"]}))
        with pytest.raises(DefinitionError, match="root feature: resolve_update needs samples"):
            store.resolve_update("video")
        with pytest.raises(DefinitionError, match="only for root features"):
            store.resolve_update("transcript", samples=roots(1))


def test_store_must_be_open(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with pytest.raises(DefinitionError, match="not open"):
        store.read("video")


def test_large_first_write_is_all_readable(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        n = 130_000  # more than one DuckDB row group
        store.write("video", roots(n))
        assert len(store.read("video")) == n
        assert store.resolve_update("video", samples=roots(n)).is_empty


def test_lineage_expansion_and_aggregation(store_factory: StoreFactory) -> None:
    graph = lineage_graph()
    with store_factory(graph=graph) as store:
        videos = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]})
        store.write("video", videos)
        inc = store.resolve_update("frames")
        assert ids(inc.added) == [1, 2]  # per parent
        children = inc.added.to_native().join(pl.DataFrame({"frame": [0, 1, 2]}), how="cross")
        store.write("frames", children)
        assert store.resolve_update("frames").is_empty
        summary = store.resolve_update("summary")
        assert ids(summary.added) == [1, 2]
        store.write("summary", summary.added.to_native())
        store.write("video", videos.with_columns(strata_dv__frames=pl.Series(["v1", "v2-new"])))
        frames_inc = store.resolve_update("frames")
        assert causes(frames_inc, "pixels") == {2: "video.frames"}
        stale = (
            frames_inc.changed.to_native()
            .drop("strata_cause__pixels")
            .join(pl.DataFrame({"frame": [0, 1]}), how="cross")
        )
        store.delete("frames", pl.DataFrame({"sample_uid": [2, 2, 2], "frame": [0, 1, 2]}))
        store.write("frames", stale)
        assert store.resolve_update("frames").is_empty
        assert causes(store.resolve_update("summary"), "mean") == {2: "frames.pixels"}


def test_optional_upstream_is_a_left_join(store_factory: StoreFactory) -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", fields=["x"])):
            pass

        class B(st.Feature, spec=st.FeatureSpec("b", fields=["y"])):
            pass

        class C(st.Feature, spec=st.FeatureSpec("c", deps=[A, st.FeatureDep(B, optional=True)], fields=["z"])):
            pass

    with store_factory(graph=graph) as store:
        store.write("a", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["x1", "x2"]}))
        inc = store.resolve_update("c")
        added = inc.added.to_native().sort("sample_uid")
        assert added["strata_in__b__y"].to_list() == [None, None]
        assert added["strata_dv__z"][0] == sample_hash("md5", ["z", "1", "a.x", "x1", "b.y", None])
        store.write("c", added)
        store.write("b", pl.DataFrame({"sample_uid": [2], "strata_dv__y": ["y2"]}))
        assert causes(store.resolve_update("c"), "z") == {2: "b.y"}


def test_lookup_one_sample_across_the_graph(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.write("video", rows(store.resolve_update("video", samples=roots(3, audio={1: "new"}))))
        found = store.lookup("transcript", {"sample_uid": 1})
        assert found["video"]["status"] == "present"
        assert found["transcript"]["status"] == "stale"
        assert found["transcript"]["causes"] == {"text": "video.audio"}
        assert found["embedding"]["status"] == "up to date"
        assert store.lookup("transcript", {"sample_uid": 0})["transcript"]["status"] == "up to date"
        assert store.lookup("transcript", {"sample_uid": 9})["transcript"]["status"] == "missing"


def test_sha256_is_selectable_and_never_mixed(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of(), hash_algorithm="sha256")
    with store:
        sync(store, roots(2))
        text = store.read("transcript").to_native().sort("sample_uid")["strata_dv__text"].to_list()
        assert text == [sample_hash("sha256", ["text", "1", "video.audio", f"a{i}"]) for i in range(2)]
    if isinstance(store, st.DuckDBStore) and store.path != ":memory:":
        with (
            pytest.raises(DefinitionError, match="hashed with `sha256`, not `md5`"),
            st.DuckDBStore(store.path, graph=graph_of()),
        ):
            pass
    with pytest.raises(DefinitionError, match="unknown hash algorithm"):
        store_factory(hash_algorithm="crc32")


def test_a_custom_input_loader_replaces_the_lineage_joins(store_factory: StoreFactory) -> None:
    graph = loader_graph()
    with store_factory(graph=graph) as store:
        store.write("clip", pl.DataFrame({"clip_id": [1, 2], "strata_dv__audio": ["c1", "c2"]}))
        store.write("speaker", pl.DataFrame({"speaker": ["ann", "bob"], "strata_dv__voice": ["v-ann", "v-bob"]}))
        inc = store.resolve_update("match")
        assert inc.meta["mode"] == "custom loader"
        assert ids_of(inc.added, "clip_id") == [1, 2]
        expected = sample_hash("md5", ["score", "1", "clip.audio", "c1", "speaker.voice", "v-ann"])
        assert inc.added.to_native().sort("clip_id")["strata_dv__score"][0] == expected
        store.write("match", inc.added.to_native())
        assert store.resolve_update("match").is_empty
        store.write("speaker", pl.DataFrame({"speaker": ["ann"], "strata_dv__voice": ["v-ann-2"]}))
        assert causes_of(store.resolve_update("match"), "score", "clip_id") == {1: "speaker.voice", 2: "speaker.voice"}
        store.write("speaker", pl.DataFrame({"speaker": ["bob"], "strata_dv__voice": ["v-bob-2"]}))


def ids_of(frame: Any, column: str) -> list[Any]:
    return sorted(frame.to_native()[column].to_list())


def causes_of(inc: st.Increment, field: str, column: str) -> dict[Any, Any]:
    changed = inc.changed.to_native()
    return dict(zip(changed[column].to_list(), changed[f"strata_cause__{field}"].to_list(), strict=True))


def test_writing_exactly_the_increment_records_the_feature_in_sync(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(6))
        assert store.resolve_update("embedding").meta["mode"] == "in sync"  # no full comparison after a build
        store.write("video", rows(store.resolve_update("video", samples=roots(6, audio={1: "x", 2: "y"}))))
        inc = store.resolve_update("transcript")
        first, second = rows(inc).filter(pl.col("sample_uid") == 1), rows(inc).filter(pl.col("sample_uid") == 2)
        store.write("transcript", first)
        assert store.resolve_update("transcript").meta["mode"] == "since last sync"  # half done
        inc = store.resolve_update("transcript")
        assert ids(inc.changed) == [2]
        store.write("transcript", second)
        assert store.resolve_update("transcript").meta["mode"] == "in sync"


def test_writing_the_increment_in_chunks_in_any_order_records_the_feature_in_sync(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(8))
        store.write("video", rows(store.resolve_update("video", samples=roots(8, audio=dict.fromkeys(range(8), "x")))))
        batch = rows(store.resolve_update("transcript"))
        for start in (0, 2, 6, 4):  # the next asks in order, then out of order
            store.write("transcript", batch.slice(start, 2))
        assert store.resolve_update("transcript").meta["mode"] == "in sync"


def test_writes_the_increment_did_not_ask_for_never_fake_a_sync(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(4))
        store.write("video", rows(store.resolve_update("video", samples=roots(4, audio={0: "new"}))))
        inc = store.resolve_update("transcript")
        wrong = rows(inc).with_columns(strata_in__video__audio=pl.lit("not what was asked"))
        store.write("transcript", wrong)
        again = store.resolve_update("transcript")
        assert again.meta["mode"] != "in sync"
        assert ids(again.changed) == [0]
        store.write("transcript", rows(again))
        extra = store.read("transcript").to_native().filter(pl.col("sample_uid") == 3)
        store.write("video", rows(store.resolve_update("video", samples=roots(4, audio={0: "newer"}))))
        inc = store.resolve_update("transcript")
        store.write("transcript", pl.concat([rows(inc), extra.select(rows(inc).columns)]))  # one row too many
        assert store.resolve_update("transcript").meta["mode"] != "in sync"


def test_write_changed_writes_only_new_and_changed_root_rows(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        first = roots(5).with_columns(pl.lit("x").alias("note"))
        assert store.write_changed("video", first) == {"added": 5, "changed": 0, "unchanged": 0}
        # a changed note alone is not a change; sample 1's audio and a new sample 7 are
        batch = roots(8, audio={1: "new"}).filter(pl.col("sample_uid").is_in([0, 1, 2, 7]))
        batch = batch.with_columns(pl.lit("y").alias("note"))
        assert store.write_changed("video", batch) == {"added": 1, "changed": 1, "unchanged": 2}
        live = store.read("video").sort("sample_uid")
        assert live["sample_uid"].to_list() == [0, 1, 2, 3, 4, 7]
        assert live["note"].to_list() == ["x", "y", "x", "x", "x", "y"]
        assert len(store.read("video", feature_version="all")) == 7
        # a deleted sample written again is added back
        store.delete("video", pl.DataFrame({"sample_uid": [3]}))
        assert store.write_changed("video", roots(4).filter(pl.col("sample_uid") == 3))["added"] == 1
        inc = store.resolve_update("transcript")
        assert len(inc.added) == 6


def test_write_changed_rewrites_rows_of_a_bumped_root_field(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        store.write_changed("video", roots(3))
    with store_factory(graph=graph_of(frames_cv="2")) as store:
        if store.has_feature("video"):  # persistent stores only
            assert store.write_changed("video", roots(3)) == {"added": 0, "changed": 3, "unchanged": 0}


def test_write_changed_is_for_roots_and_checks_rows(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        with pytest.raises(DefinitionError, match="write_changed is for root features"):
            store.write_changed("transcript", roots(1))
        with pytest.raises(WriteError, match="repeated ids"):
            store.write_changed("video", pl.concat([roots(2), roots(2)]))
        assert not store.has_feature("video")


def test_an_increment_written_back_as_it_came_stores_exactly_the_features_columns(
    store_factory: StoreFactory,
) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.graph = graph_of(text_cv="2")
        inc = store.resolve_update("transcript")
        assert "strata_cause__text" in inc.changed.columns
        store.write("transcript", inc.changed.to_native().with_columns(pl.lit("t").alias("text")))
        for version in (None, "all"):
            stored = store.read("transcript", feature_version=version).columns
            assert not [c for c in stored if c.startswith("strata_cause__")], version
        assert "text" in store.read("transcript").columns
        assert store.resolve_update("transcript").is_empty


def test_write_changed_with_a_full_snapshot_adds_changes_and_removes_in_one_call(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        assert store.write_changed("video", roots(5), snapshot=True) == {
            "added": 5,
            "changed": 0,
            "unchanged": 0,
            "removed": 0,
        }
        store.write("transcript", rows(store.resolve_update("transcript")).with_columns(pl.lit("t").alias("text")))
        # sample 1 changes, 3 and 4 leave the source, 9 arrives
        snapshot = roots(10, audio={1: "new"}).filter(pl.col("sample_uid").is_in([0, 1, 2, 9]))
        assert store.write_changed("video", snapshot, snapshot=True) == {
            "added": 1,
            "changed": 1,
            "unchanged": 2,
            "removed": 2,
        }
        assert ids(store.read("video")) == [0, 1, 2, 9]
        assert store.resolve_update("video", samples=snapshot).is_empty
        inc = store.resolve_update("transcript")
        assert (ids(inc.added), ids(inc.changed), ids(inc.removed)) == ([9], [1], [3, 4])
        assert store.write_changed("video", snapshot, snapshot=True)["removed"] == 0
        # an empty snapshot: the source is empty, so is the feature
        assert store.write_changed("video", snapshot.clear(), snapshot=True)["removed"] == 4
        assert ids(store.read("video")) == []


@pytest.mark.parametrize("value", ["x", "1.5e"])
def test_text_that_its_number_column_cannot_hold_is_refused_and_nothing_is_written(
    store_factory: StoreFactory, value: str
) -> None:
    """A later batch brings text in a column stored as numbers: refused, the stored rows as they were.

    SQLite kept the text in its INTEGER column (and no read of the feature worked again),
    ClickHouse wrote null in its place; text that is a number is taken, as DuckDB takes it.
    """
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(2).head(1).with_columns(note=pl.lit(1, pl.Int64)))
        with pytest.raises(WriteError, match=r"column `note` holds String, stored as Int64"):
            store.write("video", roots(2).tail(1).with_columns(note=pl.lit(value)))
        assert store.read("video").to_native().select("sample_uid", "note").rows() == [(0, 1)]
        store.write("video", roots(2).tail(1).with_columns(note=pl.lit("2")))
        assert sorted(store.read("video").to_native().select("sample_uid", "note").rows()) == [(0, 1), (1, 2)]
