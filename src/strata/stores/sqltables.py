"""What the SQL stores (DuckDB, SQLite, PostgreSQL, and in part ClickHouse) share.

The names of their bookkeeping tables, the column types they declare, the SQL that picks an
expansion's "no children" row and the rows matching given ids, the text casts of upstream ids
(:func:`with_text_casts`) and the cut of an increment's rows into its parts (:func:`split_increment`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from strata.errors import WriteError
from strata.resolve import sql
from strata.resolve.increment import Increment
from strata.resolve.plan import DELETED, FEATURE_VERSION, SEQ, SNAPSHOT_VERSION, WRITTEN_AT
from strata.resolve.sql import DUCKDB, Dialect, ident, literal
from strata.stores.base import MetadataStore
from strata.stores.checks import check_case, fit_stored, typed_match
from strata.stores.snapshots import MIGRATIONS, SNAPSHOTS

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Iterable, Mapping, Sequence

    import narwhals as nw
    import polars as pl
    import pyarrow as pa

    from strata.features.keys import FeatureKey
    from strata.resolve.plan import FeaturePlan

HISTORY = "$history"
META = "strata$meta"
SYNC = "strata$sync"
TABLE_SEQ = "seq@"
"""Meta entries ``seq@<table>``: the sequence number of the last write or delete of each feature table."""
_names = itertools.count()
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


def declared_type_of(dtype: pl.DataType, *, decimal: str, others: Callable[[str], str]) -> str:
    """The declared type of a column of Polars type ``dtype`` in a SQL store keeping DuckDB's tables.

    Datetimes, times, text-like and null columns are declared alike by every such store; a decimal
    as ``<decimal>(p,s)``; any other type by ``others`` of its base type's name (``Int64``, ``List`` …).
    """
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if dtype == pl.Null or isinstance(dtype, pl.Categorical | pl.Enum):
        return "VARCHAR"
    if isinstance(dtype, pl.Decimal):
        return f"{decimal}({dtype.precision},{dtype.scale})"
    if dtype == pl.Time:
        return "TIME"
    return others(str(dtype.base_type()))


def childless(plan: FeaturePlan, dialect: Dialect = DUCKDB) -> str:
    """SQL true for an expansion's "no children" row (every child id null); false for every other row."""
    if not plan.child_ids:
        return "false"
    return "(" + " AND ".join(f"{dialect.ident(c)} IS NULL" for c in plan.child_ids) + ")"


def matching(table: str, ids: str, columns: Sequence[str], exact: Sequence[str] = ()) -> str:
    """SQL true for the rows of ``table`` whose ``columns`` equal those of a row of ``ids``, nulls equal.

    Nulls match as in a write (an expansion's "no children" row has null child ids) and in the
    in-memory store; DuckDB plans it as the hash semi-join ``IN`` would be. Columns in ``exact``
    are compared with ``=`` (columns never null in ``table``, such as the resolve ids): PostgreSQL
    hashes only on those, where ``IS NOT DISTINCT FROM`` alone makes a nested loop.
    """
    same = " AND ".join(
        f"d.{ident(c)} {'=' if c in exact else 'IS NOT DISTINCT FROM'} {table}.{ident(c)}" for c in columns
    )
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


SYSTEM_RECORDS = {SNAPSHOTS: ("version", "pushed_at"), MIGRATIONS: ("migration", "recorded_at")}
"""The append-only system tables of JSON records: table -> its key and time columns (then ``record``)."""


def add_record(run: Callable[[str, list[Any]], Any], mark: str, table: str, values: tuple[str, str, str]) -> None:
    """Append a row (key, time, record) to a system table of records (DuckDB, SQLite, PostgreSQL), made by the first."""
    key, at = SYSTEM_RECORDS[table]
    run(f"CREATE TABLE IF NOT EXISTS {ident(table)} ({key} VARCHAR, {at} VARCHAR, record VARCHAR)", [])
    run(f"INSERT INTO {ident(table)} VALUES ({mark}, {mark}, {mark})", list(values))


def get_records(
    run: Callable[[str, list[Any]], list[tuple[Any, ...]]], mark: str, table: str, key: str | None
) -> list[str]:
    """The records of a system table of records (of key ``key``); the caller knows the table exists."""
    where, params = ("", []) if key is None else (f" WHERE {SYSTEM_RECORDS[table][0]} = {mark}", [key])
    return [str(row[0]) for row in run(f"SELECT record FROM {ident(table)}{where}", params)]


class SqlTablesStore(MetadataStore):
    """The bookkeeping, writes, reads and resolves of a store keeping DuckDB's tables in a SQL engine of its own.

    SQLite and PostgreSQL share it; each says how to run a statement (``_run``, with ``mark`` for a
    parameter), open a write transaction, load a frame into a temp table (``_batch``), read a query back
    (``_frame``), list a table's columns, and write a timestamp constant. Increments come from
    ``resolve/sql.py`` in the store's :attr:`dialect`.
    """

    mark = "?"
    """How the driver marks a query parameter."""
    dialect: sql.Dialect = sql.SQLITE
    folds_case = False
    """The engine takes names that differ only in case for one, quoted or not (SQLite): such columns are refused."""
    _UPSERT = "ON CONFLICT ({}) DO UPDATE SET {} = excluded.{}"
    _tables: set[str]
    """Tables known to exist on this connection (``_open`` starts it empty)."""

    # -- what each engine says -----------------------------------------------------------

    @abstractmethod
    def _run(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows."""

    @abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction, writers taking turns."""

    @abstractmethod
    def _batch(self, frame: pl.DataFrame) -> str:
        """A temp table holding ``frame``'s rows, columns typed as they will be stored; its quoted name."""

    @abstractmethod
    def _frame(self, query: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
        """The rows of ``query`` as a frame of ``schema``."""

    @abstractmethod
    def _columns(self, table: str) -> dict[str, str]:
        """Column names and types of ``table`` ({} when it does not exist)."""

    @abstractmethod
    def _column_type(self, declared: str) -> pl.DataType:
        """The Polars type a column declared ``declared`` reads back as."""

    @abstractmethod
    def _declared(self, dtype: pl.DataType) -> str:
        """The type a column of Polars type ``dtype`` is declared with."""

    @abstractmethod
    def _source(self, plan: FeaturePlan, columns: list[str], ids: Mapping[str, Any] | None = None) -> str:
        """The feature's table, or an empty stand-in with ``columns`` (ids typed as ``ids``) if never written."""

    def _lacking(self, table: str, columns: list[str]) -> list[str]:
        """The ones of ``columns`` the stored ``table`` has not (see ``sql.padded``)."""
        stored = self._columns(table)
        return [c for c in columns if c not in stored]

    @abstractmethod
    def _text_cast(self, declared: str) -> str | None:
        """SQL (``{}``: the column) giving DuckDB's text of a ``declared`` column; None: the engine's cast does.

        See ``Dialect.text_casts``: the engine keeps or writes such values otherwise.
        """

    @abstractmethod
    def _increment(
        self, plan: FeaturePlan, expected: str, current: str, *, lazy: bool, ids: dict[str, Any] | None = None
    ) -> Increment:
        """The increment of ``expected`` against ``current`` (``ids``: the types of the ids of ``expected``)."""

    def _timestamp(self, text: str) -> str:
        """A SQL constant of the timestamp ``text`` (SQLite keeps it as text)."""
        return literal(text)

    def _create_indexes(self, table: str, plan: FeaturePlan) -> None:
        """Index a new latest table by ``strata_seq`` and by the resolve ids."""
        self._run(f"CREATE INDEX {ident(table + '$seq')} ON {ident(table)} ({ident(SEQ)})")
        self._run(f"CREATE INDEX {ident(table + '$ids')} ON {ident(table)} ({sql.ids_list(plan.resolve_ids)})")

    def _written(self, plan: FeaturePlan, *, created: bool) -> None:
        """After a write committed (``created``: it made the tables); nothing, unless an engine says so."""

    def _counted(self, table: str) -> None:
        """After many rows were added to ``table`` that the next statement looks up; nothing unless an engine says."""

    def _prepare_types(self, declared: Iterable[str]) -> None:
        """Create what the types ``declared`` need before a table uses them (nothing, unless an engine says so)."""

    def _drop(self, *tables: str) -> None:
        """Drop temp tables."""
        for table in tables:
            self._run(f"DROP TABLE IF EXISTS {table}")

    # -- bookkeeping ---------------------------------------------------------------------

    def _get_meta(self, name: str) -> str | None:
        rows = self._run(f"SELECT value FROM {ident(META)} WHERE name = {self.mark}", [name])
        return str(rows[0][0]) if rows else None

    def _set_meta(self, name: str, value: str) -> None:
        upsert = self._UPSERT.format("name", "value", "value")
        self._run(f"INSERT INTO {ident(META)} VALUES ({self.mark}, {self.mark}) {upsert}", [name, value])

    def _meta(self, names: Sequence[str]) -> dict[str, str]:
        marks = ", ".join([self.mark] * len(names))
        return dict(self._run(f"SELECT name, value FROM {ident(META)} WHERE name IN ({marks})", list(names)))

    def _next_seq(self, table: str, watch: Sequence[str] = ()) -> tuple[int, dict[str, int | None]]:
        """The next sequence number, taken inside the write's transaction; ``watch``'s numbers before it."""
        meta = self._meta(["seq", *(TABLE_SEQ + t for t in watch)])
        current = int(meta.get("seq") or 0) + 1
        upsert = self._UPSERT.format("name", "value", "value")
        m = self.mark
        self._run(
            f"INSERT INTO {ident(META)} VALUES ('seq', {m}), ({m}, {m}) {upsert}",
            [str(current), TABLE_SEQ + table, str(current)],
        )
        seen = {t: int(meta[TABLE_SEQ + t]) if TABLE_SEQ + t in meta else None for t in watch}
        return current, seen

    def _max_seq(self, table: str) -> int | None:
        return self._max_seqs([table])[table]

    def _max_seqs(self, tables: Sequence[str]) -> dict[str, int | None]:
        meta = self._meta([TABLE_SEQ + t for t in tables])
        return {t: int(meta[TABLE_SEQ + t]) if TABLE_SEQ + t in meta else None for t in tables}

    def _get_sync(self, key: FeatureKey) -> dict[str, Any] | None:
        rows = self._run(f"SELECT state FROM {ident(SYNC)} WHERE feature = {self.mark}", [str(key)])
        return json.loads(rows[0][0]) if rows else None

    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        upsert = self._UPSERT.format("feature", "state", "state")
        values = f"VALUES ({self.mark}, {self.mark})"
        self._run(f"INSERT INTO {ident(SYNC)} {values} {upsert}", [str(key), json.dumps(state)])

    def _clear_sync(self) -> None:
        self._run(f"DELETE FROM {ident(SYNC)}")

    def _add_snapshot(self, version: str, pushed_at: str, record: str) -> None:
        add_record(self._run, self.mark, SNAPSHOTS, (version, pushed_at, record))

    def _get_snapshots(self, version: str | None) -> list[str]:
        return get_records(self._run, self.mark, SNAPSHOTS, version) if self._has_table(SNAPSHOTS) else []

    def _add_migration_record(self, migration: str, recorded_at: str, record: str) -> None:
        add_record(self._run, self.mark, MIGRATIONS, (migration, recorded_at, record))

    def _get_migration_records(self) -> list[str]:
        return get_records(self._run, self.mark, MIGRATIONS, None) if self._has_table(MIGRATIONS) else []

    # -- writing -------------------------------------------------------------------------

    def _ensure_tables(self, plan: FeaturePlan, wanted: dict[str, str]) -> bool:
        """Create the feature's tables, or add the columns they lack; whether they were created.

        A new latest table gets its indexes from the caller once its first rows are in (one build
        of each index instead of an update per row).
        """
        created = False
        self._prepare_types(wanted.values())
        for table in (plan.table, plan.table + HISTORY):
            existing = self._columns(table)
            if self.folds_case:
                check_case(self.describe(), wanted, existing)
            if not existing:
                columns = ", ".join(f"{ident(n)} {t}" for n, t in wanted.items())
                self._run(f"CREATE TABLE {ident(table)} ({columns})")
                created = True
            for name, kind in wanted.items():
                if existing and name not in existing:
                    self._run(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(name)} {kind}")
        self._tables.update((plan.table, plan.table + HISTORY))
        return created

    def _fitted(self, plan: FeaturePlan, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` cast to the types its columns are stored with (``checks.fit_stored``)."""
        return (
            fit_stored(self.describe(), plan.key, frame, self._schema(plan.table))
            if self._has_table(plan.table)
            else frame
        )

    def _forget_created(self, plan: FeaturePlan, *, created: bool) -> None:
        """After a rollback: tables this transaction created are gone again (``_tables`` must not keep them)."""
        if created:
            self._tables.difference_update((plan.table, plan.table + HISTORY))

    def _write(
        self, plan: FeaturePlan, table: pa.Table, *, since: Mapping[str, int | None] | None = None, fresh: bool = False
    ) -> int | None:
        (frame,) = polars_frames(table)
        managed = {*plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED}
        frame = self._fitted(plan, frame.drop([c for c in frame.columns if c in managed]))
        wanted = {c: self._declared(t) for c, t in frame.schema.items()} | system_types(plan)
        batch = self._batch(frame)
        created = False
        try:
            with self._transaction():
                seq, seen = self._next_seq(plan.table, list(since or ()))
                in_step = since is not None and seen == dict(since)
                created = self._ensure_tables(plan, wanted)
                if not created and not (fresh and in_step):
                    self._supersede(plan, batch, seq)
                consts = [*(f.stored_code_version for f in plan.fields), plan.feature_version, plan.snapshot_version]
                names = [*frame.columns, *plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED]
                values = [*(ident(c) for c in frame.columns), *(literal(c) for c in consts), str(int(seq))]
                values += [self._timestamp(now()), childless(plan)]
                into = f"INSERT INTO {ident(plan.table)} ({sql.ids_list(tuple(names))})"
                self._run(f"{into} SELECT {', '.join(values)} FROM {batch}")
                if created:
                    self._create_indexes(plan.table, plan)
        except BaseException:
            self._forget_created(plan, created=created)
            raise
        finally:
            self._drop(batch)
        self._written(plan, created=created)
        return seq if since is None or in_step else None

    def _put(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> int:
        frames = [self._fitted(plan, frame) for frame in polars_frames(latest, history)]
        system = system_types(plan)
        wanted = {c: system.get(c, self._declared(t)) for f in frames for c, t in f.schema.items()}
        batches = [self._batch(f) for f in frames]
        table, older = ident(plan.table), ident(plan.table + HISTORY)
        created = False
        try:
            with self._transaction():
                seq, _ = self._next_seq(plan.table)
                created = self._ensure_tables(plan, wanted)
                if len(frames[0]):  # the latest rows of the same parents move to history, but those put again
                    parents = matching(table, batches[0], plan.resolve_ids, _never_null(plan))
                    again = matching(table, batches[0], [*plan.id_columns, WRITTEN_AT], _never_null(plan))
                    columns = sql.ids_list(tuple(self._columns(plan.table)))
                    self._run(
                        f"INSERT INTO {older} ({columns}) SELECT {columns} FROM {table} WHERE {parents} AND NOT {again}"
                    )
                    self._run(f"DELETE FROM {table} WHERE {parents}")
                for frame, batch, target in zip(frames, batches, (table, older), strict=True):
                    kept = [c for c in frame.columns if c != SEQ]  # every row put takes this store's number
                    picked = ", ".join([*(ident(c) for c in kept), str(int(seq))])
                    self._run(f"INSERT INTO {target} ({sql.ids_list((*kept, SEQ))}) SELECT {picked} FROM {batch}")
                if created:
                    self._create_indexes(plan.table, plan)
        except BaseException:
            self._forget_created(plan, created=created)
            raise
        finally:
            self._drop(*batches)
        return seq

    def _erase(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> None:
        frames = polars_frames(latest, history)
        batches = [self._batch(f) for f in frames]
        table, older = ident(plan.table), ident(plan.table + HISTORY)
        try:
            with self._transaction():
                if len(frames[0]):  # the latest table changes: a new number, as for a hard delete
                    self._next_seq(plan.table)
                    self._clear_sync()
                    self._run(
                        f"DELETE FROM {table} WHERE {matching(table, batches[0], frames[0].columns, _never_null(plan))}"
                    )
                if len(frames[1]):
                    self._run(
                        f"DELETE FROM {older} WHERE {matching(older, batches[1], frames[1].columns, _never_null(plan))}"
                    )
        finally:
            self._drop(*batches)

    def _reconcile(self, plan: FeaturePlan, fields: tuple[str, ...], taken: frozenset[str], *, dry_run: bool) -> int:
        """The rows of ``sql.reconcile_select`` inserted under a new number by one statement, then the old ones moved.

        One transaction on the server; a reconcile that rewrites no row rolls back, its number untaken.
        """
        columns = tuple(self._columns(plan.table))
        sources = {**self._sources(plan), plan.table: ident(plan.table)}  # the table itself: its rows are rewritten
        query = sql.reconcile_select(self._dialect(plan), self.hash_algorithm, plan, fields, taken, sources, columns)
        count = reconcile_checked(
            self, plan, (fields, taken), query, lambda q: int(self._run(q)[0][0]), dry_run=dry_run
        )
        if count is not None:
            return count
        names = tuple(c for c in columns if c not in (SEQ, WRITTEN_AT))
        table, keys = ident(plan.table), sql.ids_list(plan.resolve_ids)
        try:
            with self._transaction():
                seq, _ = self._next_seq(plan.table)
                into = f"INSERT INTO {table} ({sql.ids_list((*names, SEQ, WRITTEN_AT))})"
                stamp = f"{int(seq)}, {self._timestamp(now())}"
                self._run(f"{into} SELECT {sql.ids_list(names)}, {stamp} FROM ({query[0]}) AS r")
                written = int(self._run(f"SELECT count(*) FROM {table} WHERE {ident(SEQ)} = {int(seq)}")[0][0])
                if not written:
                    raise _NothingWritten
                self._counted(plan.table)  # the rows to move are found by those just inserted
                mine = f"SELECT {keys} FROM {table} WHERE {ident(SEQ)} = {int(seq)}"
                self._move(plan, f"{ident(SEQ)} <> {int(seq)} AND ({keys}) IN ({mine})", None)
        except _NothingWritten:
            return 0
        return written

    def _supersede(self, plan: FeaturePlan, batch: str, seq: int) -> None:
        """Move the latest rows of the batch's resolve ids to history; an expansion's lost children leave tombstones."""
        keys = sql.ids_list(plan.resolve_ids)
        older = f"({keys}) IN (SELECT {keys} FROM {batch})"
        if plan.child_ids:
            unless = matching(ident(plan.table), batch, plan.id_columns, _never_null(plan))
            self._move(plan, older, seq, unless=unless)
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
            live = f"NOT {ident(DELETED)}" + (f" AND NOT {unless}" if unless else "")
            self._run(f"CREATE TEMP TABLE {moved} AS SELECT * FROM {latest} WHERE {where} AND {live}")
            count = self._run(f"SELECT count(*) FROM {moved}")[0][0]
        self._run(f"INSERT INTO {history} ({columns}) SELECT {columns} FROM {latest} WHERE {where}")
        self._run(f"DELETE FROM {latest} WHERE {where}")
        if seq is not None:
            replaced = {SEQ: str(int(seq)), WRITTEN_AT: self._timestamp(now()), DELETED: "true"}
            picked = ", ".join(replaced.get(c, ident(c)) for c in names)
            self._run(f"INSERT INTO {latest} ({columns}) SELECT {picked} FROM {moved}")
            self._run(f"DROP TABLE {moved}")
        return int(count)

    def _delete(
        self, plan: FeaturePlan, ids: pa.Table, *, soft: bool, since: Mapping[str, int | None] | None = None
    ) -> tuple[int, int | None]:
        (frame,) = polars_frames(ids)
        batch = self._batch(frame)
        latest, history = ident(plan.table), ident(plan.table + HISTORY)
        try:
            with self._transaction():
                seq, seen = self._next_seq(plan.table, list(since or ()))
                match = matching(latest, batch, frame.columns, _never_null(plan))
                if soft:  # rows already deleted leave the latest table with no row in their place
                    if self._run(f"SELECT count(*) FROM {latest} WHERE {ident(DELETED)} AND {match}")[0][0]:
                        self._lost_track()
                    count = self._move(plan, match, seq)
                else:  # with the rows: no sync record may outlive them (see MetadataStore.delete)
                    self._clear_sync()
                    count = self._run(f"SELECT count(*) FROM {latest} WHERE NOT {ident(DELETED)} AND {match}")[0][0]
                    self._run(f"DELETE FROM {latest} WHERE {match}")
                    self._run(
                        f"DELETE FROM {history} WHERE {matching(history, batch, frame.columns, _never_null(plan))}"
                    )
        finally:
            self._drop(batch)
        return int(count), seq if since is None or seen == dict(since) else None

    # -- reading -------------------------------------------------------------------------

    def _schema(self, table: str) -> dict[str, pl.DataType]:
        return {c: self._column_type(t) for c, t in self._columns(table).items()}

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
        return nw.from_native(self._frame(query, schema).lazy())

    def _read_matching(self, plan: FeaturePlan, match: Mapping[str, Any], *, history: bool) -> pl.DataFrame | None:
        """The few rows asked, found by the engine (through the ids index where it applies), not the whole table.

        Each value is cast to its column's stored type (``checks.typed_match``) and written as
        the engine's own constant (:meth:`_literal`): one plain ``SELECT``, which a session
        that may not write (a read replica) runs too.
        """
        import polars as pl

        if not self._has_table(plan.table):
            return None
        schema = self._schema(plan.table)
        values = typed_match(match, schema)
        if values is None:
            return pl.DataFrame(schema=schema)  # no stored row can hold these values
        checks = [f"{ident(c)} IS NULL" for c, v in match.items() if v is None and c in schema]
        checks += [f"{ident(c)} = {self._literal(values[c])}" for c in values.columns]
        where = " AND ".join(checks) or "true"
        columns = sql.ids_list(tuple(schema))
        tables = [plan.table + HISTORY, plan.table] if history else [plan.table]
        query = " UNION ALL ".join(f"SELECT {columns} FROM {ident(t)} WHERE {where}" for t in tables)
        return self._frame(query, schema)

    @abstractmethod
    def _literal(self, value: pl.Series) -> str:
        """The SQL constant of a one-value series of a stored type, as the engine keeps such a value."""

    def _holds_rows(self, plan: FeaturePlan) -> bool:
        return self._has_table(plan.table) and bool(self._run(f"SELECT 1 FROM {ident(plan.table)} LIMIT 1"))

    def _stored_schema(self, plan: FeaturePlan, columns: Sequence[str]) -> dict[str, Any] | None:
        stored = self._schema(plan.table) if self._has_table(plan.table) else {}
        if not stored or any(c not in stored for c in columns):
            return None
        return {c: stored[c] for c in columns}

    # -- increments ----------------------------------------------------------------------

    def _sources(self, plan: FeaturePlan) -> dict[str, str]:
        """The tables a resolve of ``plan`` reads; a stand-in's ids typed as the stored ones."""
        own = [*plan.id_columns, *plan.input_columns, *plan.cv_columns, *plan.dv_columns]
        tables = [plan.table, *(u.table for u in plan.upstreams)]
        ids = None
        if not all(self._has_table(t) for t in tables):
            columns = {*plan.id_columns, *(c for u in plan.upstreams for c in u.id_columns)}
            ids = self._id_schema(plan, sorted(columns))
        sources = {plan.table: self._source(plan, own, ids)}
        for up in plan.upstreams:
            sources[up.table] = self._source(
                self.plan(up.key), [*up.id_columns, *(f"strata_dv__{f}" for f in up.fields)], ids
            )
        return sources

    def _candidates(
        self, plan: FeaturePlan, sources: dict[str, str], since: dict[str, int], only: dict[str, Any] | None
    ) -> str:
        """A temp table of the resolve ids that may have changed since the last sync."""
        import polars as pl

        name = ident(f"strata$cand_{next(_names)}")
        keys = sql.ids_list(plan.resolve_ids)
        if only is not None:
            types = self._id_schema(plan, plan.resolve_ids)
            batch = self._batch(pl.DataFrame({k: [only[k]] for k in plan.resolve_ids}, schema=types))
            self._run(f"ALTER TABLE {batch} RENAME TO {name}")
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
                self._drop(candidates)

    def _dialect(self, plan: FeaturePlan) -> sql.Dialect:
        """:attr:`dialect`, with the text casts the ids of ``plan``'s upstreams need."""
        return with_text_casts(
            self.dialect, plan, lambda t: self._columns(t) if self._has_table(t) else {}, self._text_cast
        )

    def _resolve_root(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        (frame,) = polars_frames(samples.select([*plan.id_columns, *plan.dv_columns]))
        batch = self._batch(frame)
        try:
            own = [*plan.id_columns, *plan.cv_columns, *plan.dv_columns]
            ids = {c: frame.schema[c] for c in plan.id_columns}
            current = sql.current_select(plan, None, self._source(plan, own, ids))
            return self._increment(plan, f"SELECT * FROM {batch}", current, lazy=lazy, ids=ids)
        finally:
            self._drop(batch)

    def _tagged(self, plan: FeaturePlan, expected: str, current: str, ids: dict[str, Any] | None) -> pl.DataFrame:
        """The rows of ``sql.increment_query``, typed: ids as stored (or as ``ids``), the rest text."""
        query = sql.increment_query(self.dialect, self.hash_algorithm, plan, expected, current)
        return self._frame(query, self._increment_schema(plan, ids))


def with_text_casts(
    dialect: Dialect,
    plan: FeaturePlan,
    columns: Callable[[str], Mapping[str, str]],
    text_cast: Callable[[str], str | None],
) -> Dialect:
    """``dialect`` with the text casts (``Dialect.text_casts``) the ids of ``plan``'s upstreams need.

    ``columns``: a table's declared column types ({} when it does not exist); ``text_cast``: the SQL
    template giving DuckDB's text of a declared type, None where the engine's own cast does.
    """
    casts = {}
    for up in plan.upstreams:
        for column, declared in columns(up.table).items():
            cast = text_cast(declared)
            if cast is not None:
                casts[up.table, column] = cast
    return dataclasses.replace(dialect, text_casts=casts) if casts else dialect


def split_increment(plan: FeaturePlan, rows: pl.DataFrame, *, lazy: bool) -> Increment:
    """The rows of ``sql.increment_query`` cut into the three parts."""
    import narwhals as nw
    import polars as pl

    split = {}
    for name, columns in sql.part_columns(plan).items():
        part = rows.filter(pl.col(sql.PART) == sql.part_code(name))
        picked = part.select([pl.col(a).alias(b) for a, b in columns.items()])
        split[name] = nw.from_native(picked.lazy() if lazy else picked)
    return Increment(plan.key, split["added"], split["changed"], split["removed"], lazy=lazy)


def refuse_nanoseconds(store: str, frame: pl.DataFrame) -> None:
    """Refuse times and datetimes finer than a microsecond, before anything is written.

    SQLite and PostgreSQL keep them to the microsecond (``store``: the one-line name of the store);
    DuckDB keeps nanoseconds, so the text an aggregation folds in would differ.
    """
    import polars as pl

    for name, dtype in frame.schema.items():
        if dtype == pl.Time or (isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns"):
            finer = frame[name].drop_nulls().to_physical() % 1000 != 0
            if finer.any():
                raise WriteError(
                    f"column `{name}` holds a time finer than a microsecond, which {store} keeps to the microsecond",
                    "round it to microseconds, or use a DuckDB store for such values; nothing was written",
                )


def _never_null(plan: FeaturePlan) -> tuple[str, ...]:
    """Columns no stored row has null (``checks.py`` refuses null resolve ids): compared with ``=``."""
    return (*plan.resolve_ids, SEQ, WRITTEN_AT)


class _NothingWritten(Exception):
    """A reconcile found no row to rewrite: its transaction rolls back."""


def reconcile_checked(
    store: MetadataStore,
    plan: FeaturePlan,
    reconciled: tuple[tuple[str, ...], frozenset[str]],
    query: tuple[str, str],
    count: Callable[[str], int],
    *,
    dry_run: bool,
) -> int | None:
    """Refuse a reconcile that would hide a left-out field's staleness; in a dry run, how many rows it would write.

    ``reconciled`` the fields and the inputs taken, ``query`` ``sql.reconcile_select``'s pair,
    ``count`` runs a ``SELECT count(*)`` in the store's engine. None: go on and write.
    """
    select, moved = query
    if moved != "false":
        conflicts = count(f"SELECT count(*) FROM ({select} AND ({moved})) AS r")
        if conflicts:
            raise store._shared_input_error(plan, *reconciled, conflicts)  # noqa: SLF001 - the store's own message
    return count(f"SELECT count(*) FROM ({select}) AS r") if dry_run else None


def now() -> str:
    """Now (UTC, naive) as ISO text, as both engines keep ``strata_written_at``."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
