"""What every store checks before it writes: rows it can read, with ids and versions, each sample once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.errors import WriteError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from strata.resolve.plan import FeaturePlan


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
    return native.to_arrow()


def check_write(plan: FeaturePlan, table: pa.Table, *, samples: bool = False) -> None:
    """Refuse rows that lack ids or versions, or repeat a sample."""
    what = "samples" if samples else "rows"
    names = set(table.column_names)
    missing = [c for c in plan.id_columns if c not in names]
    if missing:
        raise WriteError(
            f"{what} for `{plan.key}` lack id column(s) {', '.join(missing)}", "add them; nothing was written"
        )
    missing = [c for c in plan.dv_columns if c not in names]
    if missing:
        raise WriteError(
            f"{what} for `{plan.key}` lack data-version column(s) {', '.join(missing)}",
            "root features take one per field; other features get them from resolve_update; nothing was written",
        )
    missing = [c for c in plan.input_columns if c not in names]
    if missing and not samples:
        raise WriteError(
            f"rows for `{plan.key}` lack input column(s) {', '.join(missing)}",
            "write rows built from the increment of resolve_update, which carries them; nothing was written",
        )
    for column in plan.resolve_ids:  # an expansion's child ids may be null: see check_children
        if table.column(column).null_count:
            raise WriteError(
                f"{what} for `{plan.key}` have nulls in id column `{column}`",
                "every sample needs its ids; nothing was written",
            )
    if table.num_rows:
        import polars as pl

        frame = pl.from_arrow(table.select(list(plan.id_columns)))
        assert isinstance(frame, pl.DataFrame)
        repeated = int(frame.is_duplicated().sum())
        if repeated:
            raise WriteError(
                f"{what} for `{plan.key}` have {repeated} rows with repeated ids",
                "write each sample once per call; nothing was written",
            )
        if plan.child_ids:
            check_children(plan, frame)
    for column in plan.dv_columns:
        if table.column(column).null_count:
            raise WriteError(
                f"{what} for `{plan.key}` have nulls in `{column}`",
                "give every sample a data version; nothing was written",
            )


def check_children(plan: FeaturePlan, ids: pl.DataFrame) -> None:
    """Child ids are all null (the parent has no children) or none is, and a childless parent has no children."""
    import polars as pl

    nulls = [pl.col(c).is_null() for c in plan.child_ids]
    if ids.filter(pl.any_horizontal(nulls) & ~pl.all_horizontal(nulls)).height:
        raise WriteError(
            f"rows for `{plan.key}` have some but not all of {', '.join(plan.child_ids)} null",
            "give a child all its ids, or a parent with no children one row with all of them null; nothing was written",
        )
    parents = ids.group_by(list(plan.resolve_ids)).agg(pl.all_horizontal(nulls).any().alias("childless"), pl.len())
    if parents.filter(pl.col("childless") & (pl.col("len") > 1)).height:
        raise WriteError(
            f"rows for `{plan.key}` give a parent both children and a row saying it has none",
            "write either its children or the one row with null child ids; nothing was written",
        )
