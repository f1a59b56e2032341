"""What every store checks before it writes: rows it can read, with ids and versions, each sample once.

The checks come in two halves so that every way of writing refuses bad rows with the same
one-line errors: :func:`check_columns` looks at column names only, and :func:`check_facts`
judges :class:`RowFacts` — counts that a frame in Python (:func:`arrow_facts`) or a SQL store
over rows it already holds (``DuckDBStore``) works out, each the cheapest way it can.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strata.errors import WriteError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import polars as pl
    import pyarrow as pa

    from strata.resolve.plan import FeaturePlan


@dataclass
class RowFacts:
    """What the row checks need to know about a batch, however it was counted."""

    nulls: dict[str, int] = field(default_factory=dict)
    """Null count per resolve-id and data-version column."""
    repeated: int = 0
    """Rows whose ids (all id columns, nulls equal) appear more than once."""
    half_children: int = 0
    """An expansion's rows with some but not all child ids null."""
    childless_parents: int = 0
    """An expansion's parents with a "no children" row and other rows too."""


def to_arrow(frame: Any) -> pa.Table:
    """Any frame Narwhals understands (Polars, pandas, PyArrow, DuckDB …) as a PyArrow table."""
    import narwhals as nw

    try:
        native = nw.from_native(frame)
    except TypeError as exc:
        raise WriteError(
            f"cannot read rows from a {type(frame).__name__}", "pass a Polars, pandas or PyArrow frame"
        ) from exc
    if isinstance(native, nw.LazyFrame):
        native = native.collect()
    raw = native.to_native()
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(raw, polars.DataFrame):  # as Polars holds it (string views): no copy
        return raw.to_arrow(compat_level=polars.CompatLevel.newest())
    return native.to_arrow()


def fit_stored(store: str, feature: object, frame: pl.DataFrame, stored: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with each column the store holds as numbers, booleans or times cast to its stored type.

    A column is taken only when each of its values survives the cast as it is: cast to the
    stored type and back, it is the value given. Else it is refused before anything is
    written, with one line naming the store, the ``feature`` and the column (a struct or text
    ``x`` for integers, ``2.5`` or ``Decimal("2.50")`` for integers, a time of day for dates,
    ``2**53 + 1`` for floats, ``2`` for booleans, ``1e300`` for 32-bit floats, a decimal's
    digits beyond the stored scale): DuckDB would fail inside its write or round, SQLite keep
    the text in its INTEGER column (and no read of the feature would work again), ClickHouse
    write null in its place, PostgreSQL fail on the type, the in-memory store turn its stored
    column into structs. Text is taken when it reads as a value of the stored type (``"5"``
    as 5); a column stored as text takes the store's own conversion (5 as ``"5"``), and a
    datetime of another unit or zone the store's own conversion too. Only columns whose type
    differs from the stored one are looked at, each by one vectorised cast and comparison.
    """
    import polars as pl

    casts = []
    for name, dtype in frame.schema.items():
        want = stored.get(name)
        if want is None or dtype in (want, pl.Null):
            continue
        if not (want.is_numeric() or want.is_temporal() or want == pl.Boolean):
            continue
        if isinstance(dtype, pl.Datetime) and isinstance(want, pl.Datetime):
            continue  # another unit or zone: the store's own conversion (and its refusals) apply, never a cut
        cast = _held(frame.get_column(name), want)
        if cast is None:
            raise WriteError(
                f"cannot write feature {feature} to {store}: column `{name}` holds {dtype.base_type()}, "
                f"stored as {want}",
                f"give it values {want} holds (text only when it is a number), or write them under a new column "
                "name; nothing was written",
            )
        casts.append(cast)
    return frame.with_columns(casts) if casts else frame


def typed_match(match: Mapping[str, Any], stored: Mapping[str, pl.DataType]) -> pl.DataFrame | None:
    """``match`` as one row of the stored types (no column for a None), or None when no stored row can equal it.

    A value the cast to its stored type changes (a datetime with a time of day for a Date
    column, 1.5 for an integer one, text that is no number) matches no row, as a comparison
    in the engine would not; 1.0 for an integer column is 1. A column the table lacks holds
    nulls only. For a backend that hands the values to its engine (``_read_matching``).
    """
    import polars as pl

    if any(c not in stored and v is not None for c, v in match.items()):
        return None
    columns = []
    for column, value in match.items():
        if value is None:
            continue
        try:
            cast = pl.Series(column, [value], dtype=stored[column], strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            return None
        if cast.null_count() or cast.to_list()[0] != value:
            return None
        columns.append(cast)
    return pl.DataFrame(columns)


def _held(values: pl.Series, want: pl.DataType) -> pl.Series | None:
    """``values`` cast to ``want`` when each survives the cast as it is (cast back, it is unchanged), else None.

    Text only has to read as a value of ``want``: ``"05"`` is 5, though 5 is written ``"5"``.
    """
    import polars as pl

    if values.dtype.is_nested() or values.dtype == pl.Object:
        return None
    try:
        cast = values.cast(want, strict=True)
    except pl.exceptions.PolarsError:
        return None
    if values.dtype in (pl.String, pl.Categorical) or isinstance(values.dtype, pl.Enum):
        return cast
    try:
        back = cast.cast(values.dtype, strict=True)
    except pl.exceptions.PolarsError:
        return None
    return cast if bool(back.eq_missing(values).all()) else None


def check_case(store: str, wanted: Iterable[str], existing: Iterable[str] = ()) -> None:
    """Refuse column names that differ only in case, for a store whose engine folds the case of names.

    DuckDB and SQLite take ``note`` and ``NOTE`` for one column even quoted: two in one batch,
    or one beside a stored column of the other case, would fail there or be written into the
    other. Checked before anything is written; ``store`` names the store in the message.
    """
    seen: dict[str, str] = {}
    for name in [*existing, *wanted]:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise WriteError(
                f"columns `{other}` and `{name}` differ only in case, which the {store} cannot tell apart",
                "rename one of them; nothing was written",
            )


def check_write(plan: FeaturePlan, table: pa.Table, *, samples: bool = False) -> None:
    """Refuse rows that lack ids or versions, or repeat a sample."""
    check_columns(plan, table.column_names, samples=samples)
    check_facts(plan, arrow_facts(plan, table), samples=samples)


def check_columns(plan: FeaturePlan, names: list[str], *, samples: bool = False) -> None:
    """Refuse rows without the id, data-version or (rows of a non-root feature) input columns."""
    what = "samples" if samples else "rows"
    present = set(names)
    missing = [c for c in plan.id_columns if c not in present]
    if missing:
        raise WriteError(
            f"{what} for `{plan.key}` lack id column(s) {', '.join(missing)}", "add them; nothing was written"
        )
    missing = [c for c in plan.dv_columns if c not in present]
    if missing:
        raise WriteError(
            f"{what} for `{plan.key}` lack data-version column(s) {', '.join(missing)}",
            "root features take one per field; other features get them from resolve_update; nothing was written",
        )
    missing = [c for c in plan.input_columns if c not in present]
    if missing and not samples:
        raise WriteError(
            f"rows for `{plan.key}` lack input column(s) {', '.join(missing)}",
            "write rows built from the increment of resolve_update, which carries them; nothing was written",
        )


def check_facts(plan: FeaturePlan, facts: RowFacts, *, samples: bool = False) -> None:
    """Refuse null ids, repeated samples, malformed expansion rows and missing data versions."""
    what = "samples" if samples else "rows"
    for column in plan.resolve_ids:  # an expansion's child ids may be null: see the children checks
        if facts.nulls.get(column):
            raise WriteError(
                f"{what} for `{plan.key}` have nulls in id column `{column}`",
                "every sample needs its ids; nothing was written",
            )
    if facts.repeated:
        raise WriteError(
            f"{what} for `{plan.key}` have {facts.repeated} rows with repeated ids",
            "write each sample once per call; nothing was written",
        )
    if facts.half_children:
        raise WriteError(
            f"rows for `{plan.key}` have some but not all of {', '.join(plan.child_ids)} null",
            "give a child all its ids, or a parent with no children one row with all of them null; nothing was written",
        )
    if facts.childless_parents:
        raise WriteError(
            f"rows for `{plan.key}` give a parent both children and a row saying it has none",
            "write either its children or the one row with null child ids; nothing was written",
        )
    for column in plan.dv_columns:
        if facts.nulls.get(column):
            raise WriteError(
                f"{what} for `{plan.key}` have nulls in `{column}`",
                "give every sample a data version; nothing was written",
            )


def arrow_facts(plan: FeaturePlan, table: pa.Table) -> RowFacts:
    """The facts of an Arrow table: nulls from its metadata, repeats by counting distinct ids first."""
    facts = RowFacts(nulls={c: table.column(c).null_count for c in (*plan.resolve_ids, *plan.dv_columns)})
    if table.num_rows == 0:
        return facts
    import polars as pl

    frame = pl.from_arrow(table.select(list(plan.id_columns)))
    assert isinstance(frame, pl.DataFrame)
    if frame.n_unique() != frame.height:  # cheap when all ids differ; count the rows only to say how many
        facts.repeated = int(frame.is_duplicated().sum())
    if plan.child_ids:
        facts.half_children, facts.childless_parents = _children_facts(plan, frame)
    return facts


def _children_facts(plan: FeaturePlan, ids: pl.DataFrame) -> tuple[int, int]:
    """Rows with some but not all child ids null; parents with a "no children" row among other rows."""
    import polars as pl

    nulls = [pl.col(c).is_null() for c in plan.child_ids]
    half = ids.filter(pl.any_horizontal(nulls) & ~pl.all_horizontal(nulls)).height
    childless, rows = "strata_childless", "strata_rows"  # beside the parent ids: `strata_` is reserved
    parents = ids.group_by(list(plan.resolve_ids)).agg(
        pl.all_horizontal(nulls).any().alias(childless), pl.len().alias(rows)
    )
    return half, parents.filter(pl.col(childless) & (pl.col(rows) > 1)).height


def sql_facts_queries(plan: FeaturePlan, source: str) -> tuple[str, str]:
    """Two SELECTs over ``source`` giving the facts in one row each (see :func:`sql_facts`).

    The first scans once for nulls and half-null children; the second groups by the ids (and,
    for an expansion, by the parent ids) for repeats and childless parents.
    """
    from strata.resolve.sql import ident, ids_list

    counted = [f"count(*) FILTER (WHERE {ident(c)} IS NULL)" for c in (*plan.resolve_ids, *plan.dv_columns)]
    if plan.child_ids:
        any_null = " OR ".join(f"{ident(c)} IS NULL" for c in plan.child_ids)
        all_null = " AND ".join(f"{ident(c)} IS NULL" for c in plan.child_ids)
        counted.append(f"count(*) FILTER (WHERE ({any_null}) AND NOT ({all_null}))")
        parents = ids_list(plan.resolve_ids)
        # the counts sit beside the parent ids: named as no id column can be (`strata_` is reserved)
        n, total, childless = ident("strata_n"), ident("strata_total"), ident("strata_childless")
        grouped = (
            f"SELECT coalesce(sum({n}) FILTER (WHERE {n} > 1), 0), count(*) FILTER (WHERE {childless} AND {total} > 1) "
            f"FROM (SELECT sum({n}) OVER (PARTITION BY {parents}) AS {total}, {n}, {childless} FROM "
            f"(SELECT {parents}, count(*) AS {n}, bool_and({all_null}) AS {childless} FROM {source} "
            f"GROUP BY {ids_list(plan.id_columns)}))"
        )
    else:
        counted.append("0")
        grouped = (
            f"SELECT coalesce(sum(n), 0), 0 FROM (SELECT count(*) AS n FROM {source} "
            f"GROUP BY {ids_list(plan.id_columns)} HAVING count(*) > 1)"
        )
    return f"SELECT {', '.join(counted)} FROM {source}", grouped


def sql_counts_query(plan: FeaturePlan, source: str) -> str | None:
    """One SELECT over ``source``: its rows, the null counts of the facts, its rows beyond one per id.

    One pass where :func:`sql_facts_queries` takes two: the nulls as ``count(*) - count(c)``,
    which DuckDB answers from its statistics when ``source`` is a whole table, and the repeats
    as a distinct count of the ids, cheaper than grouping them and counting the groups. None for
    an expansion, whose child ids may be null: its facts take both queries.
    """
    if plan.child_ids:
        return None
    repeats = f"count(*) - count(DISTINCT {_distinct(plan)})"
    return f"SELECT {', '.join(['count(*)', *_null_counts(plan), repeats])} FROM {source}"


def _null_counts(plan: FeaturePlan) -> list[str]:
    """Select items counting the nulls of each resolve id and data version (from statistics, over a whole table)."""
    from strata.resolve.sql import ident

    return [f"count(*) - count({ident(c)})" for c in (*plan.resolve_ids, *plan.dv_columns)]


def _distinct(plan: FeaturePlan) -> str:
    """What ``count(DISTINCT ...)`` counts to tell samples apart: the id column, or the row of them (nulls equal)."""
    from strata.resolve.sql import ids_list

    ids = ids_list(plan.id_columns)
    return ids if len(plan.id_columns) == 1 else f"({ids})"


BITMAP_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
"""Id types whose distinct values DuckDB counts as bits (``bitstring_agg``), with no hash table."""
BITMAP_BITS_PER_ROW = 16
"""Ids are counted as bits while the span from the least to the greatest is at most this many bits per row.

Two bytes per row (per thread): a hash table of the ids takes 16 and more. Counting 10M distinct
ids: 0.07 CPU s as bits against 1.36 s in ``count(DISTINCT)``'s hash table (1M: 0.008 against 0.075).
"""


def sql_bounds_query(plan: FeaturePlan, source: str) -> str | None:
    """:func:`sql_counts_query` with the least and greatest id and the id's type in place of the repeats.

    The first of two passes: the second, :func:`sql_bitmap_query`, counts the ids as bits between
    the two when :func:`bitmap_fits`. None unless there is one id column (and no child ids).
    """
    if plan.child_ids or len(plan.id_columns) != 1:
        return None
    from strata.resolve.sql import ident

    column = ident(plan.id_columns[0])
    bounds = [f"min({column})", f"max({column})", f"typeof(min({column}))"]  # the type: a constant, folded by DuckDB
    return f"SELECT {', '.join(['count(*)', *_null_counts(plan), *bounds])} FROM {source}"


def bitmap_fits(kind: str, rows: int, low: Any, high: Any) -> bool:
    """Whether ids of SQL type ``kind`` from ``low`` to ``high`` (``rows`` of them) are counted as bits."""
    if kind not in BITMAP_TYPES or type(low) is not int or type(high) is not int:
        return False
    return high - low + 1 <= BITMAP_BITS_PER_ROW * max(rows, 1024)


def sql_bitmap_query(plan: FeaturePlan, source: str, kind: str, low: int, high: int) -> str:
    """One SELECT over ``source``: its rows beyond one per id, the ids counted as bits from ``low`` to ``high``.

    Null ids count as repeats, as in :func:`sql_counts_query`; so do ids outside the bounds (rows
    that changed since the first pass), which the bitmap leaves out: never a repeat missed.
    """
    from strata.resolve.sql import ident

    column = ident(plan.id_columns[0])
    lowest, highest = f"CAST('{low}' AS {kind})", f"CAST('{high}' AS {kind})"
    bits = f"bitstring_agg({column}, {lowest}, {highest}) FILTER (WHERE {column} BETWEEN {lowest} AND {highest})"
    return f"SELECT count(*) - coalesce(bit_count({bits}), 0) FROM {source}"


def sql_distinct_query(plan: FeaturePlan, source: str) -> str:
    """One SELECT over ``source``: its rows beyond one per id (nulls count), from a hash table of the ids."""
    return f"SELECT count(*) - count(DISTINCT {_distinct(plan)}) FROM {source}"


def sql_counts(plan: FeaturePlan, row: tuple[Any, ...]) -> tuple[int, RowFacts, bool]:
    """The rows, the facts but the repeats, and whether any id repeats, from the row of :func:`sql_counts_query`.

    How many rows repeat is left to the grouped query of :func:`sql_facts_queries`, run only
    when some do.
    """
    columns = (*plan.resolve_ids, *plan.dv_columns)
    nulls = {c: int(n) for c, n in zip(columns, row[1:-1], strict=True)}
    return int(row[0]), RowFacts(nulls=nulls), bool(row[-1])


def sql_facts(plan: FeaturePlan, counted: tuple[Any, ...], grouped: tuple[Any, ...]) -> RowFacts:
    """:class:`RowFacts` from the rows the two queries of :func:`sql_facts_queries` returned."""
    columns = (*plan.resolve_ids, *plan.dv_columns)
    nulls = {c: int(n) for c, n in zip(columns, counted, strict=False)}
    return RowFacts(
        nulls=nulls,
        repeated=int(grouped[0] or 0),
        half_children=int(counted[len(columns)] or 0),
        childless_parents=int(grouped[1] or 0),
    )
