"""The SQLite store: one file, no server, several processes taking turns (WAL).

Increments are computed in SQL (``resolve/sql.py`` with the ``SQLITE`` dialect); the hashes,
``concat`` and ``concat_ws`` SQLite 3.40 lacks are registered on the connection as deterministic
Python functions giving what DuckDB's give, byte for byte. Every write and delete is one
``BEGIN IMMEDIATE`` transaction: a process killed mid-write leaves all of it or none.

Tables are DuckDB's (``<feature>``, ``<feature>$history``, ``strata$meta``, ``strata$sync``);
each column is declared with the DuckDB type name of its Polars type (``BIGINT``, ``VARCHAR``,
``DOUBLE``, ``BOOLEAN``, ``DATE``, ``TIMESTAMP`` ...), which gives SQLite the right affinity and
says how to read the column back. Dates and datetimes are kept as ISO text (a zoned datetime as its
UTC time, declared ``TIMESTAMPTZ``), booleans as 0/1;
other types (lists, structs) as JSON text, read back as strings.
"""

from __future__ import annotations

import contextlib
import decimal
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import WriteError
from strata.features.versions import DEFAULT_ALGORITHM
from strata.resolve import sql
from strata.resolve.plan import DELETED, SEQ, FeaturePlan
from strata.resolve.sql import ident, literal
from strata.resolve.text import sqlite_text
from strata.stores.checks import check_case
from strata.stores.sqltables import (
    META,
    POLARS_TYPES,
    SYNC,
    SqlTablesStore,
    declared_type_of,
    refuse_nanoseconds,
    split_increment,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Mapping, Sequence

    import polars as pl

    from strata.features.graph import FeatureGraph
    from strata.resolve.increment import Increment
    from strata.stores.base import MetadataStore

BUSY_TIMEOUT_S = 60.0
"""How long a connection waits for another process's write to finish before giving up."""
_DECLARED = {polars: declared for declared, polars in POLARS_TYPES.items()}
_INT_MAX = 2**63 - 1
_DATETIME = "%Y-%m-%d %H:%M:%S%.f"
_DATETIME_TEXT = "%Y-%m-%d %H:%M:%S%.6f"
"""How a datetime is stored: always six digits of fraction, as ``_now`` writes it, so stored times compare as text."""
_names = itertools.count()


def _md5(value: Any) -> str | None:
    return None if value is None else hashlib.md5(str(value).encode()).hexdigest()  # noqa: S324 - a data version


def _sha256(value: Any) -> str | None:
    return None if value is None else hashlib.sha256(str(value).encode()).hexdigest()


def _concat(*values: Any) -> str:
    """DuckDB's ``concat``: a null is the empty string."""
    return "".join("" if v is None else str(v) for v in values)


def _concat_ws(separator: Any, *values: Any) -> str | None:
    """DuckDB's ``concat_ws``: nulls are skipped."""
    if separator is None:
        return None
    return str(separator).join(str(v) for v in values if v is not None)


_KEPT_OTHERWISE = {
    "BOOLEAN": "boolean",
    "DOUBLE": "double",
    "FLOAT": "float",
    "TIMESTAMP": "timestamp",
    "TIMESTAMPTZ": "timestamptz",
    "TIME": "time",
}
"""Declared types whose values SQLite keeps in another form (0/1, doubles, ISO text with six fraction
digits), and the name ``text.sqlite_text`` knows them by."""
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_DECIMAL_DIGITS = 15
"""The significant digits of a decimal SQLite keeps (it holds a DECIMAL column's values as doubles)."""
_TIME_TEXT = "%H:%M:%S%.6f"


def _decimal_text(value: Any, scale: int) -> str | None:
    """A DECIMAL column's value (an integer or a double to SQLite) as DuckDB writes it: ``scale`` fraction digits."""
    if value is None:
        return None
    return f"{decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value):.{scale}f}"


def declared_type(dtype: pl.DataType) -> str:
    """The SQLite declared type of a Polars type: DuckDB's name for it, ``JSON`` text for nested and other types."""
    return declared_type_of(dtype, decimal="DECIMAL", others=lambda base: _DECLARED.get(base, "JSON"))


def polars_type(declared: str) -> pl.DataType:
    """The Polars type a declared type reads back as (JSON text as a string)."""
    import polars as pl

    if declared == "TIMESTAMP":
        return pl.Datetime("us")
    if declared == "TIMESTAMPTZ":
        return pl.Datetime("us", "UTC")
    if declared == "TIME":
        return pl.Time()
    if decimal_type := _DECIMAL.fullmatch(declared):
        return pl.Decimal(int(decimal_type[1]), int(decimal_type[2]))
    name = POLARS_TYPES.get(declared)
    return getattr(pl, name)() if name else pl.String()


def to_sqlite(frame: pl.DataFrame) -> pl.DataFrame:
    """Values SQLite keeps: dates and datetimes as ISO text (a zoned one in UTC), nested values as JSON text."""
    import polars as pl

    converted: list[pl.Expr | pl.Series] = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            converted.append(pl.col(name).dt.to_string("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            utc = pl.col(name).dt.convert_time_zone("UTC") if dtype.time_zone else pl.col(name)
            converted.append(utc.dt.to_string(_DATETIME_TEXT))
        elif dtype == pl.Time:
            converted.append(pl.col(name).dt.to_string(_TIME_TEXT))
        elif isinstance(dtype, pl.Decimal | pl.Categorical | pl.Enum):
            converted.append(pl.col(name).cast(pl.String))
        elif declared_type(dtype) == "JSON":  # values as Python sees them: a list's items are no Series then
            text = [None if v is None else json.dumps(v, default=str) for v in frame[name].to_list()]
            converted.append(pl.Series(name, text, pl.String))
    return frame.with_columns(converted) if converted else frame


def from_sqlite(rows: list[tuple[Any, ...]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Rows fetched from SQLite as a frame of ``schema`` (the types the columns were written with)."""
    import polars as pl

    raw: dict[str, Any] = {}
    for name, dtype in schema.items():
        if dtype in (pl.Date, pl.String, pl.Time) or isinstance(dtype, (pl.Datetime, pl.Decimal)):
            raw[name] = pl.String
        elif dtype == pl.Boolean:
            raw[name] = pl.Int64
        else:
            raw[name] = dtype
    decimals = {n: t.scale for n, t in schema.items() if isinstance(t, pl.Decimal)}
    if decimals:  # SQLite gives a DECIMAL column's values as numbers: their text first, exactly
        rows = [
            tuple(_decimal_text(v, decimals[n]) if n in decimals else v for n, v in zip(schema, row, strict=True))
            for row in rows
        ]
    frame = pl.DataFrame(rows, schema=raw, orient="row")
    back = []
    for name, dtype in schema.items():
        if dtype == pl.Date:
            back.append(pl.col(name).str.to_date("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone:  # kept as its UTC time
            utc = pl.col(name).str.to_datetime(_DATETIME, time_unit="us").dt.replace_time_zone("UTC")
            back.append(utc.dt.convert_time_zone(dtype.time_zone))
        elif isinstance(dtype, pl.Datetime):
            back.append(pl.col(name).str.to_datetime(_DATETIME, time_unit="us"))
        elif dtype == pl.Boolean:
            back.append(pl.col(name).cast(pl.Boolean))
        elif dtype == pl.Time:
            back.append(pl.col(name).str.to_time("%H:%M:%S%.f"))
        elif isinstance(dtype, pl.Decimal):
            back.append(pl.col(name).cast(dtype))
    return frame.with_columns(back) if back else frame


class SQLiteStore(SqlTablesStore):
    """Metadata in one SQLite file (WAL mode: several processes take turns writing, readers never wait)."""

    kind = "sqlite"
    folds_case = True

    def __init__(
        self,
        path: str | Path,
        *,
        hash_algorithm: str = DEFAULT_ALGORITHM,
        graph: FeatureGraph | None = None,
        read_only: bool = False,
        fallbacks: Sequence[MetadataStore] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(
            hash_algorithm=hash_algorithm, graph=graph, read_only=read_only, fallbacks=fallbacks, name=name
        )
        self.path = str(path)
        self._con: sqlite3.Connection | None = None

    @property
    def con(self) -> sqlite3.Connection:
        """The open connection (``to_native()`` for users who want raw SQL)."""
        self._require_open()
        assert self._con is not None
        return self._con

    def to_native(self) -> sqlite3.Connection:
        return self.con

    def _run(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._con is not None
        return self._con.execute(query, params).fetchall()

    # -- lifecycle -----------------------------------------------------------------------

    def _open(self) -> None:
        import sqlite3

        self._check_place(self.path)
        exists = self.path != ":memory:" and Path(self.path).exists()
        if self.read_only and exists:
            uri = Path(self.path).resolve().as_uri() + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        elif self.read_only:  # a file that does not exist yet is an empty store: nothing is created for a read
            con = sqlite3.connect(":memory:", isolation_level=None)
        else:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
        for name, function, arity in (
            ("strata_md5", _md5, 1),
            ("strata_sha256", _sha256, 1),
            ("strata_concat", _concat, -1),
            ("concat_ws", _concat_ws, -1),
            ("strata_text", sqlite_text, 2),
            ("strata_decimal_text", _decimal_text, 2),
        ):
            con.create_function(name, arity, function, deterministic=True)
        self._con = con
        self._tables = set()
        temporary = "TEMP " if self.read_only else ""
        if not (self.read_only and exists and self._has_table(META)):
            for table, columns in (
                (META, "name VARCHAR PRIMARY KEY, value VARCHAR"),
                (SYNC, "feature VARCHAR PRIMARY KEY, state VARCHAR"),
            ):
                self._run(f"CREATE {temporary}TABLE IF NOT EXISTS {ident(table)} ({columns})")

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        self._tables = set()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, holding the file's write lock from its start (``BEGIN IMMEDIATE``)."""
        self._run("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._run("COMMIT")

    def _has_table(self, table: str) -> bool:
        if table in self._tables:
            return True
        found = self._run("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table])
        if found:
            self._tables.add(table)
        return bool(found)

    def _columns(self, table: str) -> dict[str, str]:
        """Column names and declared types of ``table`` ({} when it does not exist)."""
        return {str(r[1]): str(r[2]) for r in self._run("SELECT * FROM pragma_table_info(?)", [table])}

    # -- writing -------------------------------------------------------------------------

    def _batch(self, frame: pl.DataFrame) -> str:
        """A temp table holding ``frame``'s rows, columns declared as they will be stored."""
        _check_values(frame)
        refuse_nanoseconds("a SQLite store", frame)
        check_case(self.describe(), frame.columns)
        name = ident(f"strata$batch_{next(_names)}")
        columns = ", ".join(f"{ident(c)} {declared_type(t)}" for c, t in frame.schema.items())
        self._run(f"CREATE TEMP TABLE {name} ({columns})")
        if len(frame):  # in one transaction: alone, each row would be a statement and a commit of its own
            marks = ", ".join(["?"] * len(frame.columns))
            self._run("BEGIN")
            try:
                self.con.executemany(f"INSERT INTO {name} VALUES ({marks})", to_sqlite(frame).iter_rows())
            except BaseException:
                self._run("ROLLBACK")
                raise
            self._run("COMMIT")
        return name

    # -- reading -------------------------------------------------------------------------

    def _frame(self, query: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
        return from_sqlite(self._run(query), schema)

    def _literal(self, value: pl.Series) -> str:
        """The value as written (:func:`to_sqlite`): a number, quoted text, or a blob."""
        import math

        kept = to_sqlite(value.to_frame()).row(0)[0]
        if isinstance(kept, bool):
            return str(int(kept))
        if isinstance(kept, int):
            return str(kept)
        if isinstance(kept, float):
            if math.isnan(kept):
                return "NULL"  # equal to nothing
            return repr(kept) if math.isfinite(kept) else ("-9e999" if kept < 0 else "9e999")
        if isinstance(kept, bytes):
            return f"X'{kept.hex()}'"
        return literal(str(kept))

    def _declared(self, dtype: pl.DataType) -> str:
        return declared_type(dtype)

    def _column_type(self, declared: str) -> pl.DataType:
        return polars_type(declared)

    # -- increments ----------------------------------------------------------------------

    def _source(self, plan: FeaturePlan, columns: list[str], ids: Mapping[str, Any] | None = None) -> str:  # noqa: ARG002 - SQLite's columns take any type
        """The feature's table, or an empty stand-in with the needed columns when it was never written."""
        if self._has_table(plan.table):
            return sql.padded(ident(plan.table), self._lacking(plan.table, columns), sql.SQLITE)
        nulls = ", ".join(f"NULL AS {ident(c)}" for c in columns)
        return f"(SELECT {nulls}, 0 AS {ident(DELETED)}, NULL AS {ident(SEQ)} WHERE 0)"

    def _text_cast(self, declared: str) -> str | None:
        """SQL writing a column declared ``declared`` as DuckDB's text, None when SQLite already does.

        Booleans (kept 0/1), floats, datetimes and times go through ``strata_text``, decimals (kept
        as numbers) through ``strata_decimal_text``.
        """
        kind = _KEPT_OTHERWISE.get(declared)
        if kind is not None:
            return f"strata_text({{}}, {sql.literal(kind)})"
        decimal_type = _DECIMAL.fullmatch(declared)
        return None if decimal_type is None else f"strata_decimal_text({{}}, {int(decimal_type[2])})"

    def _increment(
        self, plan: FeaturePlan, expected: str, current: str, *, lazy: bool, ids: dict[str, Any] | None = None
    ) -> Increment:
        """The three parts from one pass over both sides (``sql.increment_query``), cut in Polars."""
        sides = [ident(f"strata$side_{next(_names)}") for _ in range(2)]
        try:
            for side, select in zip(sides, (expected, current), strict=True):  # indexed: SQLite joins by lookups
                self._run(f"CREATE TEMP TABLE {side} AS {select}")
                self._run(
                    f"CREATE INDEX {ident(f'strata$index_{next(_names)}')} ON {side} ({sql.ids_list(plan.resolve_ids)})"
                )
            rows = self._tagged(plan, f"SELECT * FROM {sides[0]}", f"SELECT * FROM {sides[1]}", ids)
        finally:
            self._drop(*sides)
        return split_increment(plan, rows, lazy=lazy)


def _check_values(frame: pl.DataFrame) -> None:
    """Refuse what SQLite cannot keep as written, before anything is written.

    Unsigned values above its largest integer (2^63 - 1), which its driver cannot take; decimals
    of more significant digits than it keeps; NaN (it keeps null).
    """
    import polars as pl

    for name, dtype in frame.schema.items():
        if dtype in (pl.Float32, pl.Float64) and len(frame) and frame[name].is_nan().any():
            raise WriteError(
                f"column `{name}` holds NaN, which a SQLite store cannot keep (it would read back as null)",
                "write null instead, or use a DuckDB store; nothing was written",
            )
        if isinstance(dtype, pl.Decimal) and len(frame):
            digits = frame[name].drop_nulls().cast(pl.String).str.replace_all(r"[-.]", "").str.strip_chars_start("0")
            if len(digits) and (digits.str.len_chars().max() or 0) > _DECIMAL_DIGITS:  # type: ignore[operator]
                raise WriteError(
                    f"column `{name}` holds a decimal of more than {_DECIMAL_DIGITS} significant digits, "
                    "more than a SQLite store keeps",
                    "use a DuckDB store for such values, or store them as text; nothing was written",
                )
        if dtype == pl.UInt64 and len(frame) and (frame[name].max() or 0) > _INT_MAX:  # type: ignore[operator]
            raise WriteError(
                f"column `{name}` holds a value above {_INT_MAX}, the largest integer a SQLite store keeps",
                "use a DuckDB store for such ids, or store them as text; nothing was written",
            )
