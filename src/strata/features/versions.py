"""Version hashes: unambiguous encoding, definition-level versions, sample-level hashing.

Every hash input is a sequence of strings encoded as ``<byte length>:<bytes>`` one after the
other, so no two different sequences encode alike (``("ab", "c")`` vs ``("a", "bc")``), and a
missing value (an optional upstream with no row) is ``-1:`` — distinct from the empty string.

Definition level (from code alone, SHA-256, 16 hex digits = 64 bits):

    field version    = H("field", feature key, field key, code_version,
                         for each upstream field it depends on, sorted: its dotted key, its field version)
    feature version  = H("feature", for each field sorted by key: field key, field version)
    snapshot version = H("snapshot", for each feature sorted by key: feature key, feature version)

Sample level (per row, computed by the store; default MD5, first 16 hex digits = 64 bits):

    data version of field f = H(f, code_version(f),
                                for each upstream field u it depends on, sorted: dotted key of u, dv(u))

Stores compute the sample hash natively (DuckDB ``md5``, PostgreSQL ``md5``, …); this module
gives the same bytes in Python for the in-memory store and for tests.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from strata.errors import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

HASH_HEX_DIGITS = 16
"""Hex digits kept of every hash: 64 bits."""

ALGORITHMS = ("md5", "sha256")
"""Sample hash algorithms every built-in store computes natively."""

DEFAULT_ALGORITHM = "md5"

MISSING = None
"""A missing input (optional upstream without a row) encodes as ``-1:``."""


def encode(parts: Iterable[str | None]) -> str:
    """Length-prefixed concatenation; ``None`` encodes as ``-1:``."""
    out = []
    for part in parts:
        if part is None:
            out.append("-1:")
        else:
            out.append(f"{len(part.encode())}:{part}")
    return "".join(out)


def definition_hash(parts: Iterable[str]) -> str:
    """Hash of definition-level inputs (SHA-256, 64 bits kept)."""
    return hashlib.sha256(encode(parts).encode()).hexdigest()[:HASH_HEX_DIGITS]


def check_algorithm(name: str) -> str:
    """``name`` if it is a known sample hash algorithm."""
    if name not in ALGORITHMS:
        raise DefinitionError(f"unknown hash algorithm `{name}`", f"use one of: {', '.join(ALGORITHMS)}")
    return name


def sample_hash(algorithm: str, parts: Sequence[str | None]) -> str:
    """Sample-level hash of ``parts`` as every store computes it."""
    return digest_hex(algorithm, encode(parts))


def digest_hex(algorithm: str, text: str) -> str:
    """Hex digest of an already encoded string, cut to the kept digits."""
    data = text.encode()
    digest = hashlib.md5(data, usedforsecurity=False) if algorithm == "md5" else hashlib.sha256(data)
    return digest.hexdigest()[:HASH_HEX_DIGITS]
