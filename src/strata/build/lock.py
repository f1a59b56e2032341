"""One build at a time per store file.

A build holds an exclusive ``flock`` on ``<store file>.build.lock`` and writes its pid there. A
second build is refused at once with one line naming that pid (``BuildRunningError``) instead of
meeting the store's own lock error; the kernel drops the lock when its holder dies, so a killed
build never blocks the next one. Commands that only read (``build --dry-run``, ``status``) and
fail to open a store look here to say why. A store with no file (in memory) is private to its
process and has no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import TYPE_CHECKING, Protocol

from strata.errors import BuildRunningError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class StoreConfig(Protocol):
    """What the lock needs of a store's configuration (:class:`strata.features.project.StoreConfig`)."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path | None: ...


_RETRIES = 5
"""Tries (0.1 s apart) before a build is refused: a reader's probe holds the lock for microseconds."""


def _path(config: StoreConfig) -> Path | None:
    if config.path is None or str(config.path) == ":memory:":
        return None
    return config.path.with_name(config.path.name + ".build.lock")


@contextlib.contextmanager
def build_lock(config: StoreConfig) -> Iterator[None]:
    """Hold the store's build lock for the block, or raise ``BuildRunningError``."""
    path = _path(config)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for attempt in range(_RETRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _RETRIES - 1:
                    raise running(config, _holder(fd)) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


def holder(config: StoreConfig) -> str | None:
    """``pid N`` (or ``pid unknown``) of the build holding the store's lock; None when no build runs."""
    path = _path(config)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no build ever ran on this store
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        return None
    finally:
        os.close(fd)


def running(config: StoreConfig, who: str) -> BuildRunningError:
    """The error for a store a build holds."""
    return BuildRunningError(
        f"a build is running on store `{config.name}` ({who})", "wait for it to finish, or stop that process"
    )


def _holder(fd: int) -> str:
    pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
