"""``strata status``: samples, and what to add, recompute (per field, why) and remove, from a real DuckDB file."""

from __future__ import annotations

import runpy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.helpers import Cli, run_strata

Steps = Callable[..., None]

CHANGED = ["v003", "v021", "v042", "v067", "v088"]


@pytest.fixture
def steps(reference: Path) -> Steps:
    """Run steps of ``examples/reference/run.py`` against the copied project's store: ``steps("roots", "transcript")``."""
    example = runpy.run_path(str(reference / "run.py"))

    def run(*names: str, changed: tuple[str, ...] = ()) -> None:
        project = Project.find(reference)
        graph = load_graph(project)
        with make_store(project, graph=graph) as store:
            for name in names:
                if name == "roots":
                    example["write_roots"](store, example["videos"](changed=changed), "test")
                else:
                    example["materialize"](store, graph, name, "test")

    return run


def _cells(out: str, feature: str) -> list[str]:
    """The cells of ``feature``'s row in the status table."""
    return next(line.split(maxsplit=5) for line in out.splitlines() if line.split(maxsplit=1)[0] == feature)


def _rows(result: Any) -> dict[str, dict[str, Any]]:
    return {row["feature"]: row for row in result.json()["features"]}


def test_an_empty_store_is_in_sync(strata: Cli, reference: Path) -> None:
    result = strata("status", "--assert-in-sync")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "store: local",
        "feature     samples  added  changed  removed  status",
        "video             0      -        -        -  root",
        "transcript        0      0        0        0  in sync",
        "embedding         0      0        0        0  in sync",
    ]
    assert not (reference / ".strata" / "metadata.duckdb").exists()  # a report creates nothing


def test_new_roots_make_samples_to_add(strata: Cli, steps: Steps) -> None:
    steps("roots")
    result = strata("status")
    assert result.code == 0
    assert _cells(result.out, "transcript") == ["transcript", "0", "100", "0", "0", "stale"]
    checked = strata("status", "--assert-in-sync")
    assert checked.code == 1
    assert checked.err == (
        "strata: error: not in sync: transcript (100 added); "
        "compute and write what `strata status` lists, then check again\n"
    )
    assert "transcript" in checked.out  # the table is printed before the verdict
    rows = _rows(strata("status", "--json"))
    assert rows["transcript"]["stale"] == {"text": 100}  # every field of an added sample is to compute


def test_changed_data_flows_field_by_field(strata: Cli, steps: Steps) -> None:
    steps("roots", "transcript", "embedding")
    assert strata("status", "--assert-in-sync").code == 0

    steps("roots", changed=tuple(CHANGED))
    result = strata("status")
    assert result.code == 0
    assert _cells(result.out, "video") == ["video", "100", "-", "-", "-", "root"]
    assert _cells(result.out, "transcript") == ["transcript", "100", "0", "5", "0", "stale"]
    assert _cells(result.out, "embedding") == ["embedding", "100", "0", "0", "0", "in sync"]
    assert result.out.endswith("changed fields:\n  transcript.text <- video.audio (5)\n")
    rows = _rows(strata("status", "--json"))
    assert rows["video"] == {
        "feature": "video",
        "root": True,
        "samples": 100,
        "fields": {},
        "stale": {"audio": 0, "frames": 0},
        "in_sync": None,
    }
    assert rows["transcript"] == {
        "feature": "transcript",
        "root": False,
        "samples": 100,
        "added": 0,
        "changed": 5,
        "removed": 0,
        "fields": {"text": {"video.audio": 5}},
        "stale": {"text": 5},
        "in_sync": False,
    }

    steps("transcript")
    rows = _rows(strata("status", "--json"))
    assert rows["transcript"]["in_sync"] is True
    assert rows["embedding"]["fields"] == {"vector": {"transcript.text": 5}}
    assert rows["embedding"]["stale"] == {"vector": 5}
    failed = strata("status", "--assert-in-sync")
    assert failed.code == 1
    assert "not in sync: embedding (5 changed)" in failed.err

    steps("embedding")
    assert strata("status", "--assert-in-sync").code == 0


def test_a_code_change_makes_every_sample_of_that_field_stale(strata: Cli, steps: Steps, reference: Path) -> None:
    steps("roots", "transcript", "embedding")
    module = reference / "features" / "video.py"
    text = module.read_text(encoding="utf-8")
    module.write_text(text.replace('st.FieldSpec("text", code_version="1"', 'st.FieldSpec("text", code_version="2"'))
    shutil.rmtree(module.parent / "__pycache__", ignore_errors=True)  # same size, maybe the same second
    rows = _rows(run_strata("status", "--json", cwd=reference))  # a new process imports the edited module
    assert rows["transcript"]["changed"] == 100
    assert rows["transcript"]["fields"] == {"text": {"code": 100}}
    assert rows["embedding"]["in_sync"] is True  # stale only once the new transcripts are written


def test_removed_samples(strata: Cli, steps: Steps, reference: Path) -> None:
    steps("roots", "transcript", "embedding")
    project = Project.find(reference)
    with make_store(project, graph=load_graph(project)) as store:
        store.delete("video", pl.DataFrame({"sample_uid": ["v010", "v011"]}))
    result = strata("status")
    assert _cells(result.out, "video") == ["video", "98", "-", "-", "-", "root"]
    assert _cells(result.out, "transcript") == ["transcript", "100", "0", "0", "2", "stale"]
    assert "not in sync: transcript (2 removed), embedding (2 removed)" in strata("status", "--assert-in-sync").err


def test_selected_features_and_unknown_keys(strata: Cli, steps: Steps) -> None:
    steps("roots")
    result = strata("status", "embedding", "transcript", "--json")
    assert [row["feature"] for row in result.json()["features"]] == ["transcript", "embedding"]
    unknown = strata("status", "transcript", "nope")
    assert unknown.code == 2
    assert unknown.err == (
        "strata: error: no feature `nope` in the graph (features: embedding, transcript, video); check the key\n"
    )
    assert unknown.out == ""


def test_choosing_a_store(strata: Cli, steps: Steps, reference: Path) -> None:
    steps("roots")
    project_file = reference / "strata.yml"
    project_file.write_text(
        project_file.read_text(encoding="utf-8")
        + "  scratch: {type: memory}\n  other: {type: duckdb, path: other.duckdb}\n",
        encoding="utf-8",
    )
    assert _rows(strata("status", "--json"))["video"]["samples"] == 100
    scratch = strata("status", "--store", "scratch", "--json").json()
    assert scratch["store"] == {"name": "scratch", "type": "memory", "hash_algorithm": "md5", "path": None}
    assert {row["feature"]: row["samples"] for row in scratch["features"]} == {
        "video": 0,
        "transcript": 0,
        "embedding": 0,
    }
    other = strata("status", "--store", "other")
    assert other.code == 0
    assert other.out.startswith("store: other\n")
    assert not (reference / "other.duckdb").exists()  # a report creates nothing
    missing = strata("status", "--store", "prod")
    assert missing.code == 2
    assert missing.err == "strata: error: no store named `prod`; stores in strata.yml: local, scratch, other\n"

    from tests.helpers import run_strata

    chosen = run_strata("status", cwd=Path.cwd(), env={"STRATA_FEATURES_STORE": "prod"})
    assert (chosen.code, chosen.err) == (
        2,
        "strata: error: no store named `prod` (from STRATA_FEATURES_STORE); stores in strata.yml: local, scratch, other\n",
    )


def test_bad_store_config_and_unreadable_store(strata: Cli, reference: Path) -> None:
    project_file = reference / "strata.yml"
    text = project_file.read_text(encoding="utf-8")
    project_file.write_text(text.replace("type: duckdb", "type: postgress"), encoding="utf-8")
    result = strata("status")
    assert result.code == 2
    assert result.err == (
        "strata: error: strata.yml:8: store `local` has unknown type `postgress`; use one of: duckdb, memory, sqlite, postgres, clickhouse\n"
    )
    project_file.write_text(text, encoding="utf-8")
    store = reference / ".strata" / "metadata.duckdb"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"this is not a database")
    broken = strata("status")
    assert broken.code == 1
    assert broken.err.startswith(f"strata: error: cannot open store `local` (duckdb at {store}): ")
    assert broken.err.count("\n") == 1


def test_no_features_opens_no_store(strata: Cli, make_project: MakeProject) -> None:
    root = make_project({}, entrypoints=[])
    result = strata("status", "--assert-in-sync")
    assert (result.code, result.out) == (
        0,
        "no features (name the modules that define them in features.entrypoints of strata.yml)\n",
    )
    assert not (root / ".strata" / "metadata.duckdb").exists()
