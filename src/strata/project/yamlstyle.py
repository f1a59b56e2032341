"""How a YAML file indents, as the round-trip writer keeps it (a leaf module: nothing of strata imported)."""

from __future__ import annotations

from typing import NamedTuple


class Style(NamedTuple):
    """Indentation as ``ruamel.yaml``'s ``YAML.indent`` takes it."""

    mapping: int = 2
    sequence: int = 4
    """Column of a sequence item's content, relative to its parent key."""
    offset: int = 2
    """Column of a sequence item's dash, relative to its parent key."""
