"""What ``strata build`` says when samples fail, were skipped for failing before, or the build is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pytest

from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.build.test_build import Case
from tests.helpers import STRATA, run_strata, wait_for, write_project

FAILURE = "ValueError: cannot transcribe sample 3"


@pytest.fixture
def case(tmp_path: Path) -> Case:
    built = Case(tmp_path)
    built.source(10)
    return built


def test_a_build_that_skips_samples_failed_before_says_so_with_their_errors(case: Case) -> None:
    first = case.strata("build", BUILD_FAIL="raise")
    assert first.code == 1
    again = case.strata("build", BUILD_FAIL="raise")
    assert again.code == 0, again.err  # the build that met the failure failed; nothing failed anew
    [row] = [line.split() for line in again.out.splitlines() if line.startswith("transcript ")]
    assert row[:6] == ["transcript", "4", "0", "0", "0", "4"]
    assert " ".join(row[7:]) == "failed before"
    assert again.out.endswith(
        f"  transcript: 4 samples skipped, they failed before on the same inputs and code (0, 1, 2, 3): {FAILURE}\n"
        "skipped samples are computed again once their inputs or their code_version change (`strata ui` lists the build errors)\n"
    )
    assert again.err == ""
    as_json = case.strata("--json", "build", BUILD_FAIL="raise")
    assert as_json.code == 0, as_json.err
    [transcript, _] = json.loads(as_json.out)["features"]
    assert transcript["skipped"] == 4
    assert transcript["skipped_errors"] == [{"samples": 4, "first": [0, 1, 2, 3], "error": FAILURE}]
    assert as_json.err == ""
    case.source(10, audio=dict.fromkeys(range(4), "new"))  # new inputs: computed again, and they work now
    fixed = case.strata("build")
    assert fixed.code == 0, fixed.err
    assert "skipped" not in fixed.out.split("\n", 2)[2]


def test_a_features_build_block_that_skips_samples_failed_before_says_so(case: Case) -> None:
    assert case.strata("run", "features:build", BUILD_FAIL="raise").code == 1
    again = case.strata("run", "features:build", BUILD_FAIL="raise")
    assert again.code == 0, again.err
    assert "built transcript: 0 written, 0 removed, 4 skipped (failed before on the same inputs and code)" in again.out
    run = again.out.split("run ")[1].split()[0]
    shown = case.strata("runs", "show", run)
    assert shown.code == 0, shown.err
    assert (
        f"transcript: 4 samples skipped, they failed before on the same inputs and code (0, 1, 2, 3): {FAILURE}"
        in shown.out
    )


COMPOSITE = """
import polars as pl
import strata as st


class Page(st.Feature, spec=st.FeatureSpec("page", id_columns=["site", "path"], fields=["html"])):
    pass


class PageLen(st.Feature, spec=st.FeatureSpec("page_len", id_columns=["site", "path"], deps=[Page],
        fields=[st.FieldSpec("size", deps=[st.FieldDep(Page, ["html"])])])):
    def compute(self, inputs):
        raise ValueError("no parser")
"""


def test_failed_ids_are_json_values_and_the_text_shows_all_of_them_without_an_ellipsis(tmp_path: Path) -> None:
    from strata.features.versions import sample_hash

    (tmp_path / "pages.py").write_text(COMPOSITE)
    write_project(tmp_path, "features: {entrypoints: [pages]}\n")
    paths = ["/a,b.html", "/c.html", '/q"uote.html']
    frame = pl.DataFrame(
        {
            "site": ["ex.com"] * 3,
            "path": paths,
            "html": ["<p>"] * 3,
            "strata_dv__html": [sample_hash("md5", ["<p>"])] * 3,
        }
    )
    project = Project(tmp_path)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("page", frame)
    done = run_strata("--json", "build", cwd=tmp_path)
    assert done.code == 1
    [failure] = json.loads(done.out)["features"][0]["failures"]
    assert failure["first"] == [["ex.com", path] for path in paths]
    assert done.err == (
        "strata: error: compute failed for some batches of page_len; "
        "see `failures` in the JSON output; those samples are skipped until their inputs or code_version change\n"
    )
    text = run_strata("build", cwd=tmp_path)  # skips them now, naming them as the failure did
    assert text.code == 0, text.err
    assert "…" not in text.out
    ids = '["ex.com","/a,b.html"], ["ex.com","/c.html"], ["ex.com","/q\\"uote.html"]'
    assert (
        f"page_len: 3 samples skipped, they failed before on the same inputs and code ({ids}): ValueError: no parser"
        in (text.out)
    )


SLOW = """
import os, time
import polars as pl
import strata as st

class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio"])): pass


class Transcript(st.Feature, spec=st.FeatureSpec("transcript", deps=[Video], fields=[
        st.FieldSpec("text", deps=[st.FieldDep(Video, ["audio"])])])):
    batch_size = 4  # three batches: the third hangs until the build is stopped

    def compute(self, inputs):
        ids = inputs.samples["sample_uid"].to_list()
        if 8 in ids and "BUILD_HANG" in os.environ:
            open(os.environ["BUILD_HANG"], "w").close()
            time.sleep(120)
        return inputs[Video].select("sample_uid", pl.col("audio").alias("text"))
"""


def test_ctrl_c_during_a_build_says_the_batches_written_stay_and_the_next_build_goes_on(tmp_path: Path) -> None:
    from strata.features.versions import sample_hash

    (tmp_path / "slow.py").write_text(SLOW)
    write_project(tmp_path, "features: {entrypoints: [slow]}\n")
    audio = [f"a{i}" for i in range(10)]
    frame = pl.DataFrame(
        {"sample_uid": range(10), "audio": audio, "strata_dv__audio": [sample_hash("md5", [a]) for a in audio]}
    )
    project = Project(tmp_path)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("video", frame)
    hang = tmp_path / "hanging"
    proc = subprocess.Popen(
        [*STRATA, "build", "--workers", "1"],
        cwd=tmp_path,
        env={**os.environ, "BUILD_HANG": str(hang)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(hang.exists, "the third batch to compute", timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130, err
    assert out == ""
    assert err == (
        "strata: interrupted by SIGINT, the batches written stay written (transcript: 8 rows); "
        "run `strata build` again to go on with the rest\n"
    )
    with duckdb.connect(str(tmp_path / ".strata" / "metadata.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM transcript").fetchall() == [(8,)]
    rest = run_strata("--json", "build", cwd=tmp_path)
    assert rest.code == 0, rest.err
    assert [(f["added"], f["written"]) for f in json.loads(rest.out)["features"]] == [(2, 2)]


def test_a_bumped_code_version_computes_the_samples_that_failed_before(case: Case) -> None:
    """The user fixed `compute` and bumped its code_version: the failed samples are computed again, not skipped."""
    assert case.strata("build", BUILD_FAIL="raise").code == 1
    module = next(case.root.glob("**/*.py"))  # the features module of the case
    text = module.read_text()
    bumped = text.replace('st.FieldSpec("text", deps=', 'st.FieldSpec("text", code_version="2", deps=', 1)
    assert bumped != text
    module.write_text(bumped)
    fixed = case.strata("build")
    assert fixed.code == 0, fixed.err
    assert "failed before" not in fixed.out
    [row] = [line.split() for line in fixed.out.splitlines() if line.startswith("transcript ")]
    assert row[5] == "0", row  # none skipped
