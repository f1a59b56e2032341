"""`strata build`: compute what is stale, in batches, with failures recorded and skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.helpers import STRATA, Result, computed, run_strata, write_project

FEATURES = """
import json, os, time
import polars as pl
import strata as st

LOG = os.environ.get("BUILD_LOG")


def log(feature, frame):
    if LOG:
        with open(LOG, "a") as handle:
            handle.write(json.dumps({"feature": feature, "ids": frame["sample_uid"].to_list()}) + "\\n")
    time.sleep(float(os.environ.get("BUILD_SLEEP", "0")))


class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio", "frames"])):
    pass


class Transcript(st.Feature, spec=st.FeatureSpec("transcript", deps=[Video],
        fields=[st.FieldSpec("text", deps=[st.FieldDep(Video, ["audio"])])])):
    batch_size = 4

    def compute(self, inputs):
        video = inputs[Video]
        log("transcript", video)
        mode = os.environ.get("BUILD_FAIL", "")
        bad = 3 in video["sample_uid"].to_list()
        if bad and mode == "raise":
            raise ValueError("cannot transcribe sample 3")
        out = video.select("sample_uid", pl.concat_str(pl.lit("T:"), pl.col("audio")).alias("text"))
        if bad and mode == "missing":
            return out.filter(pl.col("sample_uid") != 3)
        if bad and mode == "columns":
            return out.rename({"text": "words"})
        if mode == "narrow_ids":  # the right samples in the right order, ids of a narrower type
            return out.with_columns(pl.col("sample_uid").cast(pl.Int32))
        return out


class Embedding(st.Feature, spec=st.FeatureSpec("embedding", deps=[Transcript, Video],
        fields=[st.FieldSpec("vector", deps=[st.FieldDep(Transcript, ["text"]), st.FieldDep(Video, ["frames"])])])):
    def compute(self, inputs):
        log("embedding", inputs[Video])
        joined = inputs[Transcript].join(inputs[Video], on="sample_uid")
        return joined.select("sample_uid", (pl.col("text").str.len_chars() + pl.col("frames")).alias("vector"))
"""


class Case:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "compute.log"
        (root / "feats.py").write_text(FEATURES)
        write_project(root, "features: {entrypoints: [feats]}\n")
        self.env: dict[str, str] = {"BUILD_LOG": str(self.log)}

    def source(self, n: int, audio: dict[int, str] | None = None, frames: dict[int, int] | None = None) -> None:
        """Write the root feature as ingest would: only rows whose values changed."""
        from strata.features.versions import sample_hash

        audio, frames = audio or {}, frames or {}
        a = [audio.get(i, f"a{i}") for i in range(n)]
        f = [frames.get(i, i) for i in range(n)]
        frame = pl.DataFrame(
            {
                "sample_uid": list(range(n)),
                "audio": a,
                "frames": f,
                "note": ["n"] * n,
                "strata_dv__audio": [sample_hash("md5", [v]) for v in a],
                "strata_dv__frames": [sample_hash("md5", [str(v)]) for v in f],
            }
        )
        project = Project(self.root)
        graph = load_graph(project)
        with make_store(project, graph=graph) as store:
            store.write_changed("video", frame)

    def strata(self, *args: str, **env: str) -> Result:
        return run_strata(*args, cwd=self.root, env={**self.env, **env})

    def build(self, *args: str, **env: str) -> dict[str, Any]:
        done = self.strata("--json", "build", *args, **env)
        assert done.code in (0, 1), done.err
        out: dict[str, Any] = done.json()
        out["code"] = done.code
        out["err"] = done.err
        return out

    def computed(self) -> dict[str, list[Any]]:
        """Samples handed to compute per feature, in call order; the log is emptied."""
        return computed(self.log)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.root / ".strata" / "metadata.duckdb"), read_only=True) as con:
            return con.execute(query).fetchall()


def summary(result: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {f["feature"]: (f["added"], f["changed"], f["removed"], f["written"]) for f in result["features"]}


@pytest.fixture
def case(tmp_path: Path) -> Case:
    return Case(tmp_path)


def test_build_computes_exactly_the_stale_samples_and_fields(case: Case) -> None:
    case.source(10)
    first = case.build()
    assert summary(first) == {"transcript": (10, 0, 0, 10), "embedding": (10, 0, 0, 10)}
    assert sorted(case.computed()["transcript"]) == list(range(10))
    assert case.rows("SELECT text FROM transcript WHERE sample_uid = 4") == [("T:a4",)]
    assert case.rows("SELECT vector FROM embedding WHERE sample_uid = 4") == [(4 + 4,)]
    assert summary(case.build()) == {"transcript": (0, 0, 0, 0), "embedding": (0, 0, 0, 0)}
    assert case.computed() == {}

    case.source(10, audio={1: "x", 5: "y", 7: "z"})
    plan = case.build("--dry-run")
    assert plan["features"][0]["fields"] == {"text": {"video.audio": 3}}
    assert case.computed() == {}
    built = case.build()
    assert summary(built) == {"transcript": (0, 3, 0, 3), "embedding": (0, 3, 0, 3)}
    assert built["features"][1]["fields"] == {"vector": {"transcript.text": 3}}
    assert {k: sorted(v) for k, v in case.computed().items()} == {"transcript": [1, 5, 7], "embedding": [1, 5, 7]}

    case.source(10, audio={1: "x", 5: "y", 7: "z"}, frames={2: 20, 3: 30})
    built = case.build()
    assert summary(built) == {"transcript": (0, 0, 0, 0), "embedding": (0, 2, 0, 2)}
    assert built["features"][1]["fields"] == {"vector": {"video.frames": 2}}
    assert {k: sorted(v) for k, v in case.computed().items()} == {"embedding": [2, 3]}


def test_a_change_to_a_column_no_field_uses_plans_nothing(case: Case) -> None:
    case.source(6)
    case.build()
    project = Project(case.root)
    graph = load_graph(project)
    with make_store(project, graph=graph) as store:
        live = store.read("video").to_native().with_columns(pl.lit("changed").alias("note"))
        assert store.write_changed(
            "video",
            live.select([c for c in live.columns if not c.startswith("strata_") or c.startswith("strata_dv__")]),
        ) == {"added": 0, "changed": 0, "unchanged": 6}
    plan = case.build("--dry-run")
    assert summary(plan) == {"transcript": (0, 0, 0, 0), "embedding": (0, 0, 0, 0)}
    text = case.strata("build", "--dry-run")
    assert "in sync" in text.out


def test_removed_samples_are_removed_downstream(case: Case) -> None:
    case.source(5)
    case.build()
    project = Project(case.root)
    with make_store(project, graph=load_graph(project)) as store:
        store.delete("video", pl.DataFrame({"sample_uid": [0, 4]}))
    assert summary(case.build()) == {"transcript": (0, 0, 2, 0), "embedding": (0, 0, 2, 0)}
    assert case.rows("SELECT sample_uid FROM transcript WHERE NOT strata_deleted ORDER BY 1") == [(1,), (2,), (3,)]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("raise", "ValueError: cannot transcribe sample 3"),
        ("missing", "compute returned no row for 1 sample(s) of the batch"),
        ("columns", "compute returned no column for field(s) text"),
    ],
)
def test_a_failing_batch_is_recorded_skipped_and_retried_when_its_inputs_change(
    case: Case, mode: str, message: str
) -> None:
    case.source(10)
    result = case.build(BUILD_FAIL=mode)
    assert result["code"] == 1
    assert "compute failed for some batches of transcript" in result["err"]
    transcript = result["features"][0]
    assert transcript["written"] == 6  # batches [0-3] (holds 3) failed; [4-7] and [8-9] were written
    [failure] = transcript["failures"]
    assert failure["samples"] == 4
    assert message in failure["error"]
    assert sorted(int(s) for s in failure["first"]) == [0, 1, 2, 3]
    assert case.rows("SELECT count(*) FROM transcript") == [(6,)]
    case.computed()

    again = case.build(BUILD_FAIL=mode)  # same inputs: skipped, not computed again
    assert again["features"][0]["skipped"] == 4
    assert "transcript" not in case.computed()

    case.source(10, audio={0: "fixed"})  # sample 0's input changed: it is computed again; 1-3 stay skipped
    fixed = case.build()
    assert fixed["code"] == 0, fixed["err"]
    assert fixed["features"][0]["skipped"] == 3
    assert case.computed()["transcript"] == [0]
    assert case.rows("SELECT text FROM transcript WHERE sample_uid = 0") == [("T:fixed",)]


def test_a_failed_sample_deleted_upstream_is_no_build_error_after_the_next_build(case: Case) -> None:
    """A sample that failed, then left the source, never needs computing again: the build forgets its failure."""
    from strata.history import RunHistory

    case.source(10)
    assert case.build(BUILD_FAIL="raise")["code"] == 1  # batch [0-3] failed and is recorded
    project = Project(case.root)
    with RunHistory.open(project) as history:
        assert sorted(history.build_errors("local", "transcript")) == ["0", "1", "2", "3"]
    with make_store(project, graph=load_graph(project)) as store:
        store.delete("video", pl.DataFrame({"sample_uid": [0, 1]}))
    again = case.build(BUILD_FAIL="raise")  # 2 and 3 fail again on the same inputs: skipped
    assert again["code"] == 0, again["err"]
    assert again["features"][0]["skipped"] == 2
    with RunHistory.open(project) as history:
        assert sorted(history.build_errors("local", "transcript")) == ["2", "3"]  # 0 and 1: gone, not failed
        assert {f["sample"] for f in history.failures()} == {"2", "3"}


def test_a_killed_build_keeps_finished_batches_and_the_rerun_does_the_rest(case: Case) -> None:
    case.source(20)
    proc = subprocess.Popen(
        [*STRATA, "build", "--workers", "1"],
        cwd=case.root,
        env={**os.environ, **case.env, "BUILD_SLEEP": "0.5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if case.log.exists() and len(case.log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = case.computed()
    kept = [r[0] for r in case.rows("SELECT sample_uid FROM transcript ORDER BY 1")]
    assert 0 < len(kept) < 20
    assert set(kept) <= set(before["transcript"])
    rerun = case.build()
    assert rerun["code"] == 0, rerun["err"]
    again = case.computed()["transcript"]
    assert not set(again) & set(kept)
    assert sorted([*kept, *again]) == list(range(20))
    assert case.rows("SELECT count(*) FROM transcript") == [(20,)]
    assert case.rows("SELECT count(*) FROM embedding") == [(20,)]


def test_worker_processes_give_the_same_results(tmp_path: Path) -> None:
    outcomes = []
    for workers in ("2", "1"):
        root = tmp_path / f"workers-{workers}"
        root.mkdir()
        case = Case(root)
        case.source(12)
        result = case.build("--workers", workers)
        assert result["code"] == 0, result["err"]
        assert result["features"][0]["batches"] == 3
        assert sorted(case.computed()["transcript"]) == list(range(12))
        outcomes.append(case.rows("SELECT sample_uid, text, strata_dv__text FROM transcript ORDER BY 1"))
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]) == 12


def test_build_names_features_and_refuses_unknown_ones(case: Case) -> None:
    case.source(3)
    only = case.build("transcript")
    assert [f["feature"] for f in only["features"]] == ["transcript"]
    bad = case.strata("build", "nope")
    assert bad.code == 2
    assert "no feature `nope`" in bad.err
    assert bad.err.count("\n") == 1


def test_ids_that_compute_returns_in_another_type_are_stored_in_the_batch_s_type(case: Case) -> None:
    case.source(10)
    result = case.build("transcript", BUILD_FAIL="narrow_ids")
    assert result["code"] == 0, result["err"]
    kinds = case.rows(
        "SELECT table_name, data_type FROM information_schema.columns "
        "WHERE column_name = 'sample_uid' AND table_name IN ('video', 'transcript') ORDER BY table_name"
    )
    assert kinds == [("transcript", "BIGINT"), ("video", "BIGINT")]
