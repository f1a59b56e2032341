"""The Polars path of increment resolution, for the in-memory store.

The same rules as ``sql.py``, spelled with Polars expressions: a field is stale when its code
version differs or an input's data version differs (null-safe); hashes are computed only for the
rows that are added or changed, with the same encoding and algorithm as the SQL stores, so both
give byte-identical data versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from strata.features.versions import digest_hex
from strata.resolve.plan import (
    CAUSE_CODE,
    CAUSE_DATA,
    DELETED,
    MIXED,
    SEQ,
    FeaturePlan,
    FieldPlan,
    UpstreamPlan,
    input_column,
)
from strata.resolve.text import polars_text

if TYPE_CHECKING:
    from collections.abc import Mapping


def encoded(expr: pl.Expr) -> pl.Expr:
    """``<byte length>:<value>``, or ``-1:`` when null (as ``Dialect.encoded``)."""
    return pl.when(expr.is_null()).then(pl.lit("-1:")).otherwise(expr.str.len_bytes().cast(pl.String) + ":" + expr)


def hash_column(algorithm: str, expr: pl.Expr) -> pl.Expr:
    """The hex digest (64 bits) of each string ``expr`` gives."""

    def digest(series: pl.Series) -> pl.Series:
        return pl.Series([None if v is None else digest_hex(algorithm, v) for v in series], dtype=pl.String)

    return expr.map_batches(digest, return_dtype=pl.String)


def dv_expr(algorithm: str, field: FieldPlan) -> pl.Expr:
    """New data version of ``field`` from the input columns."""
    pieces: list[pl.Expr] = []
    for constant, column in field.hash_parts():
        pieces.append(pl.lit(constant))
        if column is not None:
            pieces.append(encoded(pl.col(column)))
    return hash_column(algorithm, pl.concat_str(pieces)).alias(field.dv_column)


def zones_like(frame: pl.DataFrame, like: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each zoned datetime column in the zone ``like`` has it, the same instants.

    A store may give zoned ids back in another zone than they were written in (SQLite in UTC,
    DuckDB in its session's): compared with a user's frame, the instants must meet.
    """
    zoned = {
        c: t
        for c, t in like.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone and c in frame.columns and frame.schema[c] != t
    }
    return frame.with_columns(pl.col(c).dt.convert_time_zone(t.time_zone) for c, t in zoned.items()) if zoned else frame  # type: ignore[arg-type]


def live(frame: pl.DataFrame | None, keys: tuple[str, ...], candidates: pl.DataFrame | None) -> pl.DataFrame | None:
    """Rows not deleted, narrowed to the candidate ids."""
    if frame is None:
        return None
    out = frame.filter(~pl.col(DELETED))
    if candidates is not None:
        out = out.join(candidates.select(keys), on=list(keys), how="semi", nulls_equal=True)
    return out


def padded(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame`` with a null text column for each of ``columns`` it lacks, as ``sql.padded``."""
    lacking = [c for c in columns if c not in frame.columns]
    return frame.with_columns(pl.lit(None, pl.String).alias(c) for c in lacking) if lacking else frame


def upstream_frame(
    algorithm: str, plan: FeaturePlan, up: UpstreamPlan, frame: pl.DataFrame | None, candidates: pl.DataFrame | None
) -> pl.DataFrame | None:
    """One upstream's live rows as input columns keyed by the resolve ids."""
    keys = plan.resolve_ids
    rows = live(frame, keys, candidates)
    if rows is None:
        return None
    cols = up.input_columns()
    rows = padded(rows, [f"strata_dv__{f}" for f in cols])
    if up.lineage.kind != "aggregation":
        return rows.select([*keys, *(pl.col(f"strata_dv__{f}").alias(c) for f, c in cols.items())])
    rest = [c for c in up.id_columns if c not in keys]
    ids = [encoded(polars_text(c, rows.schema[c])) for c in rest]
    per_row = [pl.concat_str([*ids, encoded(pl.col(f"strata_dv__{f}"))]).alias(c) for f, c in cols.items()]
    grouped = (
        rows.sort(rest)
        .with_columns(per_row)
        .group_by(list(keys), maintain_order=True)
        .agg(pl.col(c).str.join("") for c in cols.values())
    )
    return grouped.with_columns(hash_column(algorithm, pl.col(c)).alias(c) for c in cols.values())


def expected_frame(
    algorithm: str, plan: FeaturePlan, tables: Mapping[str, pl.DataFrame | None], candidates: pl.DataFrame | None
) -> pl.DataFrame | None:
    """Every sample the feature should have, with its inputs; None when a required upstream is empty."""
    keys = list(plan.resolve_ids)
    frames = {u.key: upstream_frame(algorithm, plan, u, tables.get(u.table), candidates) for u in plan.upstreams}
    required = [u for u in plan.upstreams if not u.optional]
    optional = [u for u in plan.upstreams if u.optional]
    if any(frames[u.key] is None for u in required):
        return None
    if required:
        base = frames[required[0].key]
        assert base is not None
        for up in required[1:]:
            other = frames[up.key]
            assert other is not None
            base = base.join(other, on=keys, how="inner", nulls_equal=True)
    else:
        present = [f.select(keys) for u in optional if (f := frames[u.key]) is not None]
        if not present:
            return None
        base = pl.concat(present).unique()
    for up in optional:
        other = frames[up.key]
        if other is None:
            base = base.with_columns(pl.lit(None, pl.String).alias(c) for c in up.input_columns().values())
        else:
            base = base.join(other, on=keys, how="left", nulls_equal=True)
    return base


def current_frame(
    plan: FeaturePlan, frame: pl.DataFrame | None, candidates: pl.DataFrame | None
) -> pl.DataFrame | None:
    """The feature's live rows at resolve granularity."""
    keys = list(plan.resolve_ids)
    stored = [*plan.input_columns, *plan.cv_columns, *plan.dv_columns]
    frame = None if frame is None else padded(frame, stored)
    if plan.child_ids and frame is not None:  # as sql.current_select: "no children" rows count, disagreement is MIXED
        childless = pl.all_horizontal(pl.col(c).is_null() for c in plan.child_ids)
        rows = frame.filter(~pl.col(DELETED) | childless)
        if candidates is not None:
            rows = rows.join(candidates.select(keys), on=keys, how="semi", nulls_equal=True)
        agreed = [
            pl.when(pl.col(c).n_unique() == 1).then(pl.col(c).first().cast(pl.String)).otherwise(pl.lit(MIXED)).alias(c)
            for c in stored
        ]
        return rows.group_by(keys).agg(agreed)
    alive = live(frame, plan.resolve_ids, candidates)
    return None if alive is None else alive.select([*keys, *stored])


def code_stale(field: FieldPlan) -> pl.Expr:
    """Whether the stored code version of ``field`` is none of its current ones (as ``sql.code_stale``)."""
    return pl.all_horizontal(_differs(field.cv_column, pl.lit(v, pl.String)) for v in field.current_code_versions)


def _differs(left: str, right: str | pl.Expr) -> pl.Expr:
    other = right if isinstance(right, pl.Expr) else pl.col(right)
    return pl.col(left).ne_missing(other)


def increment(
    algorithm: str,
    plan: FeaturePlan,
    expected: pl.DataFrame | None,
    current: pl.DataFrame | None,
    id_schema: Mapping[str, pl.DataType] | None = None,
) -> dict[str, pl.DataFrame]:
    """``added``, ``changed`` and ``removed`` frames.

    ``id_schema`` types the ids when neither side exists (the store knows them from elsewhere).
    """
    keys = list(plan.resolve_ids)
    carried = [*keys, *plan.input_columns]
    cause_cols = [f.cause_column for f in plan.fields]
    if expected is None or current is None:
        strings = (*plan.input_columns, *plan.cv_columns, *plan.dv_columns)
        id_types = expected if expected is not None else current
        fallback = id_schema or {}
        schema = {k: (id_types.schema[k] if id_types is not None else fallback.get(k, pl.String)) for k in keys}
        empty = pl.DataFrame(schema={**schema, **dict.fromkeys(strings, pl.String)})
        expected = (
            empty.select([*keys, *plan.input_columns, *(plan.dv_columns if plan.is_root else ())])
            if expected is None
            else expected
        )
        current = empty if current is None else current

    def with_dvs(frame: pl.DataFrame) -> pl.DataFrame:
        if plan.is_root:
            return frame.select([*keys, *plan.dv_columns])
        out = frame.select(carried)
        if len(out) == 0:
            return out.with_columns(pl.lit(None, pl.String).alias(f.dv_column) for f in plan.fields)
        return out.with_columns(dv_expr(algorithm, f) for f in plan.fields)

    added = with_dvs(expected.join(current, on=keys, how="anti", nulls_equal=True))
    removed = current.join(expected, on=keys, how="anti", nulls_equal=True).select(keys)
    joined = expected.join(current, on=keys, how="inner", nulls_equal=True, suffix="__cur")
    causes = []
    for field in plan.fields:
        conditions = [(code_stale(field), CAUSE_CODE)]
        if plan.is_root:
            conditions.append((_differs(f"{field.dv_column}__cur", field.dv_column), CAUSE_DATA))
        else:
            for item in field.inputs:
                column = input_column(item)
                conditions.append((_differs(f"{column}__cur", column), item.dotted))
        parts = [pl.when(cond).then(pl.lit(cause)) for cond, cause in conditions]
        causes.append(pl.concat_str(parts, separator=",", ignore_nulls=True).alias(field.cause_column))
    joined = joined.with_columns(causes).with_columns(
        pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in cause_cols
    )
    stale = joined.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in cause_cols)) if cause_cols else joined
    changed_base = with_dvs(stale)
    changed = pl.concat([changed_base, stale.select(cause_cols)], how="horizontal")
    return {"added": added, "changed": changed, "removed": removed}


def candidates_frame(
    plan: FeaturePlan, tables: Mapping[str, pl.DataFrame | None], since: Mapping[str, int]
) -> pl.DataFrame:
    """Resolve ids touched since the last sync, across the feature and its upstreams."""
    keys = list(plan.resolve_ids)
    parts = []
    for table in [plan.table, *(u.table for u in plan.upstreams)]:
        frame = tables.get(table)
        if frame is None:
            continue
        rows = frame.filter(pl.col(SEQ) > since[table]) if table in since else frame
        parts.append(rows.select(keys))
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(keys, pl.String))
    return pl.concat(parts, how="vertical_relaxed").unique()
