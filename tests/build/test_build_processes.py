"""`strata build` as processes: its workers die with it, and one build at a time per store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.test_build import Case
from tests.helpers import STRATA, Cli, wait_for


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] not in ("Z", "X"):
            out[int(entry.name)] = int(fields[1])
    return out


def descendants(pid: int) -> set[int]:
    """Live processes under ``pid``."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    return pids & set(_parents())


@pytest.fixture
def case(tmp_path: Path) -> Case:
    return Case(tmp_path)


@pytest.fixture
def slow_build(case: Case) -> Iterator[subprocess.Popen[bytes]]:
    """`strata build --workers 2` on a compute that takes minutes, once both workers compute."""
    case.source(40)
    with subprocess.Popen(
        [*STRATA, "build", "--workers", "2"],
        cwd=case.root,
        env={**os.environ, **case.env, "BUILD_SLEEP": "120"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        started: set[int] = set()
        try:
            wait_for(
                lambda: case.log.exists() and len(case.log.read_text().splitlines()) >= 2,
                "two computing workers",
                timeout=60,
            )
            started = descendants(proc.pid)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            for pid in alive(started):  # left behind by a failing test: do not let them compute on
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
def test_workers_die_when_only_the_build_process_is_killed(slow_build: subprocess.Popen[bytes]) -> None:
    workers = descendants(slow_build.pid)
    assert len(workers) >= 2
    slow_build.send_signal(signal.SIGKILL)
    slow_build.wait(timeout=30)
    wait_for(lambda: not alive(workers), "the workers to die with their parent", timeout=20)


def test_a_second_build_is_refused_while_one_runs_and_a_dead_one_blocks_nothing(
    case: Case, slow_build: subprocess.Popen[bytes]
) -> None:
    second = case.strata("build", "--workers", "1")
    assert second.code == 1
    assert second.out == ""
    assert second.err.count("\n") == 1, second.err
    assert f"a build is running on store `local` (pid {slow_build.pid})" in second.err
    assert "wait for it" in second.err
    assert "Traceback" not in second.err
    for command in (["build", "--dry-run"], ["status"]):  # readers meet the store's lock: they say who holds it
        reader = case.strata(*command)
        assert reader.code == 1, reader.out
        assert reader.err.count("\n") == 1, reader.err
        assert f"a build is running on store `local` (pid {slow_build.pid})" in reader.err
    computed = case.computed()
    assert len(computed["transcript"]) <= 2 * 4  # only the first build's two workers computed
    slow_build.send_signal(signal.SIGKILL)
    slow_build.wait(timeout=30)

    third = case.build("--workers", "1")
    assert third["code"] == 0, third["err"]
    assert case.rows("SELECT count(*) FROM transcript") == [(40,)]
    assert case.rows("SELECT count(*) FROM embedding") == [(40,)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_to_a_building_run_stops_its_workers_at_once(case: Case, signum: signal.Signals) -> None:
    case.source(40)
    proc = subprocess.Popen(
        [*STRATA, "run", "features:build"],
        cwd=case.root,
        env={**os.environ, **case.env, "BUILD_SLEEP": "120"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # strata alone gets the signal, as from a supervisor or `kill`
    )
    workers: set[int] = set()
    try:
        wait_for(lambda: case.log.exists() and len(case.log.read_text().splitlines()) >= 2, "computing workers", 60)
        workers = descendants(proc.pid)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)  # the batches sleep for 120 s: no waiting for them
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        for pid in alive(workers):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 128 + signum, err
    assert err.startswith(f"strata: interrupted by {signum.name}: run "), err
    wait_for(lambda: not alive(workers), "the workers to stop", timeout=20)


HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM transcript").fetchall()
print("holding", flush=True)
sys.stdin.read()
con.close()
print("let go", flush=True)
"""


@pytest.fixture
def reader(case: Case) -> Iterator[subprocess.Popen[str]]:
    """A process holding the store open read-only (as a `strata ui` read does) until its stdin closes.

    Sample 0 changed since the last build: the next build has something to write.
    """
    case.source(10)
    assert case.build()["code"] == 0
    case.source(10, audio={0: "changed"})
    store = str(case.root / ".strata" / "metadata.duckdb")
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, store], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "holding\n"
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def test_a_build_waits_for_a_reader_that_lets_go(case: Case, reader: subprocess.Popen[str]) -> None:
    """DuckDB refuses a writer while another process reads the file; the build tries again for a few seconds."""
    with subprocess.Popen(
        [*STRATA, "build", "--workers", "1"],
        cwd=case.root,
        env={**os.environ, **case.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as build:
        wait_for(lambda: _holds_build_lock(case), "the build to take its lock", timeout=60)
        time.sleep(0.5)  # the reader reads on a while: the build, which opens the store next, meets it held
        assert reader.stdin is not None
        assert reader.stdout is not None
        reader.stdin.close()  # the reader lets go while the build waits for the file
        assert reader.stdout.readline() == "let go\n"
        _, err = build.communicate(timeout=60)
    assert build.returncode == 0, err
    assert case.rows("SELECT text FROM transcript WHERE sample_uid = 0") == [("T:changed",)]


def test_a_reader_that_holds_the_store_is_named_not_the_build_itself(
    strata: Cli, case: Case, reader: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from strata.stores.duckdb import store

    monkeypatch.setattr(store, "LOCK_WAIT", 0.3)  # the wait is a few seconds: this reader never lets go
    monkeypatch.setenv("BUILD_LOG", str(case.log))
    done = strata("-C", str(case.root), "build", "--workers", "1")
    assert done.code == 1
    assert done.err.count("\n") == 1, done.err
    assert f"the file is locked by another process (pid {reader.pid}, " in done.err
    assert f"pid {os.getpid()})" not in done.err  # the build holds the build lock itself: it is not the holder
    assert "a build is running" not in done.err


def _holds_build_lock(case: Case) -> bool:
    from strata.build.lock import holder
    from strata.features.project import store_config
    from strata.project.project import Project

    return holder(store_config(Project(case.root))) is not None
