"""``file://DIR``: one directory per state id, Meltano's layout.

```
DIR/<state id>/state.json        {"completed": {...}, "partial": {...}, "updated_at": "..."}  (0600)
DIR/<state id>/strata.lock       the lease: holder, token, since, expires (0600)
DIR/<state id>/strata.lock.guard empty; flock()ed for the milliseconds a lease changes
```

``state.json`` is Meltano's file, so a Meltano project's state directory reads as it is. Every
write goes to a temporary file in the same directory, is fsynced, and replaces the old file with
``os.replace`` (then the directory is fsynced): a reader sees the old or the new file, never a
torn one, and a writer killed halfway leaves the old file and a stray ``.tmp``.

Lease changes happen under an exclusive ``flock`` of the guard file, which is never replaced or
deleted, so read-check-write is one step for every process on the machine (and across machines
on file systems whose locks are shared, such as NFSv4). Expiry uses the wall clock of the
process that reads the lease, so machines sharing a directory need synchronised clocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from strata.errors import StateBackendError
from strata.project.files import what_to_do
from strata.state.base import StateBackend, StateRecord
from strata.state.ids import check_state_id, is_state_id
from strata.state.lock import Lease, LeaseRequest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

STATE_FILE = "state.json"
LEASE_FILE = "strata.lock"
GUARD_FILE = "strata.lock.guard"


class FileStateBackend(StateBackend):
    """States as JSON files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"file://{self.root}"

    def _dir(self, state_id: str) -> Path:
        """The id's directory; the only place a path is made from an id."""
        path = self.root / check_state_id(state_id)
        assert path.parent == self.root, path
        return path

    def _ensure_dir(self, state_id: str) -> Path:
        directory = self._dir(state_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateBackendError(
                f"cannot create the state directory {directory}: {exc.strerror}", "check state_backend.uri"
            ) from None
        return directory

    # -- states --------------------------------------------------------------------------

    def get(self, state_id: str) -> StateRecord | None:
        path = self._dir(state_id) / STATE_FILE
        try:
            data = path.read_bytes()
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StateBackendError(f"cannot read {path}: {exc.strerror}", "check its permissions") from None
        return StateRecord.from_document(data, str(path), modified, state_id)

    def put(self, state_id: str, record: StateRecord) -> None:
        directory = self._ensure_dir(state_id)
        _write_atomically(directory / STATE_FILE, record.to_document(datetime.now(UTC)))

    def delete(self, state_id: str) -> bool:
        directory = self._dir(state_id)
        try:
            (directory / STATE_FILE).unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        _fsync_dir(directory)
        with contextlib.suppress(OSError):  # still holds a lease or its guard: keep it
            directory.rmdir()
        return True

    def ids(self, pattern: str | None = None) -> list[str]:
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = [
            entry.name
            for entry in entries
            if is_state_id(entry.name) and os.path.isfile(os.path.join(entry.path, STATE_FILE))  # noqa: PTH113, PTH118 - scandir entries are strings
        ]
        return sorted(i for i in found if pattern is None or fnmatchcase(i, pattern))

    # -- lease ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, state_id: str) -> Iterator[Path]:
        directory = self._ensure_dir(state_id)
        try:
            try:
                fd = os.open(directory / GUARD_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            except FileNotFoundError:  # a delete removed the empty directory just now
                directory = self._ensure_dir(state_id)
                fd = os.open(directory / GUARD_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateBackendError(
                f"cannot lock state `{state_id}` in {directory}: {exc.strerror}", what_to_do(directory, exc)
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory
        finally:
            os.close(fd)

    def _lease_bytes(self, directory: Path) -> bytes | None:
        try:
            return (directory / LEASE_FILE).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _read_lease(self, state_id: str) -> Lease | None:
        data = self._lease_bytes(self._dir(state_id))
        return None if data is None else _parse_lease(data)

    def _create_lease(self, state_id: str, request: LeaseRequest) -> str | None:
        with self._guard(state_id) as directory:
            if self._lease_bytes(directory) is not None:
                return None
            return _write_lease(directory, request)

    def _replace_lease(self, state_id: str, request: LeaseRequest, tag: str) -> str | None:
        with self._guard(state_id) as directory:
            data = self._lease_bytes(directory)
            if data is None or _tag(data) != tag:
                return None
            return _write_lease(directory, request)

    def _drop_lease(self, state_id: str, tag: str) -> bool:
        with self._guard(state_id) as directory:
            data = self._lease_bytes(directory)
            if data is None or _tag(data) != tag:
                return False
            (directory / LEASE_FILE).unlink()
            return True


def _tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_lease(data: bytes) -> Lease:
    """A lease file's content; one that cannot be read (never written by strata) counts as expired."""
    try:
        lease = json.loads(data)
        return Lease(
            holder=str(lease["holder"]),
            token=str(lease["token"]),
            since=float(lease["since"]),
            expired=float(lease["expires"]) < time.time(),
            tag=_tag(data),
            process=str(lease.get("process", "")),
        )
    except (ValueError, TypeError, KeyError):
        return Lease(holder="an unreadable lock file", token="", since=0.0, expired=True, tag=_tag(data))


def _write_lease(directory: Path, request: LeaseRequest) -> str:
    now = time.time()
    data = json.dumps(
        {
            "holder": request.holder,
            "process": request.process,
            "token": request.token,
            "since": request.since,
            "renewed": now,
            "expires": now + request.ttl,
        }
    ).encode()
    _write_atomically(directory / LEASE_FILE, data)
    return _tag(data)


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file (0600) in the same directory, fsync, ``os.replace``, fsync the directory."""
    try:
        try:
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except FileNotFoundError:  # a delete removed the empty directory just now
            path.parent.mkdir(exist_ok=True, mode=0o700)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StateBackendError(
            f"cannot write in {path.parent}: {exc.strerror}", what_to_do(path.parent, exc)
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)  # noqa: PTH108 - the temp name is a string from mkstemp
        if isinstance(exc, OSError):
            reason = f"cannot write {path}: {exc.strerror}"
            raise StateBackendError(reason, what_to_do(path, exc)) from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
