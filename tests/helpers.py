"""Helpers shared by the tests: CLI results, subprocess runs, project files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATA = [sys.executable, "-m", "strata"]


@dataclass
class Result:
    """What a CLI call gave back."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]
"""The ``strata`` fixture: call it with CLI arguments."""


def run_strata(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float | None = None
) -> Result:
    """Run the real ``strata`` in a subprocess (for plugins that share the terminal); killed after ``timeout`` s."""
    done = subprocess.run(
        [*STRATA, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


def run_in_terminal(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """Run the real ``strata`` with stderr on a pseudo-terminal (120 columns) and stdout on a pipe.

    ``err`` is what the terminal received, its escape sequences removed and carriage returns
    turned into line ends, so every redraw of a live display stays readable.
    """
    import fcntl
    import pty
    import struct
    import termios
    import threading

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    terminal = {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(
        [*STRATA, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, **terminal, **(env or {})},
    )
    os.close(follower)
    received: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the last holder of the terminal closed it
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        os.close(leader)
    text = _ESCAPES.sub("", b"".join(received).decode("utf-8", "replace"))
    return Result(process.returncode, out.decode(), text.replace("\r\n", "\n").replace("\r", "\n"))


def meltano_bin() -> Path | None:
    """Meltano 4.4.1 from ``TEST_MELTANO_BIN`` or the bench venv (``bench/startup.py`` builds it), if present."""
    given = os.environ.get("TEST_MELTANO_BIN")
    bench = Path(__file__).parent.parent / "bench" / ".venvs" / "meltano" / "bin" / "meltano"
    candidate = Path(given) if given else bench
    return candidate if candidate.is_file() else None


def record_again(fixture: Path, work: Path, recorded: str, timeout: float = 600) -> Path:
    """A copy of ``fixture`` without its ``recorded`` files, after its ``record.sh`` ran again with Meltano.

    The test is skipped (saying why) without Meltano (see ``meltano_bin``). Pip's settings are
    passed on, for a ``record.sh`` that installs plugins.
    """
    import shutil

    import pytest

    meltano = meltano_bin()
    if meltano is None:
        pytest.skip("no Meltano venv: set TEST_MELTANO_BIN or build bench/.venvs/meltano")
    copy = work / "fixture"
    shutil.copytree(fixture, copy, ignore=shutil.ignore_patterns(recorded))
    pip = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k.endswith(("_CA_BUNDLE", "_CERT_FILE"))}
    env = {**pip, "PATH": "/usr/bin:/bin", "HOME": str(work), "MELTANO": str(meltano), "TMPDIR": str(work)}
    subprocess.run(["/bin/sh", "record.sh"], cwd=copy, env=env, check=True, timeout=timeout)
    return copy


def recorded_by_meltano(fixture: Path, work: Path, timeout: float = 600) -> dict[Path, bytes]:
    """Every file ``fixture/record.sh`` writes under ``expected/`` when run again now with Meltano."""
    return files_under(record_again(fixture, work, "expected", timeout) / "expected")


def files_under(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` (its path relative to ``root``) with its content."""
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def write_project(root: Path, text: str, name: str = "strata.yml") -> Path:
    """Write a project file from an indented literal."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content, to prove a failed command changed nothing.

    Plugin venvs and the parse cache (derived data, rebuilt at will) are left out.
    """
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {"plugins", "cache"} & set(p.relative_to(root).parts)
    }


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """A small real file system mounted at ``path`` (root only); the test is skipped, with why, elsewhere."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)  # noqa: S607


def remount_read_only(path: Path) -> None:
    """Make the tmpfs at ``path`` read-only, as a file system mounted ``ro`` is."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)  # noqa: S607


def fill(directory: Path) -> None:
    """Take every free byte of the file system holding ``directory``."""
    import errno

    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    failure: OSError | None = None
    try:
        while failure is None:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as exc:
                failure = exc
    finally:
        os.close(fd)
    assert failure.errno == errno.ENOSPC


def computed(log: Path) -> dict[str, list[Any]]:
    """Sample ids handed to compute per feature, from a JSON-lines log test features write; the log is emptied."""
    out: dict[str, list[Any]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            out.setdefault(entry["feature"], []).extend(entry["ids"])
        log.unlink()
    return out


def read_until_closed(fd: int) -> bytes:
    """Everything written to the pseudo-terminal ``fd`` until the child at the other end closes it."""
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            return seen
        if not chunk:
            return seen
        seen += chunk


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def assert_meltano_still_prints(fixture: Path, tmp_path: Path) -> None:
    """Run the fixture's ``record.sh`` with Meltano again: every file under ``expected/`` comes out byte for byte."""
    assert recorded_by_meltano(fixture, tmp_path) == files_under(fixture / "expected")


def changed_lines(before: str, after: str) -> list[str]:
    """The removed (``-``) and added (``+``) lines between two texts, line ends kept."""
    import difflib

    diff = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]
