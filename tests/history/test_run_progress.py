"""The history of runs that build features or get killed: alive while they build, counts as they go.

The runs here beat every 0.2 s instead of every 30 s (``HEARTBEAT_EVERY`` set in the child) and
are judged dead after 2 s without a beat instead of 5 minutes, so a build "longer than the
threshold" takes a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strata.history import Run, RunHistory, RunStatus
from strata.project.project import Project
from tests.build.test_build import Case
from tests.helpers import Result

FEATURES = """
import os, time
from pathlib import Path
import polars as pl
import strata as st


def wait_for_release():
    release = os.environ.get("BUILD_RELEASE")
    deadline = time.monotonic() + 60
    while release and not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio", "frames"])):
    pass


class Clip(st.Feature, spec=st.FeatureSpec("clip", deps=[Video], fields=[
        st.FieldSpec("text", deps=[st.FieldDep(Video, ["audio"])]),
        st.FieldSpec("size", deps=[st.FieldDep(Video, ["frames"])])])):
    batch_size = 4

    def compute(self, inputs):
        wait_for_release()
        video = inputs[Video]
        if os.environ.get("BUILD_FAIL") and 3 in video["sample_uid"].to_list():
            raise ValueError("cannot cut sample 3")
        return video.select(
            "sample_uid", pl.concat_str(pl.lit("T:"), pl.col("audio")).alias("text"), (pl.col("frames") * 2).alias("size")
        )
"""

TAP = """
import json, os, sys, time
from pathlib import Path

print(json.dumps({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"id": {"type": "integer"}}},
                  "key_properties": ["id"]}), flush=True)
for i in range(60):
    print(json.dumps({"type": "RECORD", "stream": "s", "record": {"id": i}}), flush=True)
metric = {"type": "counter", "metric": "record_count", "value": 60, "tags": {"stream": "s"}}
print("METRIC: " + json.dumps(metric), file=sys.stderr, flush=True)
print(json.dumps({"type": "STATE", "value": {"s": 60}}), flush=True)
release = os.environ.get("TAP_RELEASE")
deadline = time.monotonic() + 60
while release and not Path(release).exists() and time.monotonic() < deadline:
    time.sleep(0.02)
"""

TARGET = """
import json, sys

for line in sys.stdin:
    if json.loads(line).get("type") == "STATE":
        print(line, end="", flush=True)
"""

STALE_AFTER = timedelta(seconds=2)
BEAT = (
    "import sys\nfrom datetime import timedelta\nfrom strata.history import model\n"
    "model.HEARTBEAT_EVERY = timedelta(seconds=0.2)\nfrom strata.cli import main\nmain(sys.argv[1:])\n"
)


class RunCase(Case):
    """A project with a root feature ``video`` (10 samples), ``clip`` computed from it, a tap and a target."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (root / "feats.py").write_text(FEATURES)
        for name, body in (("tap", TAP), ("target", TARGET)):
            path = root / name
            path.write_text(f"#!{sys.executable}\n{body}")
            path.chmod(0o755)
        (root / "catalog.json").write_text('{"streams": []}')
        (root / "strata.yml").write_text(
            "features: {entrypoints: [feats]}\n"
            "plugins:\n"
            f"  extractors: [{{name: tap-x, executable: {root}/tap, catalog: {root}/catalog.json}}]\n"
            f"  loaders: [{{name: target-y, executable: {root}/target}}]\n"
        )
        self.release = root / "release"
        self.env |= {"BUILD_RELEASE": str(self.release), "TAP_RELEASE": str(self.release)}
        self.started: list[subprocess.Popen[str]] = []
        self.source(10)

    def start(self, *blocks: str, **env: str) -> subprocess.Popen[str]:
        """``strata --json run BLOCKS`` in a child process whose runs beat every 0.2 s."""
        proc = subprocess.Popen(
            [sys.executable, "-c", BEAT, "--json", "run", *blocks],
            cwd=self.root,
            env={**os.environ, **self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        """Release what waits, and kill what still runs."""
        self.release.touch()
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)

    def runs(self) -> list[Run]:
        """The runs, judged by a history that takes ``STALE_AFTER`` without a beat for a dead process."""
        with RunHistory.open(Project(self.root), stale_after=STALE_AFTER) as history:
            return history.list()

    def wait_for(self, wanted: Callable[[Run], bool], what: str) -> Run:
        """Poll the history until its newest run satisfies ``wanted``; a failed run is an error."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = self.runs()
            if found and found[0].status is RunStatus.FAILED:
                pytest.fail(f"the run failed while waiting for {what}: {found[0].error}")
            if found and wanted(found[0]):
                return found[0]
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}")


def _running_for(seconds: float) -> Callable[[Run], bool]:
    return lambda run: (
        run.status is RunStatus.RUNNING and run.heartbeat_at - run.started_at > timedelta(seconds=seconds)
    )


@pytest.fixture
def case(tmp_path: Path) -> Iterator[RunCase]:
    made = RunCase(tmp_path)
    yield made
    made.stop()


def _finish(proc: subprocess.Popen[str]) -> Result:
    out, err = proc.communicate(timeout=60)
    return Result(proc.returncode, out, err)


@pytest.mark.parametrize("blocks", [["features:build"], ["tap-x", "target-y", "features:build"]])
def test_a_build_longer_than_the_dead_threshold_keeps_its_run_alive_and_in_its_time(
    case: RunCase, blocks: list[str]
) -> None:
    proc = case.start(*blocks)
    longer = 2 * STALE_AFTER.total_seconds()
    case.wait_for(_running_for(longer), "the run to beat through twice the dead threshold")
    case.release.touch()
    done = _finish(proc)
    assert done.code == 0, done.err
    [summary] = done.json()[-1:]
    assert summary["seconds"] >= longer  # the build is part of the run's time
    [run] = case.runs()
    assert run.status is RunStatus.SUCCESS
    assert run.duration is not None
    assert run.duration.total_seconds() >= longer


def test_a_run_killed_while_building_keeps_its_records_and_the_time_it_built(case: RunCase) -> None:
    proc = case.start("tap-x", "target-y", "features:build")
    seen = case.wait_for(_running_for(STALE_AFTER.total_seconds()), "the run to build past the dead threshold")
    assert seen.records == {"s": 60}
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [dead] = case.runs()
    assert dead.status is RunStatus.FAILED
    assert dead.error is not None
    assert dead.error.startswith("process died")
    assert dead.records == {"s": 60}
    assert dead.ended_at is not None
    assert dead.ended_at >= seen.heartbeat_at
    listed = case.strata("runs", "list")
    assert listed.out.splitlines()[1].split()[-1] == "60"


def test_records_are_in_the_history_while_the_run_goes_and_after_a_kill(case: RunCase) -> None:
    proc = case.start("tap-x", "target-y")
    seen = case.wait_for(lambda run: run.records == {"s": 60}, "the tap's 60 records in the history")
    listed = case.strata("runs", "list")
    assert listed.out.splitlines()[1].split()[-1] == "60"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [dead] = case.runs()
    assert dead.status is RunStatus.FAILED
    assert dead.records == {"s": 60}
    assert dead.ended_at is not None
    assert dead.ended_at >= seen.heartbeat_at


def test_what_a_build_did_is_in_the_run_history_and_its_log(case: RunCase) -> None:
    case.release.touch()
    failing = _finish(case.start("tap-x", "target-y", "features:build", BUILD_FAIL="1"))
    assert failing.code == 1
    assert "compute failed for some batches of clip" in failing.err
    [run] = case.runs()
    assert run.status is RunStatus.FAILED
    [clip] = run.builds
    assert clip["feature"] == "clip"
    assert (clip["added"], clip["written"]) == (10, 6)
    assert clip["written_fields"] == {"text": 6, "size": 6}
    [failure] = clip["failures"]
    assert failure["samples"] == 4
    assert failure["error"] == "ValueError: cannot cut sample 3"
    shown = case.strata("--json", "runs", "show", run.run_id)
    assert shown.code == 0, shown.err
    assert shown.json()["builds"] == run.builds
    log = shown.json()["log"]
    assert "features:build | clip: 10 added, 0 recomputed, 0 removed, 6 written (text 6, size 6)" in log
    assert "features:build | clip: batch of 4 failed (0, 1, 2, 3): ValueError: cannot cut sample 3" in log
    human = case.strata("runs", "show", run.run_id)
    assert "built        clip: 10 added, 0 recomputed, 0 removed, 6 written (text 6, size 6)" in human.out

    case.source(10, frames={5: 50, 6: 60})
    started = datetime.now(UTC)
    again = _finish(case.start("features:build"))
    assert again.code == 0, again.err
    newest = case.runs()[0]
    assert newest.started_at >= started
    [clip] = newest.builds
    assert (clip["changed"], clip["skipped"], clip["written"]) == (2, 4, 2)
    assert clip["written_fields"] == {"text": 0, "size": 2}
    shown = case.strata("--json", "runs", "show", newest.run_id).json()
    assert (
        "features:build | clip: 4 added, 2 recomputed, 0 removed, 2 written (text 0, size 2), 4 skipped" in shown["log"]
    )
    assert json.loads(again.out)[0]["log"] == shown["log_file"]
    assert Path(shown["log_file"]).stat().st_mode & 0o777 == 0o600
