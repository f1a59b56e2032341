"""Setting values given as text (the command line, ``.env``, the environment) parsed by their kind."""

from __future__ import annotations

import json
from typing import Any

from strata.errors import SettingError

OBJECT_KINDS = {"object", "array"}
"""Kinds whose values are JSON text."""
_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def parse_value(raw: str, kind: str | None, where: str) -> Any:
    """Parse ``raw`` as ``kind``; with no kind, JSON scalars/objects are parsed, else text.

    ``where`` names the setting or variable in errors; the value itself is never shown (it may
    be a secret).
    """
    try:
        if kind == "integer":
            return int(raw)
        if kind == "decimal":
            return float(raw)
        if kind == "boolean":
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(kind)
        if kind in OBJECT_KINDS:
            value = json.loads(raw)
            expected = dict if kind == "object" else list
            if not isinstance(value, expected):
                raise ValueError(kind)
            return value
    except ValueError:
        assert kind is not None  # only the kinds above raise
        article = "an" if kind[0] in "aeiou" else "a"
        raise SettingError(f"{where} is not a valid {kind}", f"give {article} {kind} value") from None
    if kind is None:
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        return value if not isinstance(value, str) else raw
    return raw
