"""Small file helpers shared by every layer (no YAML, no heavy imports)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from strata.errors import ProjectFileError, RuntimeFailure, UsageError

SQLITE_FILES = ("-wal", "-shm", "-journal")
"""Suffixes of the files SQLite keeps beside a database."""


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    r"""Replace ``path`` with ``text`` in one step; a crash or a full disk leaves the old file whole.

    A symlink is written through: its target is replaced and the link stays a link. Before it
    replaces the old file, the new one gets ``mode`` (else the old file's mode) and the old
    file's owner and group, as far as the system lets this user give them (the group needs
    membership, another owner needs root).
    Text is written as given: ``\r\n`` stays ``\r\n``.
    """
    if path.is_symlink():
        path = path.resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        old = path.stat() if path.exists() else None
        if old is not None:
            _same_owner(tmp, old)
        os.chmod(tmp, mode if mode is not None else stat.S_IMODE(old.st_mode) if old is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _same_owner(path: str, old: os.stat_result) -> None:
    """Give ``path`` the owner and group of ``old``, or as much of them as this user may."""
    new = Path(path).stat()
    if (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid):
        return
    for uid in (old.st_uid, -1):
        try:
            os.chown(path, uid, old.st_gid)
        except PermissionError:
            continue
        return


def what_to_do(path: Path, exc: OSError) -> str:
    """The instruction for a file (or directory) strata could not write, by the reason the system gave."""
    where = path if path.is_dir() else path.parent
    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return f"free some space on the file system of {where}, then try again"
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system: remount it read-write, or use a writable copy"
    return f"make {path} a {'directory' if path.is_dir() else 'file'} you can write"


def ensure_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be written in it, or raise what to do.

    For commands that write several files there (a run's catalog, state, log and history):
    one clear error before anything starts beats a failure halfway.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise RuntimeFailure(f"cannot write in {directory}: {exc.strerror}", what_to_do(directory, exc)) from None


def decode(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text; otherwise an error naming file ``name``, the line and the byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ProjectFileError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})", "save the file as UTF-8"
        ) from None


def ensure_inside(path: Path, parent: Path) -> Path:
    """``path``, after checking that it lies strictly inside ``parent`` once both are resolved.

    Plugin directories are made from names in the project file; this is the last check before
    anything is created or deleted there, so no name can reach outside ``.strata/``.
    """
    resolved, base = path.resolve(), parent.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise UsageError(
            f"refusing to create or delete {path}: it is not inside {parent}",
            "check the plugin names in the project file",
        )
    return path


def private_file(path: Path, companions: tuple[str, ...] = ()) -> Path:
    """``path`` created owner-only (0600) if missing, else narrowed to it; so are ``path + suffix`` files.

    Created before a library would create it with the umask (SQLite gives its ``-wal``, ``-shm``
    and ``-journal`` files the mode of the database; those are the ``companions``).
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _narrow(path, 0o600)
    for suffix in companions:
        _narrow(path.with_name(path.name + suffix), 0o600)
    return path


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700), created or narrowed (missing parents: as usual)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(exist_ok=True, mode=0o700)
    _narrow(path, 0o700)
    return path


def _narrow(path: Path, allowed: int) -> None:
    """Drop the permission bits of ``path`` outside ``allowed`` (a missing file is left missing)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~allowed:
        os.chmod(path, current & allowed)
