"""Feature and field keys.

A feature key is a path (``"media/video"``); a field key is a name. Both are checked when made,
because they become table and column names in every store: parts are letters, digits, ``_`` and
``-`` (features) or letters, digits and ``_`` (fields), and never contain ``__``, which joins key
parts in table names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from strata.errors import DefinitionError

_FEATURE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True, order=True)
class FeatureKey:
    """A feature's identity: a path of parts, written ``"a/b"``."""

    parts: tuple[str, ...]

    def __init__(self, key: str | tuple[str, ...] | list[str] | FeatureKey) -> None:
        if isinstance(key, FeatureKey):
            parts = key.parts
        elif isinstance(key, str):
            parts = tuple(key.split("/"))
        else:
            parts = tuple(key)
        for part in parts:
            if not isinstance(part, str) or not _FEATURE_PART.fullmatch(part) or "__" in part:
                raise DefinitionError(
                    f"`{'/'.join(map(str, parts))}` is not a valid feature key",
                    "use parts of letters, digits, `_` and `-` joined by `/` (no `__`)",
                )
        if not parts:
            raise DefinitionError("a feature key cannot be empty", "give it a name such as `video`")
        object.__setattr__(self, "parts", parts)

    def __str__(self) -> str:
        return "/".join(self.parts)

    def __repr__(self) -> str:
        return f"FeatureKey({str(self)!r})"

    @property
    def table_name(self) -> str:
        """The table name in SQL stores: parts joined with ``__``, ``-`` as ``_``."""
        return "__".join(self.parts).replace("-", "_")

    @property
    def dotted(self) -> str:
        """``media.video``: how the key appears in a fully qualified field key."""
        return ".".join(self.parts)


@dataclass(frozen=True, order=True)
class FieldKey:
    """A field's name within its feature."""

    name: str

    def __init__(self, key: str | FieldKey) -> None:
        name = key.name if isinstance(key, FieldKey) else key
        if not isinstance(name, str) or not _FIELD.fullmatch(name) or "__" in name:
            raise DefinitionError(
                f"`{name}` is not a valid field key",
                "use a name of letters, digits and `_`, starting with a letter (no `__`)",
            )
        object.__setattr__(self, "name", name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"FieldKey({self.name!r})"


def feature_key_of(ref: Any) -> FeatureKey:
    """The key of a feature class, a key, or a key string."""
    spec = getattr(ref, "spec", None)
    if spec is not None and hasattr(spec, "key"):
        return spec.key  # type: ignore[no-any-return]
    return FeatureKey(ref)
