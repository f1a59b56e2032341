"""``strata metadata copy | delete | compact`` on real DuckDB files of a project."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

import strata as st
from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.helpers import Cli

GRAPH = """
import strata as st

class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio"])):
    pass

class Transcript(st.Feature, spec=st.FeatureSpec("transcript", deps=[Video], fields=["text"])):
    pass

class Frames(
    st.Feature,
    spec=st.FeatureSpec(
        "frames",
        id_columns=["sample_uid", "frame"],
        deps=[st.FeatureDep(Video, st.Lineage.expansion(["sample_uid"]))],
        fields=["pixels"],
    ),
):
    pass

class Clip(st.Feature, spec=st.FeatureSpec("clip", id_columns=["video_id", "clip"], fields=["pixels"])):
    pass
"""
STORES = """
  store: prod
stores:
  prod: {type: duckdb, path: prod.duckdb}
  dev: {type: duckdb, path: dev.duckdb}
"""
HOSTILE = 'note; it\'s "quoted" DROP TABLE video'

Use = Callable[..., st.MetadataStore]


@pytest.fixture
def use(make_project: MakeProject) -> Use:
    """Make the project; ``use("prod")`` is a store of it (open it with ``with``)."""
    root = make_project({"feats/graph.py": GRAPH}, extra=STORES)

    def store(name: str) -> st.MetadataStore:
        project = Project.find(root)
        return make_store(project, name, graph=load_graph(project))

    return store


def videos(n: int, **audio: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_uid": list(range(n)),
            "strata_dv__audio": [audio.get(f"s{i}", f"a{i}") for i in range(n)],
            HOSTILE: [f"n{i}" for i in range(n)],
        }
    )


def fill(store: st.MetadataStore, n: int = 3, **audio: str) -> None:
    """Write videos and bring the transcript up to date."""
    store.write_changed("video", videos(n, **audio))
    inc = store.resolve_update("transcript")
    store.write("transcript", pl.concat([inc.added.to_native(), inc.changed.to_native().drop("strata_cause__text")]))
    if len(inc.removed):
        store.delete("transcript", inc.removed)


def every_row(store: st.MetadataStore, key: str) -> list[tuple[object, ...]]:
    frame = store.read(key, feature_version="all").drop("strata_seq")
    return sorted(frame.select(sorted(frame.columns)).rows(), key=repr)


def test_copy_between_two_duckdb_files(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
        fill(prod, s1="changed")
    result = strata("metadata", "copy", "--from", "prod", "--to", "dev", "--json")
    assert result.code == 0, result.err
    assert result.json() == {
        "from": "prod",
        "to": "dev",
        "copied": {"video": 4, "transcript": 4, "frames": 0, "clip": 0},
    }
    with use("prod") as prod, use("dev") as dev:
        for key in ("video", "transcript"):
            assert every_row(dev, key) == every_row(prod, key), key
        assert dev.read("video")[HOSTILE].sort().to_list() == ["n0", "n1", "n2"]
    again = strata("metadata", "copy", "--from", "prod", "--to", "dev", "video")
    assert again.code == 0, again.err
    assert again.out == "copied 0 rows from prod to dev: video 0\n"


def test_copy_and_delete_name_an_unknown_store_or_feature_in_one_line(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
    for args in (
        ("metadata", "copy", "--from", "prod", "--to", "qa"),
        ("metadata", "copy", "--from", "prod", "--to", "dev", "nope"),
        ("metadata", "delete", "nope", "--id", "1"),
        ("metadata", "delete", "video", "--id", "1", "--store", "qa"),
        ("metadata", "delete", "video", "--id", "x"),
        ("metadata", "delete", "clip", "--id", "v1"),
        ("metadata", "copy", "--from", "prod", "--to", "prod"),
        ("metadata", "compact"),
        ("metadata", "compact", "--keep", "1", "--older-than", "3d"),
        ("metadata", "compact", "--older-than", "soon"),
    ):
        result = strata(*args)
        assert result.code == 2, (args, result.err)
        assert result.err.startswith("strata: error: "), (args, result.err)
        assert result.err.count("\n") == 1, (args, result.err)
    assert not (Path.cwd() / "dev.duckdb").exists()


def test_delete_soft_by_default_with_a_dry_run_first(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
    dry = strata("metadata", "delete", "video", "--id", "1", "--id", "2", "--id", "7", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json() == {
        "store": "prod",
        "feature": "video",
        "hard": False,
        "dry_run": True,
        "deleted": 2,
        "downstream": {"transcript": 2, "frames": 0},
        "with_downstream": False,
    }
    with use("prod") as prod:
        assert len(prod.read("video")) == 3  # nothing went
    done = strata("metadata", "delete", "video", "--id", "1", "--id", "2", "--id", "7")
    assert done.code == 0, done.err
    assert done.out.splitlines()[0] == "deleted 2 samples of video in prod (soft: tombstones, history kept)"
    with use("prod") as prod:
        assert prod.read("video")["sample_uid"].to_list() == [0]
        assert len(prod.read("video", feature_version="all")) == 5  # 3 rows, 2 tombstones
    status = strata("status", "--json")
    transcript = next(r for r in status.json()["features"] if r["feature"] == "transcript")
    assert transcript["removed"] == 2  # downstream: the next resolve removes them (a build applies it)


def test_a_hard_delete_erases_history_and_a_whole_feature_needs_yes(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
        fill(prod, s1="changed")
    result = strata("metadata", "delete", "video", "--id", "1", "--hard", "--json")
    assert result.code == 0, result.err
    assert result.json()["deleted"] == 1
    with use("prod") as prod:
        assert 1 not in prod.read("video", feature_version="all")["sample_uid"].to_list()
    refused = strata("metadata", "delete", "video", "--hard")
    assert refused.code == 2
    assert "--yes" in refused.err
    whole = strata("metadata", "delete", "video", "--json")  # soft, every sample
    assert whole.code == 0, whole.err
    assert whole.json()["deleted"] == 2


def test_delete_takes_a_multi_column_id_in_id_column_order(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        clips = pl.DataFrame({"video_id": ["v1", "v1", "v2"], "clip": [0, 1, 0], "strata_dv__pixels": ["p", "q", "r"]})
        prod.write("clip", clips)
    result = strata("metadata", "delete", "clip", "--id", "v1,1", "--id", "v2,0", "--json")
    assert result.code == 0, result.err
    assert result.json()["deleted"] == 2
    with use("prod") as prod:
        assert prod.read("clip").select("video_id", "clip").rows() == [("v1", 0)]


def test_a_multi_column_id_holding_a_comma_is_given_in_csv_quotes(strata: Cli, use: Use) -> None:
    """`--id` values are comma-separated, so a value holding a comma or a quote is quoted, CSV-style (as `strata why`)."""
    with use("prod") as prod:
        videos = ["Doe, John", 'say "hi"', "Doe"]
        prod.write("clip", pl.DataFrame({"video_id": videos, "clip": [0, 0, 0], "strata_dv__pixels": ["p", "q", "r"]}))
    result = strata("metadata", "delete", "clip", "--id", '"Doe, John",0', "--id", '"say ""hi""",0', "--json")
    assert result.code == 0, result.err
    assert result.json()["deleted"] == 2
    with use("prod") as prod:
        assert prod.read("clip").select("video_id", "clip").rows() == [("Doe", 0)]
    unclosed = strata("metadata", "delete", "clip", "--id", '"Doe,0')
    assert unclosed.code == 2
    assert unclosed.err.startswith('strata: error: --id "Doe,0 has a quote that is not closed; ')


def test_compact_keep_and_older_than(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
        fill(prod, s1="b")
        fill(prod, s1="c")
    dry = strata("metadata", "compact", "--keep", "1", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json() == {
        "store": "prod",
        "dry_run": True,
        "dropped": {"video": 1, "transcript": 1, "frames": 0, "clip": 0},
    }
    with use("prod") as prod:
        assert len(prod.read("video", feature_version="all")) == 5
    assert strata("metadata", "compact", "--keep", "1").code == 0
    with use("prod") as prod:
        assert len(prod.read("video", feature_version="all")) == 4
    con = duckdb.connect("prod.duckdb")  # the rows of sample 1 were superseded 40 days ago
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=40)
    # the tables are split (their writes keep the times): every write of sample 1 is aged
    of_sample = 'SELECT strata_write FROM "{}" WHERE sample_uid = 1'
    writes = " UNION ".join(of_sample.format(t) for t in ("video$rows", "video$history$rows"))
    con.execute(f'UPDATE "video$writes" SET strata_written_at = ? WHERE strata_write IN ({writes})', [old])  # noqa: S608
    con.close()
    result = strata("metadata", "compact", "--older-than", "30d")
    assert result.code == 0, result.err
    assert result.out == "dropped 1 row from prod: clip 0, video 1, frames 0, transcript 0\n"
    with use("prod") as prod:
        assert sorted(prod.read("video", feature_version="all")["sample_uid"].to_list()) == [0, 1, 2]
        assert prod.resolve_update("transcript").is_empty


def test_deleting_a_root_sample_reaches_its_expanded_children(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
        parents = prod.resolve_update("frames").added.to_native()
        prod.write("frames", parents.join(pl.DataFrame({"frame": [0, 1]}), how="cross"))
    result = strata("metadata", "delete", "video", "--id", "1", "--json")
    assert result.code == 0, result.err
    assert result.json()["downstream"] == {"transcript": 1, "frames": 2}
    status = {row["feature"]: row for row in strata("status", "--json").json()["features"]}
    assert status["frames"]["removed"] == 1  # keyed by the parent: both of its children go
    assert status["transcript"]["removed"] == 1
    children = strata("metadata", "delete", "frames", "--id", "2", "--json")  # a parent id alone: all its children
    assert children.code == 0, children.err
    assert children.json()["deleted"] == 2
    with use("prod") as prod:
        assert sorted(prod.read("frames").to_native()["sample_uid"].to_list()) == [0, 0, 1, 1]


def test_a_hard_delete_with_downstream_erases_the_derived_rows_too(strata: Cli, use: Use) -> None:
    with use("prod") as prod:
        fill(prod)
        fill(prod, s1="changed")
    dry = strata("metadata", "delete", "video", "--id", "1", "--hard", "--downstream", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["downstream"] == {"transcript": 1, "frames": 0}
    result = strata("metadata", "delete", "video", "--id", "1", "--hard", "--downstream")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "deleted 1 samples of video in prod (hard: erased with their history)",
        "deleted downstream too: frames 0, transcript 1",
    ]
    with use("prod") as prod:
        assert 1 not in prod.read("transcript", feature_version="all").to_native()["sample_uid"].to_list()
    status = {row["feature"]: row for row in strata("status", "--json").json()["features"]}
    assert status["transcript"]["removed"] == 0
