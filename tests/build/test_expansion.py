"""Expansion (1:N) and aggregation (N:1) lineage through `strata build`: children replaced, removed, and none at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import strata as st
from strata.errors import WriteError
from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.project.project import Project
from tests.helpers import computed, run_strata, write_project
from tests.stores.graphs import frames, video

FEATURES = """
import json, os
import polars as pl
import strata as st


def log(name, ids):
    with open(os.environ["EXPANSION_LOG"], "a") as handle:
        handle.write(json.dumps({"feature": name, "ids": sorted(ids)}) + "\\n")


class Video(st.Feature, spec=st.FeatureSpec("video", fields=["count", "title"])):
    pass


class Frames(st.Feature, spec=st.FeatureSpec(
        "frames", id_columns=["sample_uid", "frame"],
        deps=[st.FeatureDep(Video, st.Lineage.expansion(["sample_uid"]))],
        fields=[st.FieldSpec("pixels", deps=[st.FieldDep(Video, ["count"])])])):
    def compute(self, inputs):
        videos = inputs[Video]
        log("frames", videos["sample_uid"].to_list())
        rows = [(v, f, v * 100 + f) for v, n in zip(videos["sample_uid"], videos["count"]) for f in range(n)]
        return pl.DataFrame(rows, schema={"sample_uid": pl.Int64, "frame": pl.Int64, "pixels": pl.Int64},
                            orient="row")


class Summary(st.Feature, spec=st.FeatureSpec(
        "summary", deps=[st.FeatureDep(Frames, st.Lineage.aggregation(["sample_uid"]))], fields=["frames"])):
    def compute(self, inputs):
        frames = inputs[Frames]
        log("summary", inputs.samples["sample_uid"].to_list())
        counted = frames.group_by("sample_uid").agg(pl.len().cast(pl.Int64).alias("frames"))
        return inputs.samples.select("sample_uid").join(counted, on="sample_uid", how="left").fill_null(0)
"""


class Videos:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "compute.log"
        (root / "feats.py").write_text(FEATURES)
        write_project(root, "features: {entrypoints: [feats]}\n")

    def source(self, counts: dict[int, int]) -> None:
        """The videos as a full snapshot of their source: ids missing from ``counts`` leave it."""
        ids = sorted(counts)
        frame = pl.DataFrame(
            {
                "sample_uid": ids,
                "count": [counts[i] for i in ids],
                "title": [f"t{i}" for i in ids],
                "strata_dv__count": [sample_hash("md5", [str(counts[i])]) for i in ids],
                "strata_dv__title": [sample_hash("md5", [f"t{i}"]) for i in ids],
            },
            schema_overrides={"sample_uid": pl.Int64, "count": pl.Int64},
        )
        project = Project(self.root)
        with make_store(project, graph=load_graph(project)) as store:
            store.write_changed("video", frame, snapshot=True)

    def build(self) -> dict[str, Any]:
        done = run_strata("--json", "build", "--workers", "1", cwd=self.root, env={"EXPANSION_LOG": str(self.log)})
        assert done.code == 0, done.err
        result: dict[str, Any] = done.json()
        return {f["feature"]: (f["added"], f["changed"], f["removed"]) for f in result["features"]}

    def computed(self) -> dict[str, list[Any]]:
        """Samples handed to compute per feature, in call order; the log is emptied."""
        return computed(self.log)

    def live(self, table: str) -> list[tuple[Any, ...]]:
        queries = {
            "frames": "SELECT sample_uid, frame, pixels FROM frames WHERE NOT strata_deleted ORDER BY ALL",
            "summary": "SELECT sample_uid, frames FROM summary WHERE NOT strata_deleted ORDER BY ALL",
        }
        with duckdb.connect(str(self.root / ".strata" / "metadata.duckdb"), read_only=True) as con:
            return [tuple(row) for row in con.execute(queries[table]).fetchall()]


def children(counts: dict[int, int]) -> list[tuple[int, int, int]]:
    return [(v, f, v * 100 + f) for v in sorted(counts) for f in range(counts[v])]


def summaries(counts: dict[int, int]) -> list[tuple[int, int]]:
    return [(v, n) for v, n in sorted(counts.items()) if n]


def test_children_grow_shrink_drop_to_zero_and_go_with_their_parent(tmp_path: Path) -> None:
    case = Videos(tmp_path)
    counts = {1: 2, 2: 3, 3: 0}
    case.source(counts)
    assert case.build() == {"frames": (3, 0, 0), "summary": (2, 0, 0)}
    assert case.live("frames") == children(counts)
    assert case.live("summary") == summaries(counts)
    case.computed()

    assert case.build() == {"frames": (0, 0, 0), "summary": (0, 0, 0)}  # video 3 has no children: not redone
    assert case.computed() == {}

    counts = {1: 1, 2: 4, 3: 2}  # shrink, grow, from none
    case.source(counts)
    assert case.build() == {"frames": (0, 3, 0), "summary": (1, 2, 0)}
    assert case.live("frames") == children(counts)
    assert case.live("summary") == summaries(counts)
    assert case.computed() == {"frames": [1, 2, 3], "summary": [1, 2, 3]}

    counts = {1: 1, 2: 0, 3: 2}  # to none: its children go, and so does its summary
    case.source(counts)
    assert case.build() == {"frames": (0, 1, 0), "summary": (0, 0, 1)}
    assert case.live("frames") == children(counts)
    assert case.live("summary") == summaries(counts)
    case.computed()

    counts = {2: 0, 3: 5, 4: 1}  # video 1 leaves the source while others change and arrive
    case.source(counts)
    assert case.build() == {"frames": (1, 1, 1), "summary": (1, 1, 1)}
    assert case.live("frames") == children(counts)
    assert case.live("summary") == summaries(counts)
    assert case.computed() == {"frames": [3, 4], "summary": [3, 4]}

    assert case.build() == {"frames": (0, 0, 0), "summary": (0, 0, 0)}
    assert case.computed() == {}


def _frames_graph() -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():
        frames(video("audio", "frames"), "pixels", "sound")
    return graph


def test_a_parent_is_stale_in_a_field_when_any_child_is(tmp_path: Path) -> None:
    """Children left from older writes, in any hash order, never hide a stale parent or half its fields."""
    for old_first in (True, False):
        store = st.DuckDBStore(tmp_path / f"{old_first}.duckdb", graph=_frames_graph())
        with store:
            store.write(
                "video", pl.DataFrame({"sample_uid": [1], "strata_dv__audio": ["a"], "strata_dv__frames": ["f"]})
            )
            inc = store.resolve_update("frames")
            store.write("frames", inc.added.to_native().join(pl.DataFrame({"frame": [0, 1]}), how="cross"))
            assert store.resolve_update("frames").is_empty
            # a leftover child (as an older strata left them) computed from other inputs; that strata
            # took its number from the write sequence, but kept no sequence number per table (put straight
            # into the table that holds the rows: `frames` is a view of them with their writes' versions)
            old = "00" if old_first else "ff"
            store.con.execute(
                """INSERT INTO "frames$rows" BY NAME SELECT * REPLACE (2 AS frame, ? AS strata_in__video__audio, """
                """strata_seq + 1000 AS strata_seq) FROM "frames$rows" WHERE frame = 0""",
                [old * 8],
            )
            store.con.execute(
                """UPDATE "strata$meta" SET value = CAST(value::BIGINT + 1000 AS VARCHAR) WHERE name = 'seq'"""
            )
            inc = store.resolve_update("frames")
            changed = inc.changed.to_native()
            assert changed["sample_uid"].to_list() == [1]
            assert changed["strata_cause__pixels"].to_list() == ["video.audio"]
            assert changed["strata_cause__sound"].to_list() == ["video.audio"]
            store.write("frames", changed.drop("strata_cause__pixels", "strata_cause__sound").with_columns(frame=0))
            assert store.resolve_update("frames").is_empty
            assert store.read("frames")["frame"].to_list() == [0]


@pytest.fixture(params=["memory", "duckdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> st.MetadataStore:
    if request.param == "memory":
        return st.InMemoryStore(graph=_frames_graph())
    return st.DuckDBStore(tmp_path / "meta.duckdb", graph=_frames_graph())


def test_writing_a_parents_children_replaces_all_of_them_and_removed_parents_take_theirs(
    store: st.MetadataStore,
) -> None:
    with store:
        videos = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a1", "a2"], "strata_dv__frames": ["f", "f"]})
        store.write("video", videos)
        inc = store.resolve_update("frames").added.to_native()
        store.write("frames", inc.join(pl.DataFrame({"frame": [0, 1, 2]}), how="cross"))
        store.write("frames", inc.filter(pl.col("sample_uid") == 1).with_columns(frame=pl.lit(7, pl.Int64)))
        assert store.read("frames").sort("sample_uid", "frame").select("sample_uid", "frame").rows() == [
            (1, 7),
            (2, 0),
            (2, 1),
            (2, 2),
        ]
        assert store.resolve_update("frames").is_empty
        # no children for parent 2: one row with null child ids
        store.write("frames", inc.filter(pl.col("sample_uid") == 2).with_columns(frame=pl.lit(None, pl.Int64)))
        assert store.read("frames")["sample_uid"].to_list() == [1]
        assert store.resolve_update("frames").is_empty
        store.delete("video", pl.DataFrame({"sample_uid": [1, 2]}))
        removed = store.resolve_update("frames").removed
        assert sorted(removed.to_native()["sample_uid"].to_list()) == [1, 2]
        assert store.delete("frames", removed) == 1
        assert store.resolve_update("frames").is_empty
        assert len(store.read("frames")) == 0


def test_child_ids_are_all_given_or_all_null(store: st.MetadataStore) -> None:
    with store:
        store.write("video", pl.DataFrame({"sample_uid": [1], "strata_dv__audio": ["a"], "strata_dv__frames": ["f"]}))
        inc = store.resolve_update("frames").added.to_native()
        both = pl.concat([inc.with_columns(frame=pl.lit(0, pl.Int64)), inc.with_columns(frame=pl.lit(None, pl.Int64))])
        with pytest.raises(WriteError, match="both children and a row saying it has none"):
            store.write("frames", both)
        with pytest.raises(WriteError, match="nulls in id column `sample_uid`"):
            store.write("frames", inc.with_columns(sample_uid=pl.lit(None, pl.Int64), frame=pl.lit(0, pl.Int64)))
        assert not store.has_feature("frames")
