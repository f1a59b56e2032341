"""Editing ``.env`` through python-dotenv: atomic replace, other lines kept, owner-only."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def set_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in ``path`` (created if missing); the file ends up 0600."""
    from dotenv import set_key

    set_key(path, name, value, quote_mode="always")
    os.chmod(path, 0o600)


def unset_value(path: Path, name: str) -> bool:
    """Remove ``name`` from ``path``; True if it was there."""
    if not path.is_file():
        return False
    from dotenv import dotenv_values, unset_key

    if name not in dotenv_values(path, interpolate=False):
        return False
    unset_key(path, name, quote_mode="always")
    os.chmod(path, 0o600)
    return True
