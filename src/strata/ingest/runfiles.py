"""Files handed to plugins (config, catalog, state) in ``.strata/run/``, and what is left of them.

Each is JSON readable by its owner only (0600, in a 0700 directory), removed when the plugin
is done. Its name says which process made it, ``<name>.<host>-<pid>-<start>.<random>.config.json``
(host: a hash of the host name; start: the process's start time, so a reused pid is told
apart), so files left by a strata killed outright (SIGKILL, OOM, power loss) are removed at the
start of the next command of any kind (``remove_leftovers``), while the files of a run still
going, here or on another host sharing the directory, stay. Files whose name says no owner
(made by an older strata) go once a day old.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import RuntimeFailure, UsageError
from strata.project.files import ensure_inside, what_to_do

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from strata.project.project import Project

_STALE_SECONDS = 24 * 3600
_SUFFIX = ".config.json"
_OWNER = re.compile(r"\.([0-9a-f]{8})-(\d+)-(\d+)\.[^.]+\.config\.json\Z")


def _host() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _status(pid: int) -> tuple[str, int] | None:
    """State letter and start time (clock ticks since boot) of ``pid`` from ``/proc``; None without it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner() -> str:
    pid = os.getpid()
    status = _status(pid)
    return f"{_host()}-{pid}-{status[1] if status else 0}"


def _alive(pid: int, started: int) -> bool:
    """Whether process ``pid``, started at ``started`` (0: unknown), still runs; a zombie or a reused pid does not."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's process: alive, unless /proc says it is another one
        pass
    status = _status(pid)
    if status is None:
        return True
    state, start = status
    return state not in ("Z", "X") and started in (0, start)


@contextlib.contextmanager
def config_file(project: Project, name: str, config: Mapping[str, Any]) -> Iterator[Path]:
    """A 0600 JSON file holding ``config`` in ``.strata/run/`` (0700), deleted on exit."""
    run_dir = ensure_inside(project.system_dir / "run", project.system_dir)
    ensure_inside(run_dir / f"{name}{_SUFFIX}", run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(run_dir, 0o700)
        fd, raw = tempfile.mkstemp(prefix=f"{name}.{_owner()}.", suffix=_SUFFIX, dir=run_dir)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write in {run_dir}: {exc.strerror}", what_to_do(run_dir, exc)) from None
    path = Path(raw)
    try:
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(config, handle)
        except OSError as exc:  # a full disk shows when the file is flushed
            raise RuntimeFailure(f"cannot write {path}: {exc.strerror}", what_to_do(run_dir, exc)) from None
        yield path
    finally:
        path.unlink(missing_ok=True)


def remove_leftovers(system_dir: Path) -> None:
    """Remove the files in ``system_dir/run`` of processes that are gone; cheap when there are none."""
    try:
        paths = [path for path in (system_dir / "run").iterdir() if path.name.endswith(_SUFFIX)]
    except OSError:
        return
    here = _host()
    for path in paths:
        owner = _OWNER.search(path.name)
        with contextlib.suppress(OSError):
            if owner is None or owner.group(1) != here:
                gone = path.stat().st_mtime < time.time() - _STALE_SECONDS
            else:
                gone = not _alive(int(owner.group(2)), int(owner.group(3)))
            if gone:
                path.unlink()


def read_json_file(path: Path, option: str) -> dict[str, Any]:
    """A JSON object the user gives as ``option`` (``--state FILE``); anything else is a usage error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{option} {path} cannot be read: {exc.strerror}", f"give {option} an existing file") from None
    except ValueError as exc:
        raise UsageError(f"{option} {path} is not JSON ({exc})", "give it a file holding one JSON object") from None
    if not isinstance(data, dict):
        found = type(data).__name__
        raise UsageError(
            f"{option} {path} holds a {found}, not a JSON object", "give it a file holding one JSON object"
        )
    return data
