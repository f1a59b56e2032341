"""Telling that a lock's holder on this machine is gone, without mistaking anyone else for dead."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from strata.state.lock import holder_is_gone, process_key

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process keys read /proc (Linux)")


def test_a_live_process_is_not_gone_a_dead_or_zombie_one_is() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as proc:
        key = process_key(proc.pid)
        assert key
        assert not holder_is_gone(key)
        proc.kill()
        deadline = time.monotonic() + 10
        while not holder_is_gone(key) and time.monotonic() < deadline:  # killed, not reaped: a zombie
            time.sleep(0.01)
        assert Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
        assert holder_is_gone(key)
        proc.wait()
    assert holder_is_gone(key)  # reaped: no such pid


def test_a_reused_pid_is_told_apart_by_its_start_time() -> None:
    boot, namespace, pid, _ = process_key().split("/")
    assert not holder_is_gone(process_key())
    assert holder_is_gone(f"{boot}/{namespace}/{pid}/1")


@pytest.mark.parametrize(
    "key",
    [
        "",  # written where /proc is missing
        "another-boot/1/1/1",  # another machine (or this one before a reboot)
        "{boot}/1/1/1",  # another PID namespace: another container
        "garbage",
    ],
)
def test_holders_elsewhere_are_left_to_their_lease(key: str) -> None:
    boot = process_key().split("/")[0]
    assert not holder_is_gone(key.format(boot=boot))
