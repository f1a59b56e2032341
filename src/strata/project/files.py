"""Small file helpers shared by every layer (no YAML, no heavy imports)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from strata.errors import UsageError


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` in one step; a crash leaves the old file whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
