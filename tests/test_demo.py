"""`strata demo`: the main job, source to embedding, with exact recompute counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.demo import articles
from tests.helpers import Cli, run_strata, snapshot

pytestmark = pytest.mark.network


def test_demo_recomputes_exactly_the_samples_and_fields_downstream_of_the_change(tmp_path: Path) -> None:
    rows = 200
    done = run_strata("--json", "demo", "--dir", str(tmp_path / "demo"), "--rows", str(rows), cwd=tmp_path)
    assert done.code == 0, done.err
    summary = done.json()
    before, after = articles(rows), articles(rows, version=1)
    bodies = sum(a["body"] != b["body"] for a, b in zip(before, after, strict=True))
    changed = sum(a != b for a, b in zip(before, after, strict=True))
    assert 0 < bodies < changed < rows  # the demo changes some bodies and, elsewhere, only views

    first = summary["first_run"]
    assert first["target"] == {"records": rows, "added": rows, "changed": 0, "unchanged": 0, "removed": 0}
    assert [(b["feature"], b["added"], b["written"]) for b in first["builds"]] == [
        ("clean", rows, rows),
        ("embedding", rows, rows),
    ]
    second = summary["second_run"]
    assert second["target"] == {
        "records": rows,
        "added": 0,
        "changed": changed,
        "unchanged": rows - changed,
        "removed": 0,
    }
    assert [(r["feature"], r["field"], r["recomputed"], r["cause"]) for r in summary["recomputed"]] == [
        ("articles", "(ingest)", changed, "source rows changed"),
        ("clean", "text", bodies, "articles.body"),
        ("clean", "headline", 0, "-"),
        ("embedding", "vector", bodies, "clean.text"),
    ]
    assert [(r["feature"], r["field"], r["samples"], r["skipped"]) for r in summary["recomputed"]] == [
        ("articles", "(ingest)", rows, rows - changed),
        ("clean", "text", rows, rows - bodies),
        ("clean", "headline", rows, rows),
        ("embedding", "vector", rows, rows - bodies),
    ]
    status = run_strata("--json", "-C", str(tmp_path / "demo"), "status", "--assert-in-sync", cwd=tmp_path)
    assert status.code == 0, status.err
    runs = run_strata("--json", "-C", str(tmp_path / "demo"), "runs", "list", cwd=tmp_path).json()
    assert [r["status"] for r in runs] == ["success", "success"]
    assert all(r["blocks"] == ["tap-jsonl", "target-strata", "features:build"] for r in runs)
    assert not list((tmp_path / "demo" / ".strata" / "run").glob("*.config.json"))


def test_demo_splits_the_incremental_runs_time_beside_a_measured_full_rebuild(tmp_path: Path) -> None:
    rows = 100
    done = run_strata("--json", "demo", "--dir", str(tmp_path / "demo"), "--rows", str(rows), cwd=tmp_path)
    assert done.code == 0, done.err
    summary = done.json()
    full = summary["full_rebuild"]  # the same pipeline into an empty store: it loads and computes everything
    assert full["target"] == {"records": rows, "added": rows, "changed": 0, "unchanged": 0, "removed": 0}
    assert [(b["feature"], b["written"]) for b in full["builds"]] == [("clean", rows), ("embedding", rows)]
    split = summary["time_split"]
    assert [s["step"] for s in split] == [
        "tap-jsonl (reads the whole source file)",
        "target-strata (after the tap ended)",
        "build clean",
        "build embedding",
        "strata (start-up, plugins, state, run history)",
        "total",
    ]
    for run, column in ((summary["second_run"], "incremental"), (full, "full_rebuild")):
        steps = [s[column] for s in split]
        assert all(value >= 0 for value in steps)
        assert steps[-1] == pytest.approx(run["seconds"], abs=0.01)
        assert sum(steps[:-1]) == pytest.approx(steps[-1], abs=0.06)  # the steps add up to the total (rounding)
        assert 0 < run["exited"]["tap-jsonl"] <= run["exited"]["target-strata"] < run["seconds"]
    assert set(summary["second_run"]["target_seconds"]) == {"opening", "reading", "comparing"}
    assert not list((tmp_path / "demo" / ".strata").glob("full-rebuild-*"))  # the rebuild's copy is gone


def test_demo_runs_again_in_the_same_directory(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    assert run_strata("demo", "--dir", str(target), "--rows", "30", cwd=tmp_path).code == 0
    again = run_strata("demo", "--dir", str(target), "--rows", "30", cwd=tmp_path)
    assert again.code == 0, again.err
    assert "embedding  vector" in again.out


@pytest.mark.parametrize(
    "files",
    [
        {"strata.yml": "version: 1\nproject_id: mine\n", "data/articles.jsonl": '{"id": 1}\n', "tap.py": "print(1)\n"},
        {"notes.txt": "my notes\n"},
        {"strata.yml": "version: 1\nproject_id: strata-demo\n"},
    ],
)
def test_demo_refuses_a_directory_that_is_not_empty_and_touches_nothing(
    strata: Cli, tmp_path: Path, files: dict[str, str]
) -> None:
    target = tmp_path / "mine"
    for name, text in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    before = snapshot(target)
    result = strata("demo", "--dir", str(target), "--rows", "5")
    assert result.code == 2
    assert result.err == (
        f"strata: error: {target} is not empty and holds no earlier demo; "
        "give --dir a new or empty directory (or leave it out for a temporary one)\n"
    )
    assert snapshot(target) == before
    assert sorted(p.name for p in target.iterdir()) == sorted({name.split("/")[0] for name in files})
