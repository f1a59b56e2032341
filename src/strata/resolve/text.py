"""The canonical text of a value: what DuckDB's ``CAST(x AS VARCHAR)`` gives, written once for every store.

An aggregation folds the text of its upstream's other id columns into the data version it
computes, so every store must write a value as the same bytes (docs/stores.md, "The canonical
text of a value"). DuckDB is the reference; the in-memory store spells the rules with Polars
(:func:`polars_text`), the SQLite store calls :func:`sqlite_text` on what it keeps.
"""

from __future__ import annotations

import decimal
import math
import re
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

_SINGLE_DIGITS = 9
"""Enough significant digits to give back any single-precision value."""
_TRAILING_ZEROS = r"\.?0+$"
"""A fraction's trailing zeros (and its dot when nothing else is left) — DuckDB writes neither."""
UTC_SUFFIX = "+00"
"""How DuckDB ends the text of a zoned datetime in its session's zone, which strata keeps at UTC."""


def double_text(value: float) -> str:
    """A double as DuckDB writes it: its shortest digits, ``1e-07``/``1e+16`` below 1e-4 and from 1e16 on.

    Python's ``repr`` follows the same rule (``inf``, ``-inf``, ``nan`` and ``-0.0`` included); a NaN
    with its sign bit set is ``-nan``.
    """
    value = float(value)
    if math.isnan(value) and math.copysign(1.0, value) < 0:
        return "-nan"
    return repr(value)


def _single(value: float) -> float:
    """``value`` rounded to single precision."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _single_neighbours(value: float) -> tuple[decimal.Decimal, decimal.Decimal]:
    """The exact single-precision values just below and just above a finite, positive ``value``."""
    bits = struct.unpack("I", struct.pack("f", value))[0]
    below, above = (decimal.Decimal(struct.unpack("f", struct.pack("I", b))[0]) for b in (bits - 1, bits + 1))
    exact = decimal.Decimal(value)
    return below, (above if above.is_finite() else 2 * exact - below)  # the largest value's step up: as its step down


def single_text(value: float) -> str:
    """A single-precision value as DuckDB writes it.

    Its fewest significant digits that lie strictly between the midpoints to its neighbours
    (the shortest text that reads back as this value), laid out as a double is
    (:func:`double_text`). When a candidate on the way lies exactly on such a midpoint, or the
    value exactly halfway between two candidates, DuckDB writes the value's exact digits instead
    (``1173392.25``, ``-34219448.0``, not ``1173392.2`` and ``-34219450.0``).
    """
    value = _single(value)
    if not math.isfinite(value) or value == 0:
        return double_text(value)
    magnitude = abs(value)
    exact = decimal.Decimal(magnitude)
    below, above = _single_neighbours(magnitude)
    low, high = (exact + below) / 2, (exact + above) / 2
    for digits in range(1, _SINGLE_DIGITS + 1):
        context = decimal.Context(prec=digits, rounding=decimal.ROUND_HALF_EVEN)
        nearest = context.plus(exact)
        step = decimal.Decimal(1).scaleb(nearest.adjusted() - digits + 1)
        if abs(exact - nearest) * 2 == step or nearest in (low, high):
            break
        if low < nearest < high:
            return double_text(math.copysign(float(nearest), value))
    return double_text(value)


def fraction_trimmed(text: str) -> str:
    """``12:00:00.500000`` -> ``12:00:00.5``, ``12:00:00.000000`` -> ``12:00:00``."""
    return re.sub(_TRAILING_ZEROS, "", text) if "." in text else text


def sqlite_text(value: Any, kind: str) -> str | None:
    """The canonical text of a value the SQLite store keeps in another form.

    ``kind``: ``boolean`` (0/1), ``double``, ``float`` (single precision), ``timestamp`` and
    ``time`` (ISO text with six fraction digits), ``timestamptz`` (the same, in UTC).
    """
    if value is None:
        return None
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "double":
        return double_text(value)
    if kind == "float":
        return single_text(value)
    text = fraction_trimmed(str(value))
    return text + UTC_SUFFIX if kind == "timestamptz" else text


def polars_text(column: str, dtype: pl.DataType) -> pl.Expr:
    """Column ``column`` (of ``dtype``) as its canonical text, in Polars."""
    import polars as pl

    expr = pl.col(column)
    if dtype == pl.Float64:
        return expr.map_batches(lambda s: _each(s, double_text), return_dtype=pl.String)
    if dtype == pl.Float32:
        return expr.map_batches(lambda s: _each(s, single_text), return_dtype=pl.String)
    if isinstance(dtype, pl.Datetime):
        digits = "%.9f" if dtype.time_unit == "ns" else "%.6f"
        utc = expr.dt.convert_time_zone("UTC") if dtype.time_zone else expr
        text = utc.dt.to_string(f"%Y-%m-%d %H:%M:%S{digits}").str.replace(_TRAILING_ZEROS, "")
        return text + UTC_SUFFIX if dtype.time_zone else text
    if dtype == pl.Time:
        return expr.dt.to_string("%H:%M:%S%.6f").str.replace(_TRAILING_ZEROS, "")
    return expr.cast(pl.String)


def _each(series: pl.Series, text: Any) -> pl.Series:
    import polars as pl

    return pl.Series([None if v is None else text(v) for v in series.to_list()], dtype=pl.String)
