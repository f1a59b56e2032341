"""The state lock: one holder per state id, across processes and machines sharing a backend.

Every backend stores a *lease* per state id: who holds it (``pid@host``), a random token, when it
was taken, and until when it counts. Backends provide four primitives (read, create-if-absent,
replace-if-unchanged, drop-if-unchanged); the algorithm here is the same for all of them:

- no lease: create it; exactly one of several racing creators wins;
- a live lease: refuse with :class:`~strata.errors.StateLockedError`, unless ``force``;
- an expired lease (its holder stopped renewing it: a dead or hung process), a lease whose holder
  ran on this machine and has exited (see :func:`holder_is_gone`), or ``force``: replace it, on
  the condition that it is still the lease that was read, so two racing takers cannot both win.

A lock is held for a whole run, so it must be renewed: by default a daemon thread renews the
lease every ``ttl / 3`` seconds, and :meth:`StateLock.refresh` does it on demand. A holder that
dies stops renewing, and its lease is taken over ``ttl`` seconds after the last renewal, or at
once by a process on the same machine (and PID namespace), which can see that it is gone. A holder
whose lease was taken over learns it at its next renewal: :meth:`StateLock.refresh` and
:meth:`StateLock.check` raise ``StateLockedError`` from then on.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

from strata.errors import StateLockedError

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger("strata.state")

_ATTEMPTS = 8
"""Read-then-write rounds before giving up on a lease that changes under us every time."""


@dataclass(frozen=True)
class LeaseRequest:
    """The lease a process asks for: written as is, renewed with the same token."""

    holder: str
    token: str
    since: float
    ttl: float
    process: str = ""


@dataclass(frozen=True)
class Lease:
    """A lease as read from a backend. ``tag`` is what a conditional replace or drop must match."""

    holder: str
    token: str
    since: float
    expired: bool
    tag: str
    process: str = ""


class LeaseBackend(Protocol):
    """The four lease primitives every state backend gives (see :class:`strata.state.base.StateBackend`).

    Declared here, so the lock needs nothing else of a backend and ``base`` alone imports ``lock``.
    """

    def _read_lease(self, state_id: str) -> Lease | None: ...

    def _create_lease(self, state_id: str, request: LeaseRequest) -> str | None: ...

    def _replace_lease(self, state_id: str, request: LeaseRequest, tag: str) -> str | None: ...

    def _drop_lease(self, state_id: str, tag: str) -> bool: ...


def holder_name() -> str:
    """``pid@host``: who holds a lock, as error messages show it."""
    return f"{os.getpid()}@{socket.gethostname()}"


def process_key(pid: int | None = None) -> str:
    """What identifies a process for the lifetime of the machine: ``boot/pid-namespace/pid/start``.

    Linux only (``/proc``); elsewhere ``""``, and leases are judged by their expiry alone.
    """
    pid = os.getpid() if pid is None else pid
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat(f"/proc/{pid}/ns/pid").st_ino  # noqa: PTH116 - a /proc path
        start = _start_time(pid)
    except (OSError, IndexError, ValueError):
        return ""
    return f"{boot}/{namespace}/{pid}/{start}"


def _start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (the process's start, in clock ticks since boot)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    if fields[0] in {"Z", "X"}:  # a zombie has exited: only its exit status is left
        raise ValueError(fields[0])
    return fields[19]


def holder_is_gone(process: str) -> bool:
    """Whether a lease's holder was a process on this machine, in this PID namespace, that has exited.

    Only then can this process tell for sure: no such pid, a zombie, or a pid reused by a process
    that started at another time. Holders on other machines, in other containers or without a
    process key are judged by their lease alone, and so is one whose ``/proc`` entry this process
    may not read (``hidepid``).
    """
    ours = process_key()
    if not process or not ours:
        return False
    parts, our_parts = process.split("/"), ours.split("/")
    if len(parts) != len(our_parts) or parts[:2] != our_parts[:2] or not parts[2].isdigit():
        return False
    pid, start = int(parts[2]), parts[3]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, run by another user
        pass
    try:
        return _start_time(pid) != start
    except ValueError:  # a zombie
        return True
    except (OSError, IndexError):
        return False


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def locked_error(state_id: str, lease: Lease) -> StateLockedError:
    """The error for a lock held by someone else: the id, the holder, since when, what to do."""
    return StateLockedError(
        f"state `{state_id}` is locked by {lease.holder} since {_when(lease.since)}",
        "wait for it or pass --force",
    )


def acquire(backend: LeaseBackend, state_id: str, *, ttl: float, force: bool, auto_refresh: bool) -> StateLock:
    """Take the lock on ``state_id`` (the algorithm in this module's docstring)."""
    if ttl <= 0:
        msg = f"ttl must be positive, not {ttl}"
        raise ValueError(msg)
    request = LeaseRequest(holder_name(), secrets.token_hex(16), time.time(), ttl, process_key())
    for _ in range(_ATTEMPTS):
        current = backend._read_lease(state_id)  # noqa: SLF001 - the lease primitives are the backends' half of this module
        if current is None:
            tag = backend._create_lease(state_id, request)  # noqa: SLF001
        elif current.token == request.token:  # our own write, answered as a failure (a retried request)
            return StateLock(backend, state_id, request, current.tag, auto_refresh=auto_refresh)
        elif current.expired or force or holder_is_gone(current.process):
            tag = backend._replace_lease(state_id, request, current.tag)  # noqa: SLF001
        else:
            raise locked_error(state_id, current)
        if tag is not None:
            if current is not None:
                why = "its lease had expired" if current.expired else "forced" if force else "its process has exited"
                log.warning(
                    "took over the lock on %s from %s (%s)",
                    state_id,
                    current.holder,
                    why,
                    extra={"fields": {"state_id": state_id, "previous_holder": current.holder}},
                )
            return StateLock(backend, state_id, request, tag, auto_refresh=auto_refresh)
    current = backend._read_lease(state_id)  # noqa: SLF001
    if current is not None:
        raise locked_error(state_id, current)
    raise StateLockedError(f"the lock on state `{state_id}` keeps changing hands", "try again")


class StateLock:
    """A held lock. Use it as a context manager, or call :meth:`release` when done.

    Renewed by a daemon thread every ``ttl / 3`` seconds unless ``auto_refresh`` is off; then the
    holder must call :meth:`refresh` more often than every ``ttl`` seconds.
    """

    def __init__(
        self, backend: LeaseBackend, state_id: str, request: LeaseRequest, tag: str, *, auto_refresh: bool
    ) -> None:
        self.state_id = state_id
        self.holder = request.holder
        self.ttl = request.ttl
        self._backend = backend
        self._request = request
        self._tag = tag
        self._mutex = threading.Lock()
        self._lost: StateLockedError | None = None
        self._released = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if auto_refresh:
            self._thread = threading.Thread(
                target=self._renew_until_released, name=f"strata-state-lock:{state_id}", daemon=True
            )
            self._thread.start()

    @property
    def lost(self) -> bool:
        """Whether another process has taken the lock from this holder."""
        return self._lost is not None

    def check(self) -> None:
        """Raise ``StateLockedError`` if the lock was taken from this holder."""
        if self._lost is not None:
            raise self._lost

    def refresh(self) -> None:
        """Renew the lease for another ``ttl`` seconds; raise ``StateLockedError`` if it was taken."""
        with self._mutex:
            self.check()
            if self._released:
                msg = f"the lock on {self.state_id} was released"
                raise RuntimeError(msg)
            tag = self._backend._replace_lease(self.state_id, self._request, self._tag)  # noqa: SLF001
            if tag is None:
                current = self._backend._read_lease(self.state_id)  # noqa: SLF001
                if current is not None and current.token == self._request.token:  # a retried write of ours
                    self._tag = current.tag
                    return
                by = f"{current.holder} took it over" if current is not None else "it was removed"
                self._lost = StateLockedError(
                    f"the lock on state `{self.state_id}` was lost: {by} (forced, or this lease expired)",
                    "state this run writes from now on may be overwritten; run it again",
                )
                raise self._lost
            self._tag = tag

    def release(self) -> None:
        """Stop renewing and give the lock up (a lock that was taken over is left to its new holder)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._mutex:
            if self._released:
                return
            self._released = True
            if self._lost is not None:
                return
            try:
                self._backend._drop_lease(self.state_id, self._tag)  # noqa: SLF001
            except Exception as exc:  # noqa: BLE001 - an unreleased lease expires by itself; say so and go on
                log.warning("could not release the lock on %s (it expires in %ss): %s", self.state_id, self.ttl, exc)

    def _renew_until_released(self) -> None:
        interval = max(self.ttl / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except StateLockedError as exc:
                log.error("%s", exc)  # noqa: TRY400 - the holder reads it from check(); no traceback wanted
                return
            except RuntimeError:
                return
            except Exception as exc:  # noqa: BLE001 - a failed renewal is retried; the lease outlives a few
                log.warning("could not renew the lock on %s: %s", self.state_id, exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"StateLock({self.state_id!r}, holder={self.holder!r}, ttl={self.ttl})"
