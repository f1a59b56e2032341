"""What the SQL stores (DuckDB, SQLite, PostgreSQL) share.

The names of their bookkeeping tables, the column types they declare, and the SQL that picks an
expansion's "no children" row and the rows matching given ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.resolve.plan import DELETED, FEATURE_VERSION, SEQ, SNAPSHOT_VERSION, WRITTEN_AT
from strata.resolve.sql import ident

if TYPE_CHECKING:
    from collections.abc import Sequence

    import polars as pl
    import pyarrow as pa

    from strata.resolve.plan import FeaturePlan

HISTORY = "$history"
META = "strata$meta"
SYNC = "strata$sync"
TABLE_SEQ = "seq@"
"""Meta entries ``seq@<table>``: the sequence number of the last write or delete of each feature table."""
KEPT = "seq_by_table"
"""Meta entry: the write sequence as of the last write that kept its ``seq@<table>`` (see ``_bookkept``)."""
POLARS_TYPES = {
    "BIGINT": "Int64",
    "INTEGER": "Int32",
    "SMALLINT": "Int16",
    "TINYINT": "Int8",
    "UBIGINT": "UInt64",
    "UINTEGER": "UInt32",
    "USMALLINT": "UInt16",
    "UTINYINT": "UInt8",
    "DOUBLE": "Float64",
    "FLOAT": "Float32",
    "VARCHAR": "String",
    "BOOLEAN": "Boolean",
    "DATE": "Date",
}
"""DuckDB types and the Polars types DuckDB's own conversion gives them (checked by a test)."""


def childless(plan: FeaturePlan) -> str:
    """SQL true for an expansion's "no children" row (every child id null); false for every other row."""
    if not plan.child_ids:
        return "false"
    return "(" + " AND ".join(f"{ident(c)} IS NULL" for c in plan.child_ids) + ")"


def matching(table: str, ids: str, columns: Sequence[str]) -> str:
    """SQL true for the rows of ``table`` whose ``columns`` equal those of a row of ``ids``, nulls equal.

    Nulls match as in a write (an expansion's "no children" row has null child ids) and in the
    in-memory store; DuckDB plans it as the hash semi-join ``IN`` would be.
    """
    same = " AND ".join(f"d.{ident(c)} IS NOT DISTINCT FROM {table}.{ident(c)}" for c in columns)
    return f"EXISTS (SELECT 1 FROM {ids} d WHERE {same})"


def system_types(plan: FeaturePlan) -> dict[str, str]:
    """The declared types of the system columns a write stamps (names SQLite and PostgreSQL both take)."""
    types = dict.fromkeys(plan.cv_columns, "VARCHAR")
    types |= {FEATURE_VERSION: "VARCHAR", SNAPSHOT_VERSION: "VARCHAR", SEQ: "BIGINT"}
    return types | {WRITTEN_AT: "TIMESTAMP", DELETED: "BOOLEAN"}


def polars_frames(*tables: pa.Table) -> list[pl.DataFrame]:
    """``tables`` as Polars frames."""
    import polars as pl

    frames = []
    for table in tables:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frames.append(frame)
    return frames
