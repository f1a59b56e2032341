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
import dataclasses
import datetime as dt
import decimal
import hashlib
import itertools
import json
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import WriteError
from strata.features.versions import DEFAULT_ALGORITHM
from strata.resolve import sql
from strata.resolve.increment import Increment
from strata.resolve.plan import DELETED, FEATURE_VERSION, SEQ, SNAPSHOT_VERSION, WRITTEN_AT, FeaturePlan
from strata.resolve.sql import ident
from strata.stores.base import MetadataStore
from strata.stores.sqltables import (
    HISTORY,
    META,
    POLARS_TYPES,
    SYNC,
    TABLE_SEQ,
    childless,
    matching,
    polars_frames,
    system_types,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Mapping, Sequence

    import narwhals as nw
    import polars as pl
    import pyarrow as pa

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey

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


_KEPT_OTHERWISE = {"BOOLEAN": "boolean", "DOUBLE": "double", "FLOAT": "float"}
"""Declared types whose values SQLite keeps in another form (0/1, doubles), and the name ``_text`` knows them by."""


_WHOLE_IN_FULL = 1e16
_HALF = 5
"""The last digit of a value halfway between two shorter decimals."""


def _text(value: Any, kind: str) -> str | None:
    """``value`` of a BOOLEAN, DOUBLE or FLOAT column as text, as DuckDB's ``CAST(... AS VARCHAR)`` writes it."""
    if value is None:
        return None
    if kind == "boolean":
        return "true" if value else "false"
    number = float(value)
    return repr(number) if kind == "double" else _float32_text(number)


def _float32_text(value: float) -> str:
    """A single-precision value as DuckDB writes it: its shortest digits, a tie taking one more digit.

    Whole numbers below ``_WHOLE_IN_FULL`` are written in full.
    """
    if not math.isfinite(value) or value == 0:
        return repr(value)
    if value.is_integer() and abs(value) < _WHOLE_IN_FULL:
        return f"{int(value)}.0"
    digits = decimal.Decimal(value).normalize().as_tuple().digits
    for precision in range(1, 10):
        tie = len(digits) == precision + 1 and digits[-1] == _HALF
        shortest = float(f"{value:.{precision}g}")
        if not tie and struct.unpack("f", struct.pack("f", shortest))[0] == value:
            return repr(shortest)
    return repr(value)


def declared_type(dtype: pl.DataType) -> str:
    """The SQLite declared type of a Polars type: DuckDB's name for it, ``JSON`` text for nested and other types."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if dtype == pl.Null:
        return "VARCHAR"
    return _DECLARED.get(str(dtype.base_type()), "JSON")


def polars_type(declared: str) -> pl.DataType:
    """The Polars type a declared type reads back as (JSON text as a string)."""
    import polars as pl

    if declared == "TIMESTAMP":
        return pl.Datetime("us")
    if declared == "TIMESTAMPTZ":
        return pl.Datetime("us", "UTC")
    name = POLARS_TYPES.get(declared)
    return getattr(pl, name)() if name else pl.String()


def to_sqlite(frame: pl.DataFrame) -> pl.DataFrame:
    """Values SQLite keeps: dates and datetimes as ISO text (a zoned one in UTC), nested values as JSON text."""
    import polars as pl

    converted = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            converted.append(pl.col(name).dt.to_string("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            utc = pl.col(name).dt.convert_time_zone("UTC") if dtype.time_zone else pl.col(name)
            converted.append(utc.dt.to_string(_DATETIME_TEXT))
        elif declared_type(dtype) == "JSON":
            converted.append(
                pl.col(name).map_elements(lambda v: json.dumps(v, default=str), return_dtype=pl.String, skip_nulls=True)
            )
    return frame.with_columns(converted) if converted else frame


def from_sqlite(rows: list[tuple[Any, ...]], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Rows fetched from SQLite as a frame of ``schema`` (the types the columns were written with)."""
    import polars as pl

    raw: dict[str, Any] = {}
    for name, dtype in schema.items():
        if dtype in (pl.Date, pl.String) or isinstance(dtype, pl.Datetime):
            raw[name] = pl.String
        elif dtype == pl.Boolean:
            raw[name] = pl.Int64
        else:
            raw[name] = dtype
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
    return frame.with_columns(back) if back else frame


class SQLiteStore(MetadataStore):
    """Metadata in one SQLite file (WAL mode: several processes take turns writing, readers never wait)."""

    kind = "sqlite"

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
        self._tables: set[str] = set()
        """Tables known to exist on this connection."""

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
            ("strata_text", _text, 2),
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

    def _get_meta(self, name: str) -> str | None:
        rows = self._run(f"SELECT value FROM {ident(META)} WHERE name = ?", [name])
        return str(rows[0][0]) if rows else None

    def _set_meta(self, name: str, value: str) -> None:
        self._run(f"INSERT OR REPLACE INTO {ident(META)} VALUES (?, ?)", [name, value])

    def _meta(self, names: Sequence[str]) -> dict[str, str]:
        marks = ", ".join(["?"] * len(names))
        return dict(self._run(f"SELECT name, value FROM {ident(META)} WHERE name IN ({marks})", list(names)))

    def _next_seq(self, table: str, watch: Sequence[str] = ()) -> tuple[int, dict[str, int | None]]:
        """The next sequence number, taken inside the write's transaction; ``watch``'s numbers before it."""
        meta = self._meta(["seq", *(TABLE_SEQ + t for t in watch)])
        current = int(meta.get("seq") or 0) + 1
        self._run(
            f"INSERT OR REPLACE INTO {ident(META)} VALUES ('seq', ?), (?, ?)",
            [str(current), TABLE_SEQ + table, str(current)],
        )
        seen = {t: int(meta[TABLE_SEQ + t]) if TABLE_SEQ + t in meta else None for t in watch}
        return current, seen

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
        _check_integers(frame)
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

    def _ensure_tables(self, plan: FeaturePlan, wanted: dict[str, str]) -> bool:
        """Create the feature's tables, or add the columns they lack; whether they were created."""
        created = False
        for table in (plan.table, plan.table + HISTORY):
            existing = self._columns(table)
            if not existing:
                columns = ", ".join(f"{ident(n)} {t}" for n, t in wanted.items())
                self._run(f"CREATE TABLE {ident(table)} ({columns})")
                if table == plan.table:
                    self._run(f"CREATE INDEX {ident(table + '$seq')} ON {ident(table)} ({ident(SEQ)})")
                    keys = sql.ids_list(plan.resolve_ids)
                    self._run(f"CREATE INDEX {ident(table + '$ids')} ON {ident(table)} ({keys})")
                created = True
            for name, kind in wanted.items():
                if existing and name not in existing:
                    self._run(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(name)} {kind}")
        self._tables.update((plan.table, plan.table + HISTORY))
        return created

    def _write(
        self, plan: FeaturePlan, table: pa.Table, *, since: Mapping[str, int | None] | None = None, fresh: bool = False
    ) -> int | None:
        import polars as pl

        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        managed = {*plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED}
        frame = frame.drop([c for c in frame.columns if c in managed])
        wanted = {c: declared_type(t) for c, t in frame.schema.items()} | system_types(plan)
        batch = self._batch(frame)
        created = False
        try:
            with self._transaction():
                seq, seen = self._next_seq(plan.table, list(since or ()))
                in_step = since is not None and seen == dict(since)
                created = self._ensure_tables(plan, wanted)
                if not created and not (fresh and in_step):
                    self._supersede(plan, batch, seq)
                consts = [*(f.code_version for f in plan.fields), plan.feature_version, plan.snapshot_version, seq]
                names = [*frame.columns, *plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED]
                values = [*(ident(c) for c in frame.columns), *(["?"] * len(consts)), "?", childless(plan)]
                into = f"INSERT INTO {ident(plan.table)} ({sql.ids_list(tuple(names))})"
                self._run(
                    f"{into} SELECT {', '.join(values)} FROM {batch}",
                    [*consts, _now()],
                )
        except BaseException:
            self._forget_created(plan, created=created)
            raise
        finally:
            self._run(f"DROP TABLE IF EXISTS {batch}")
        return seq if since is None or in_step else None

    def _forget_created(self, plan: FeaturePlan, *, created: bool) -> None:
        """After a rollback: tables this transaction created are gone again (``_tables`` must not keep them)."""
        if created:
            self._tables.difference_update((plan.table, plan.table + HISTORY))

    def _put(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> int:
        frames = polars_frames(latest, history)
        system = system_types(plan)
        wanted = {c: system.get(c, declared_type(t)) for f in frames for c, t in f.schema.items()}
        batches = [self._batch(f) for f in frames]
        table, older = ident(plan.table), ident(plan.table + HISTORY)
        created = False
        try:
            with self._transaction():
                seq, _ = self._next_seq(plan.table)
                created = self._ensure_tables(plan, wanted)
                if len(frames[0]):  # the latest rows of the same parents move to history, but those put again
                    parents = matching(table, batches[0], plan.resolve_ids)
                    again = matching(table, batches[0], [*plan.id_columns, WRITTEN_AT])
                    columns = sql.ids_list(tuple(self._columns(plan.table)))
                    self._run(
                        f"INSERT INTO {older} ({columns}) SELECT {columns} FROM {table} WHERE {parents} AND NOT {again}"
                    )
                    self._run(f"DELETE FROM {table} WHERE {parents}")
                for frame, batch, target in zip(frames, batches, (table, older), strict=True):
                    kept = [c for c in frame.columns if c != SEQ]  # every row put takes this store's number
                    picked = ", ".join([*(ident(c) for c in kept), str(int(seq))])
                    self._run(f"INSERT INTO {target} ({sql.ids_list((*kept, SEQ))}) SELECT {picked} FROM {batch}")
        except BaseException:
            self._forget_created(plan, created=created)
            raise
        finally:
            for batch in batches:
                self._run(f"DROP TABLE IF EXISTS {batch}")
        return seq

    def _erase(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> None:
        frames = polars_frames(latest, history)
        batches = [self._batch(f) for f in frames]
        table, older = ident(plan.table), ident(plan.table + HISTORY)
        try:
            with self._transaction():
                if len(frames[0]):  # the latest table changes: a new number, as for a hard delete
                    self._next_seq(plan.table)
                    self._run(f"DELETE FROM {table} WHERE {matching(table, batches[0], frames[0].columns)}")
                if len(frames[1]):
                    self._run(f"DELETE FROM {older} WHERE {matching(older, batches[1], frames[1].columns)}")
        finally:
            for batch in batches:
                self._run(f"DROP TABLE IF EXISTS {batch}")

    def _supersede(self, plan: FeaturePlan, batch: str, seq: int) -> None:
        """Move the latest rows of the batch's resolve ids to history; an expansion's lost children leave tombstones."""
        keys = sql.ids_list(plan.resolve_ids)
        older = f"({keys}) IN (SELECT {keys} FROM {batch})"
        if plan.child_ids:
            same = " AND ".join(f"b.{ident(c)} IS {ident(plan.table)}.{ident(c)}" for c in plan.id_columns)
            self._move(plan, older, seq, unless=f"SELECT 1 FROM {batch} b WHERE {same}")
        else:
            self._move(plan, older, None)

    def _move(self, plan: FeaturePlan, where: str, seq: int | None, unless: str = "") -> int:
        """Move the latest rows ``where`` picks to history; with ``seq``, tombstones of the live ones; how many."""
        latest, history = ident(plan.table), ident(plan.table + HISTORY)
        names = tuple(self._columns(plan.table))
        columns = sql.ids_list(names)
        count = 0
        moved = ident(f"strata$moved_{next(_names)}")
        if seq is not None:
            live = f"NOT {ident(DELETED)}" + (f" AND NOT EXISTS ({unless})" if unless else "")
            self._run(f"CREATE TEMP TABLE {moved} AS SELECT * FROM {latest} WHERE {where} AND {live}")
            count = self._run(f"SELECT count(*) FROM {moved}")[0][0]
        self._run(f"INSERT INTO {history} ({columns}) SELECT {columns} FROM {latest} WHERE {where}")
        self._run(f"DELETE FROM {latest} WHERE {where}")
        if seq is not None:
            replaced = {SEQ: str(int(seq)), WRITTEN_AT: "?", DELETED: "1"}
            picked = ", ".join(replaced.get(c, ident(c)) for c in names)
            self._run(f"INSERT INTO {latest} ({columns}) SELECT {picked} FROM {moved}", [_now()])
            self._run(f"DROP TABLE {moved}")
        return int(count)

    def _delete(
        self, plan: FeaturePlan, ids: pa.Table, *, soft: bool, since: Mapping[str, int | None] | None = None
    ) -> tuple[int, int | None]:
        import polars as pl

        frame = pl.from_arrow(ids)
        assert isinstance(frame, pl.DataFrame)
        batch = self._batch(frame)
        latest, history = ident(plan.table), ident(plan.table + HISTORY)
        try:
            with self._transaction():
                seq, seen = self._next_seq(plan.table, list(since or ()))
                match = matching(latest, batch, frame.columns)
                if soft:
                    count = self._move(plan, match, seq)
                else:
                    count = self._run(f"SELECT count(*) FROM {latest} WHERE NOT {ident(DELETED)} AND {match}")[0][0]
                    self._run(f"DELETE FROM {latest} WHERE {match}")
                    self._run(f"DELETE FROM {history} WHERE {matching(history, batch, frame.columns)}")
        finally:
            self._run(f"DROP TABLE IF EXISTS {batch}")
        return int(count), seq if since is None or seen == dict(since) else None

    # -- reading -------------------------------------------------------------------------

    def _frame(self, query: str, schema: Mapping[str, pl.DataType], params: Sequence[Any] = ()) -> pl.DataFrame:
        return from_sqlite(self._run(query, params), schema)

    def _schema(self, table: str) -> dict[str, pl.DataType]:
        return {c: polars_type(t) for c, t in self._columns(table).items()}

    def _read(self, plan: FeaturePlan, *, history: bool, include_deleted: bool) -> nw.LazyFrame[Any] | None:
        import narwhals as nw

        if not self._has_table(plan.table):
            return None
        schema = self._schema(plan.table)
        if history:
            columns = sql.ids_list(tuple(schema))
            older, latest = ident(plan.table + HISTORY), ident(plan.table)
            query = f"SELECT {columns} FROM {older} UNION ALL SELECT {columns} FROM {latest}"
        else:
            where = "" if include_deleted else f" WHERE NOT {ident(DELETED)}"
            query = f"SELECT * FROM {ident(plan.table)}{where}"
        frame: pl.DataFrame = self._frame(query, schema)
        return nw.from_native(frame.lazy())

    def _stored_schema(self, plan: FeaturePlan, columns: Sequence[str]) -> dict[str, Any] | None:
        stored = self._schema(plan.table) if self._has_table(plan.table) else {}
        if not stored or any(c not in stored for c in columns):
            return None
        return {c: stored[c] for c in columns}

    def _max_seq(self, table: str) -> int | None:
        return self._max_seqs([table])[table]

    def _max_seqs(self, tables: Sequence[str]) -> dict[str, int | None]:
        meta = self._meta([TABLE_SEQ + t for t in tables])
        return {t: int(meta[TABLE_SEQ + t]) if TABLE_SEQ + t in meta else None for t in tables}

    # -- increments ----------------------------------------------------------------------

    def _source(self, plan: FeaturePlan, columns: list[str]) -> str:
        """The feature's table, or an empty stand-in with the needed columns when it was never written."""
        if self._has_table(plan.table):
            return ident(plan.table)
        nulls = ", ".join(f"NULL AS {ident(c)}" for c in columns)
        return f"(SELECT {nulls}, 0 AS {ident(DELETED)}, NULL AS {ident(SEQ)} WHERE 0)"

    def _sources(self, plan: FeaturePlan) -> dict[str, str]:
        own = [*plan.id_columns, *plan.input_columns, *plan.cv_columns, *plan.dv_columns]
        sources = {plan.table: self._source(plan, own)}
        for up in plan.upstreams:
            sources[up.table] = self._source(
                self.plan(up.key), [*up.id_columns, *(f"strata_dv__{f}" for f in up.fields)]
            )
        return sources

    def _candidates(
        self, plan: FeaturePlan, sources: dict[str, str], since: dict[str, int], only: dict[str, Any] | None
    ) -> str:
        """A temp table of the resolve ids that may have changed since the last sync."""
        name = ident(f"strata$cand_{next(_names)}")
        keys = sql.ids_list(plan.resolve_ids)
        if only is not None:
            values = ", ".join(f"? AS {ident(k)}" for k in plan.resolve_ids)
            self._run(f"CREATE TEMP TABLE {name} AS SELECT {values}", [only[k] for k in plan.resolve_ids])
            return name
        tables = [plan.table, *(u.table for u in plan.upstreams)]
        parts = []
        for table in dict.fromkeys(tables):
            if self._has_table(table):
                recent = f" WHERE {ident(SEQ)} > {int(since[table])}" if table in since else ""
                parts.append(f"SELECT {keys} FROM {sources[table]}{recent}")
        union = " UNION ".join(parts) or f"SELECT {keys} FROM {sources[plan.table]}"
        self._run(f"CREATE TEMP TABLE {name} AS {union}")
        return name

    def _resolve(
        self, plan: FeaturePlan, since: dict[str, int] | None, *, lazy: bool, only: dict[str, Any] | None = None
    ) -> Increment:
        sources = self._sources(plan)
        candidates = None
        if since is not None or only is not None:
            candidates = self._candidates(plan, sources, since or {}, only)
        try:
            expected = sql.expected_select(self._dialect(plan), self.hash_algorithm, plan, candidates, sources)
            current = sql.current_select(plan, candidates, sources[plan.table])
            return self._increment(plan, expected, current, lazy=lazy)
        finally:
            if candidates is not None:
                self._run(f"DROP TABLE IF EXISTS {candidates}")

    def _dialect(self, plan: FeaturePlan) -> sql.Dialect:
        """``sql.SQLITE``, writing the booleans and floats of upstream ids as text the way DuckDB does."""
        casts = {}
        for up in plan.upstreams:
            if self._has_table(up.table):
                for column, declared in self._columns(up.table).items():
                    if declared in _KEPT_OTHERWISE:
                        casts[up.table, column] = f"strata_text({{}}, {sql.literal(_KEPT_OTHERWISE[declared])})"
        return dataclasses.replace(sql.SQLITE, text_casts=casts) if casts else sql.SQLITE

    def _resolve_root(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        import polars as pl

        frame = pl.from_arrow(samples.select([*plan.id_columns, *plan.dv_columns]))
        assert isinstance(frame, pl.DataFrame)
        batch = self._batch(frame)
        try:
            own = [*plan.id_columns, *plan.cv_columns, *plan.dv_columns]
            current = sql.current_select(plan, None, self._source(plan, own))
            expected = f"SELECT * FROM {batch}"
            ids = {c: frame.schema[c] for c in plan.id_columns}
            return self._increment(plan, expected, current, lazy=lazy, ids=ids)
        finally:
            self._run(f"DROP TABLE IF EXISTS {batch}")

    def _increment(
        self, plan: FeaturePlan, expected: str, current: str, *, lazy: bool, ids: dict[str, Any] | None = None
    ) -> Increment:
        """The three parts from one pass over both sides (``sql.increment_query``), cut in Polars."""
        import narwhals as nw
        import polars as pl

        sides = [ident(f"strata$side_{next(_names)}") for _ in range(2)]
        try:
            for side, select in zip(sides, (expected, current), strict=True):  # indexed: SQLite joins by lookups
                self._run(f"CREATE TEMP TABLE {side} AS {select}")
                self._run(
                    f"CREATE INDEX {ident(f'strata$index_{next(_names)}')} ON {side} ({sql.ids_list(plan.resolve_ids)})"
                )
            rows = self._tagged(plan, f"SELECT * FROM {sides[0]}", f"SELECT * FROM {sides[1]}", ids)
        finally:
            for side in sides:
                self._run(f"DROP TABLE IF EXISTS {side}")
        split = {}
        for name, columns in sql.part_columns(plan).items():
            part = rows.filter(pl.col(sql.PART) == sql.part_code(name))
            picked = part.select([pl.col(a).alias(b) for a, b in columns.items()])
            split[name] = nw.from_native(picked.lazy() if lazy else picked)
        return Increment(plan.key, split["added"], split["changed"], split["removed"], lazy=lazy)

    def _tagged(self, plan: FeaturePlan, expected: str, current: str, ids: dict[str, Any] | None) -> pl.DataFrame:
        """The rows of ``sql.increment_query``, typed: ids as stored (or as ``ids``), the rest text."""
        import polars as pl

        query = sql.increment_query(sql.SQLITE, self.hash_algorithm, plan, expected, current)
        id_types = self._id_schema(plan, plan.resolve_ids)
        if ids is not None and self._stored_schema(plan, plan.resolve_ids) is None:
            id_types = {**id_types, **ids}
        schema: dict[str, Any] = {sql.PART: pl.Int64, **id_types}
        schema |= {sql.removed_id(k): id_types[k] for k in plan.resolve_ids}
        schema |= dict.fromkeys(
            (*plan.input_columns, *plan.dv_columns, *(f.cause_column for f in plan.fields)), pl.String
        )
        return self._frame(query, schema)

    # -- sync records --------------------------------------------------------------------

    def _get_sync(self, key: FeatureKey) -> dict[str, Any] | None:
        rows = self._run(f"SELECT state FROM {ident(SYNC)} WHERE feature = ?", [str(key)])
        return json.loads(rows[0][0]) if rows else None

    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        self._run(f"INSERT OR REPLACE INTO {ident(SYNC)} VALUES (?, ?)", [str(key), json.dumps(state)])

    def _clear_sync(self) -> None:
        self._run(f"DELETE FROM {ident(SYNC)}")


def _check_integers(frame: pl.DataFrame) -> None:
    """Refuse unsigned values above SQLite's largest integer (2^63 - 1), which its driver cannot take."""
    import polars as pl

    for name, dtype in frame.schema.items():
        if dtype == pl.UInt64 and len(frame) and (frame[name].max() or 0) > _INT_MAX:  # type: ignore[operator]
            raise WriteError(
                f"column `{name}` holds a value above {_INT_MAX}, the largest integer a SQLite store keeps",
                "use a DuckDB store for such ids, or store them as text; nothing was written",
            )


def _now() -> str:
    """Now (UTC, naive) as stored: ISO text."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
