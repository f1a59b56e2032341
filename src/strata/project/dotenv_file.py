"""Editing ``.env``: other lines kept, owner-only, replaced atomically, through a symlink.

Lines are read with python-dotenv's parser and values written in its quoting, so what it reads
back is what was set. The file is rewritten with ``write_atomic`` (not python-dotenv's own
rewrite): a failed write, a full disk included, leaves the old file and no temporary file, and
a ``.env`` that is a symlink keeps pointing where it did while its target gets the new text.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from strata.errors import RuntimeFailure
from strata.project.files import decode, what_to_do, write_atomic

if TYPE_CHECKING:
    from pathlib import Path


def line_of(name: str, value: str) -> str:
    """``NAME='value'`` as this module writes it (and python-dotenv reads it back), without the newline."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{name}='{escaped}'"


def set_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in ``path`` (0600 afterwards, whatever its mode was)."""
    line = line_of(name, value) + "\n"
    lines, replaced = [], False
    for key, original in _lines(path):
        if key == name:
            lines.append(line)
            replaced = True
        else:
            lines.append(original)
    if not replaced:
        if lines and not lines[-1].endswith("\n"):
            lines.append("\n")
        lines.append(line)
    _write(path, "".join(lines))


def unset_value(path: Path, name: str) -> bool:
    """Remove ``name`` from ``path``; True if it was there."""
    if not path.is_file():
        return False
    lines = _lines(path)
    kept = [original for key, original in lines if key != name]
    if len(kept) == len(lines):
        return False
    _write(path, "".join(kept))
    return True


def _lines(path: Path) -> list[tuple[str | None, str]]:
    """``(name, original text)`` of every line of ``path`` (none when it does not exist)."""
    from dotenv.parser import parse_stream

    try:
        text = decode(path.read_bytes(), path.name) if path.exists() else ""
    except OSError as exc:
        raise _write_error(path, exc) from exc
    return [(binding.key, binding.original.string) for binding in parse_stream(io.StringIO(text))]


def _write(path: Path, text: str) -> None:
    try:
        write_atomic(path, text, mode=0o600)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> RuntimeFailure:
    return RuntimeFailure(f"cannot write {path.name}: {exc.strerror}", what_to_do(path, exc))
