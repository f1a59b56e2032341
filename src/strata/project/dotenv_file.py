"""Editing ``.env`` through python-dotenv: atomic replace, other lines kept, owner-only."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from strata.errors import RuntimeFailure

if TYPE_CHECKING:
    from pathlib import Path


def set_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in ``path``; the file is owner-only (0600) before the value is written.

    A new file is created 0600 and an existing one is narrowed to 0600 first: python-dotenv's
    rewrite keeps the mode of the file it replaces.
    """
    from dotenv import set_key

    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        set_key(path, name, value, quote_mode="always")
    except OSError as exc:
        raise _write_error(path, exc) from exc


def unset_value(path: Path, name: str) -> bool:
    """Remove ``name`` from ``path``; True if it was there."""
    if not path.is_file():
        return False
    from dotenv import dotenv_values, unset_key

    try:
        if name not in dotenv_values(path, interpolate=False):
            return False
        os.chmod(path, 0o600)
        unset_key(path, name, quote_mode="always")
    except OSError as exc:
        raise _write_error(path, exc) from exc
    return True


def _write_error(path: Path, exc: OSError) -> RuntimeFailure:
    return RuntimeFailure(f"cannot write {path.name}: {exc.strerror}", f"make {path} a file you can write")
