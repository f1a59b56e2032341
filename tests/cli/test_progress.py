"""Progress of long work: rich on a terminal, plain lines on stderr otherwise, nothing with ``--json``.

``build`` (per feature: batches, samples/s, failures), ``install`` (per plugin), ``metadata copy |
compact`` (per feature) and ``migrations apply`` (per operation). The terminal cases run the real
``strata`` with its stderr on a pseudo-terminal and its stdout on a pipe, as a shell does with
``strata build > out.txt``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.build.test_build import Case
from tests.cli.conftest import MakeProject
from tests.cli.test_graph_diff import GRAPH as MIGRATED_GRAPH
from tests.cli.test_graph_diff import write_graph
from tests.cli.test_graph_snapshots import STORES as MIGRATED_STORES
from tests.cli.test_metadata_cmds import GRAPH, STORES, fill
from tests.helpers import Cli, run_in_terminal, run_strata, write_project

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "files-dbt-duckdb"
LINE = re.compile(r"^\d\d:\d\d:\d\d info +(?P<text>.*)$")
FAILURE = "ValueError: cannot transcribe sample 3"
EVERY_BATCH = {"STRATA_PROGRESS_EVERY": "0"}
"""Plain lines as often as steps end (the default is one every few seconds per task)."""
FAILED_TRANSCRIPT = [
    "build transcript: 1/3 batches, 4 samples (N/s), 1 failed batch; " + FAILURE,
    "build transcript: 2/3 batches, 8 samples (N/s), 1 failed batch",
    "build transcript: 3/3 batches, 10 samples (N/s), 1 failed batch",
    "build transcript: done in N s: 3/3 batches, 10 samples (N/s), 1 failed batch; 6 written",
]
"""A build of transcript whose first batch fails, a line per batch."""


def progress_lines(err: str, prefix: str) -> list[str]:
    """The plain progress lines of ``err`` that start with ``prefix``, rates and times masked."""
    out = []
    for line in err.splitlines():
        match = LINE.match(line)
        if match and match["text"].startswith(prefix):
            text = re.sub(r"\([\d,]+/s\)", "(N/s)", match["text"])
            out.append(re.sub(r" in \d+\.\d s", " in N s", text))
    return out


def masked(out: str) -> str:
    """A command's table with its seconds column masked."""
    return re.sub(r"\b\d+\.\d+\b", "S", out)


# -- build -------------------------------------------------------------------------------------


@pytest.fixture
def case(tmp_path: Path) -> Case:
    built = Case(tmp_path)
    built.source(10)
    return built


def test_build_prints_one_plain_line_per_batch_with_counts_and_failures(case: Case) -> None:
    done = case.strata("build", "transcript", BUILD_FAIL="raise", **EVERY_BATCH)
    assert done.code == 1
    assert progress_lines(done.err, "build ") == FAILED_TRANSCRIPT
    assert done.out.startswith("build:\n")
    assert "build transcript" not in done.out


def test_quick_work_says_nothing_but_a_failure_at_once_and_its_feature_s_totals(case: Case) -> None:
    done = case.strata("build", BUILD_FAIL="raise")
    assert done.code == 1
    assert progress_lines(done.err, "build ") == [
        "build transcript: 1/3 batches, 4 samples (N/s), 1 failed batch; " + FAILURE,
        "build transcript: done in N s: 3/3 batches, 10 samples (N/s), 1 failed batch; 6 written",
    ]
    in_sync = case.strata("build")
    assert in_sync.code == 0, in_sync.err
    assert progress_lines(in_sync.err, "build ") == []


def test_build_with_json_or_a_quiet_log_level_prints_no_progress(case: Case) -> None:
    done = case.strata("--json", "build", BUILD_FAIL="raise", **EVERY_BATCH)
    assert done.code == 1
    assert [f["batches"] for f in json.loads(done.out)["features"]] == [3, 1]
    assert done.err.startswith("strata: error: compute failed for some batches of transcript")
    assert done.err.count("\n") == 1, done.err
    case.source(10, audio={5: "changed"})
    after = case.strata("build", "transcript", "--json", BUILD_FAIL="", **EVERY_BATCH)  # --json after the command too
    assert after.code == 0, after.err
    assert [f["feature"] for f in json.loads(after.out)["features"]] == ["transcript"]
    assert after.err == ""
    case.source(10, audio={5: "again"})
    quiet = case.strata("--log-level", "warning", "build", **EVERY_BATCH)
    assert quiet.code == 0, quiet.err
    assert quiet.err == ""


def test_build_progress_takes_the_log_format_and_a_bad_pace_is_one_line(case: Case) -> None:
    done = case.strata("--log-format", "json", "build", "transcript", **EVERY_BATCH)
    assert done.code == 0, done.err
    events = [json.loads(line) for line in done.err.splitlines()]
    assert [(e["logger"], e["level"]) for e in events] == [("strata.progress", "info")] * 4
    assert re.fullmatch(r"build transcript: 1/3 batches, 4 samples \([\d,]+/s\)", events[0]["event"])
    assert re.fullmatch(
        r"build transcript: done in \d+\.\d s: 3/3 batches, 10 samples \([\d,]+/s\); 10 written", events[3]["event"]
    )
    bad = case.strata("build", STRATA_PROGRESS_EVERY="soon")
    assert bad.code == 2
    assert (
        bad.err
        == "strata: error: STRATA_PROGRESS_EVERY=soon is not a number of seconds; set it to 0 or more, or unset it\n"
    )


def test_build_on_a_terminal_shows_rich_progress_and_the_same_result(case: Case, tmp_path: Path) -> None:
    (tmp_path / "twin").mkdir()
    twin = Case(tmp_path / "twin")
    twin.source(10)
    piped = twin.strata("build", BUILD_FAIL="raise")
    shown = run_in_terminal("build", cwd=case.root, env={**case.env, "BUILD_FAIL": "raise"})
    assert shown.code == 1
    assert masked(shown.out) == masked(piped.out)
    assert re.search(r"transcript\b.*\b3/3 batches\b.*\b10 samples\b.*\b1 failed batch", shown.err), shown.err
    assert re.search(r"embedding\b.*\b1/1 batch\b.*\b6 samples\b", shown.err), shown.err
    assert "build transcript:" not in shown.err  # the bars, not the plain lines
    assert "strata: error: compute failed for some batches of transcript" in shown.err


def test_a_features_build_block_of_run_reports_progress_as_build_does(case: Case) -> None:
    done = case.strata("run", "features:build", BUILD_FAIL="raise", **EVERY_BATCH)
    assert done.code == 1
    assert progress_lines(done.err, "build ") == [
        *FAILED_TRANSCRIPT,
        "build embedding: 1/1 batch, 6 samples (N/s)",
        "build embedding: done in N s: 1/1 batch, 6 samples (N/s); 6 written",
    ]
    case.source(10, audio={5: "changed"})
    quiet = case.strata("--json", "run", "features:build", BUILD_FAIL="", **EVERY_BATCH)
    assert quiet.code == 0, quiet.err
    assert quiet.err == ""
    assert json.loads(quiet.out)[0]["builds"][0]["feature"] == "transcript"


def test_a_features_build_block_of_run_on_a_terminal_shows_rich_progress(case: Case) -> None:
    shown = run_in_terminal("run", "features:build", cwd=case.root, env={**case.env, "BUILD_FAIL": "raise"})
    assert shown.code == 1, shown.err
    assert re.search(r"transcript\b.*\b3/3 batches\b.*\b10 samples\b.*\b1 failed batch", shown.err), shown.err
    assert re.search(r"embedding\b.*\b1/1 batch\b.*\b6 samples\b", shown.err), shown.err
    assert "build transcript:" not in shown.err  # the bars, not the plain lines
    assert "built embedding: 6 written" not in shown.out  # the run failed: its one error line says so
    assert "compute failed for some batches of transcript" in shown.err


# -- install -----------------------------------------------------------------------------------

PLUGINS = """
plugins:
  utilities:
  - name: broken
    pip_url: {missing}
  files:
  - name: files-dbt-duckdb
    pip_url: {bundle}
"""


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A project with a file bundle installed from a local copy and a plugin whose package is nowhere."""
    root = tmp_path / "proj"
    bundle = shutil.copytree(BUNDLE, tmp_path / "bundle")
    write_project(root, PLUGINS.format(missing=tmp_path / "nothing-here", bundle=bundle))
    return root


def test_install_prints_a_plain_line_per_plugin_and_its_results_on_stdout(plugins: Path) -> None:
    done = run_strata("install", cwd=plugins, env=EVERY_BATCH)
    assert done.code == 1
    assert sorted(progress_lines(done.err, "install ")) == [
        "install broken: failed in N s",
        "install files-dbt-duckdb: installed in N s",
    ]
    assert done.out.startswith("files-dbt-duckdb (file bundle): installed; its files")
    assert "broken: failed: could not install `broken`" in done.err
    quiet = run_strata("--json", "install", "files-dbt-duckdb", cwd=plugins)
    assert quiet.code == 0, quiet.err
    assert [r["status"] for r in quiet.json()] == ["up to date"]
    assert quiet.err == ""


def test_install_on_a_terminal_shows_each_plugin_and_the_same_result(plugins: Path) -> None:
    shown = run_in_terminal("install", "files-dbt-duckdb", cwd=plugins)
    assert shown.code == 0, shown.err
    assert re.search(r"files-dbt-duckdb\b.*\binstalled\b", shown.err), shown.err
    assert "install files-dbt-duckdb:" not in shown.err
    piped = run_strata("install", "files-dbt-duckdb", cwd=plugins)
    assert piped.code == 0, piped.err
    assert masked(shown.out).replace("installed", "up to date") == masked(piped.out)


# -- metadata copy | compact -------------------------------------------------------------------

COPIED = "copied 8 rows from prod to dev: clip 0, video 4, frames 0, transcript 4\n"
"""Upstreams first: the order the features are copied in."""


@pytest.fixture
def stores(make_project: MakeProject) -> Path:
    """prod holds 3 videos and their transcripts, sample 0 written twice (one superseded row each)."""
    root = make_project({"feats/graph.py": GRAPH}, extra=STORES)
    project = Project.find(root)
    with make_store(project, "prod", graph=load_graph(project)) as prod:
        fill(prod)
        fill(prod, s0="changed")
    return root


def test_copy_and_compact_print_a_plain_line_per_feature(
    strata: Cli, stores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_PROGRESS_EVERY", "0")
    copied = strata("metadata", "copy", "--from", "prod", "--to", "dev")
    assert copied.code == 0, copied.err
    assert copied.out == COPIED
    assert progress_lines(copied.err, "metadata ") == [
        "metadata copy: 1/4 features; clip",
        "metadata copy: 2/4 features, 4 rows (N/s); video",
        "metadata copy: 3/4 features, 4 rows (N/s); frames",
        "metadata copy: 4/4 features, 8 rows (N/s); transcript",
        "metadata copy: done in N s: 4/4 features, 8 rows (N/s)",
    ]
    compacted = strata("metadata", "compact", "--keep", "0", "--store", "dev", "video", "transcript")
    assert compacted.code == 0, compacted.err
    assert compacted.out == "dropped 2 rows from dev: video 1, transcript 1\n"
    assert progress_lines(compacted.err, "metadata ")[-1] == "metadata compact: done in N s: 2/2 features, 2 rows (N/s)"
    for args in (["copy", "--from", "prod", "--to", "dev"], ["compact", "--keep", "0"]):
        quiet = strata("metadata", *args, "--json")
        assert quiet.code == 0, quiet.err
        assert isinstance(quiet.json(), dict)
        assert quiet.err == ""


def test_copy_on_a_terminal_shows_rich_progress_and_the_same_result(stores: Path) -> None:
    shown = run_in_terminal("metadata", "copy", "--from", "prod", "--to", "dev", cwd=stores)
    assert shown.code == 0, shown.err
    assert shown.out == COPIED
    assert re.search(r"copy\b.*\b4/4 features\b.*\b8 rows\b", shown.err), shown.err


# -- migrations apply --------------------------------------------------------------------------


@pytest.fixture
def migrated(strata: Cli, make_project: MakeProject) -> Path:
    """A store holding 3 videos under a pushed graph, and a generated migration of 3 operations to apply."""
    root = make_project({"feats/graph.py": MIGRATED_GRAPH.replace("{audio}", "1")}, extra=MIGRATED_STORES)
    project = Project.find(root)
    frame = pl.DataFrame({"sample_uid": [1, 2, 3], "strata_dv__audio": ["a1", "a2", "a3"]})
    with make_store(project, "prod", graph=load_graph(project)) as store:
        store.write("video", frame.with_columns(strata_dv__frames=frame["strata_dv__audio"]))
    assert strata("graph", "push").code == 0
    write_graph(root, audio="2")
    made = strata("migrations", "generate", "--name", "bump_audio", "--reconcile", "video")
    assert made.code == 0, made.err
    return root


def test_apply_prints_a_plain_line_per_operation(strata: Cli, migrated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_PROGRESS_EVERY", "0")
    quiet = strata("migrations", "apply", "--dry-run", "--json")
    assert quiet.code == 0, quiet.err
    assert [s["samples"] for s in quiet.json()["steps"]] == [3, None, None]
    assert quiet.err == ""
    result = strata("migrations", "apply")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "0001_bump_audio #1: reconcile video (audio): done, 3 samples"
    assert progress_lines(result.err, "migrations ") == [
        "migrations apply 0001_bump_audio: 1/3 operations, 3 samples (N/s); #1 reconcile video",
        "migrations apply 0001_bump_audio: 2/3 operations, 3 samples (N/s); #2 recompute transcript",
        "migrations apply 0001_bump_audio: 3/3 operations, 3 samples (N/s); #3 recompute embedding",
        "migrations apply 0001_bump_audio: done in N s: 3/3 operations, 3 samples (N/s)",
    ]


def test_apply_on_a_terminal_shows_rich_progress(migrated: Path) -> None:
    shown = run_in_terminal("migrations", "apply", cwd=migrated)
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[-1] == "applied 0001_bump_audio to prod"
    assert re.search(r"0001_bump_audio\b.*\b3/3 operations\b", shown.err), shown.err
