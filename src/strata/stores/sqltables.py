"""What the SQL stores (DuckDB, SQLite) share.

The names of their bookkeeping tables, the column types they declare, and the SQL that picks an
expansion's "no children" row and the rows matching given ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.resolve.sql import DUCKDB, Dialect, ident

if TYPE_CHECKING:
    from collections.abc import Sequence

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


def childless(plan: FeaturePlan, dialect: Dialect = DUCKDB) -> str:
    """SQL true for an expansion's "no children" row (every child id null); false for every other row."""
    if not plan.child_ids:
        return "false"
    return "(" + " AND ".join(f"{dialect.ident(c)} IS NULL" for c in plan.child_ids) + ")"


def matching(table: str, ids: str, columns: Sequence[str]) -> str:
    """SQL true for the rows of ``table`` whose ``columns`` equal those of a row of ``ids``, nulls equal.

    Nulls match as in a write (an expansion's "no children" row has null child ids) and in the
    in-memory store; DuckDB plans it as the hash semi-join ``IN`` would be.
    """
    same = " AND ".join(f"d.{ident(c)} IS NOT DISTINCT FROM {table}.{ident(c)}" for c in columns)
    return f"EXISTS (SELECT 1 FROM {ids} d WHERE {same})"
