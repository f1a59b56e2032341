"""`strata run` stopped from outside: Ctrl-C (SIGINT) and SIGKILL, with real plugin processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from strata.history.model import pid_alive
from tests.helpers import STRATA, read_until_closed, run_strata, wait_for
from tests.ingest.scripted import BATCH_TARGET, STATE_ID, confirmed, plugin_pids, scripted_project

if TYPE_CHECKING:
    from collections.abc import Callable

TRIES = 4
"""Ctrl-C lost log lines in 2 of 3 tries: each test repeats it to catch the races."""


def start_run(root: Path, *blocks: str) -> subprocess.Popen[str]:
    """``strata run BLOCKS`` (default: the scripted pipeline) in a session of its own, as a terminal starts a job."""
    return subprocess.Popen(
        [*STRATA, "run", *(blocks or ("tap-slow", "target-echo"))],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def interrupt(
    proc: subprocess.Popen[str], signum: int, ready: Callable[[], bool], what: str, *, to_group: bool = False
) -> str:
    """Once ``ready()``, send ``signum`` to strata (or its whole group); its stderr. A hung strata is killed."""
    try:
        wait_for(ready, what)
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return err


def latest_run(root: Path) -> dict[str, object]:
    listed = run_strata("--json", "runs", "list", "--limit", "1", cwd=root)
    assert listed.code == 0, listed.err
    runs: list[dict[str, object]] = listed.json()
    return runs[0] if runs else {}


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
    ids=["sigint-to-the-group", "sigint-to-strata-only", "sigterm-to-strata"],
)
def test_ctrl_c_or_sigterm_stops_the_plugins_keeps_confirmed_state_and_the_whole_log(
    tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    root = tmp_path / "proj"
    work = scripted_project(root)
    for attempt in range(TRIES):
        before = len(confirmed(work))
        proc = start_run(root)
        # no waiting for the history: a run interrupted while strata opens it is still recorded
        err = interrupt(
            proc,
            signum,
            lambda: len(confirmed(work)) >= before + 3,  # noqa: B023
            "three confirmed states",
            to_group=to_group,
        )
        assert proc.returncode == 128 + signum, (attempt, err)
        assert err.count("\n") == 1, (attempt, err)
        assert "Traceback" not in err
        assert "Exception in thread" not in err
        assert err.startswith(f"strata: interrupted by {signum.name}: run "), err
        assert not [pid for pid in plugin_pids(work) if pid_alive(pid)]

        last = confirmed(work)[-1]
        stored = run_strata("state", "get", STATE_ID, cwd=root)
        assert stored.code == 0, stored.err
        assert json.loads(stored.out) == {"singer_state": last}, attempt

        run = latest_run(root)
        assert run["pid"] == proc.pid, run
        assert run["status"] == "cancelled", run
        assert run["error"] == f"interrupted by {signum.name}", run
        log = Path(str(run["log_path"])).read_text()
        assert f"target-echo | target bye after {json.dumps(last)}" in log.replace("'", '"'), (attempt, log)
        assert "tap-slow | tap bye after" in log, (attempt, log)
        assert not list((root / ".strata" / "run").iterdir()), attempt


def test_ctrl_c_stops_the_extractor_first_so_the_target_commits_what_it_received(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    work = scripted_project(root, target=BATCH_TARGET)
    proc = start_run(root)
    logs = root / ".strata" / "logs" / "runs"
    wait_for(lambda: logs.is_dir() and "tap sent 3" in "".join(p.read_text() for p in logs.iterdir()), "4 states sent")
    wait_for(lambda: latest_run(root).get("pid") == proc.pid, "the run in the history")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    log = Path(str(latest_run(root)["log_path"])).read_text()
    sent = int(log.split("tap-slow | tap bye after ")[1].split()[0])
    assert confirmed(work) == [{"bookmarks": {"s": sent}}]
    stored = run_strata("state", "get", STATE_ID, cwd=root)
    assert json.loads(stored.out) == {"singer_state": {"bookmarks": {"s": sent}}}, stored.err
    assert "1 state the target confirmed kept" in err


def config_files(root: Path) -> set[Path]:
    return set((root / ".strata" / "run").glob("*.config.json"))


def test_files_of_a_killed_run_go_at_the_next_command_and_a_live_runs_files_stay(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    work = scripted_project(root)
    live = subprocess.Popen(
        [*STRATA, "run", "--state-id-suffix", "live", "tap-slow", "target-echo"], cwd=root, start_new_session=True
    )
    try:
        wait_for(lambda: len(confirmed(work)) >= 1, "the live run under way")
        mine = config_files(root)
        env = {**os.environ, "TARGET_ECHO_PASSWORD": "hunter2-hunter2"}
        killed = subprocess.Popen([*STRATA, "run", "tap-slow", "target-echo"], cwd=root, env=env)
        wait_for(lambda: len(config_files(root) - mine) >= len(mine), "the second run's files")
        left = config_files(root) - mine
        wait_for(lambda: any("hunter2-hunter2" in path.read_text() for path in left), "the password written")
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert config_files(root) == mine | left  # nobody cleaned up after it

        listed = run_strata("state", "list", cwd=root)
        assert listed.code == 0, listed.err
        assert config_files(root) == mine
    finally:
        live.send_signal(signal.SIGINT)
        live.wait(timeout=30)
    assert not config_files(root)


def test_on_a_terminal_the_interrupted_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    import pty

    root = tmp_path / "proj"
    work = scripted_project(root)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*STRATA, "run", "tap-slow", "target-echo"], cwd=root, stdout=subprocess.PIPE, stderr=follower
    )
    os.close(follower)
    seen = b""
    try:
        while b" records (" not in seen:  # the progress line, shown after a second
            seen += os.read(leader, 4096)
        wait_for(lambda: len(confirmed(work)) >= 1, "a confirmed state")
        proc.send_signal(signal.SIGINT)
        seen += read_until_closed(leader)
    finally:
        proc.communicate(timeout=60)
        os.close(leader)
    assert proc.returncode == 130
    text = seen.decode(errors="replace")
    assert "\nstrata: interrupted by SIGINT: run " in text.replace("\r\n", "\n"), text
