"""Key paths into the project file (``["plugins", "loaders", 0, "name"]``): how they are keyed and shown.

Kept apart from ``yamlfile`` so the project can look up lines without importing ruamel.yaml.
"""

from __future__ import annotations

import json


def path_key(path: list[str | int]) -> str:
    """A string key for a key path (``json.dumps`` keeps ints and strings apart)."""
    return json.dumps(path)


def dotted(parts: list[str | int]) -> str:
    """Render a key path as ``plugins.extractors[0].name``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
