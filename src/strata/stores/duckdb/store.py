"""The DuckDB store: the embedded default, a file or ``:memory:``.

Joins, hashes and comparisons run as SQL inside DuckDB (``versioning/sql.py``); only the
increment comes out. No extension is installed or loaded: ``md5`` and ``sha256`` are built in.

Tables: ``<feature>`` (the latest row per sample, tombstones included), ``<feature>$history``
(every row a later write or delete superseded; with the latest rows it is the full history), both
views of a split table (see :data:`WRITES`: ``<feature>$rows``, ``<feature>$history$rows`` and
``<feature>$writes``) or, made by an older strata, tables,
``strata$meta`` (hash algorithm, write sequence, each table's last sequence number) and
``strata$sync`` (what each feature last saw in sync). ``$`` cannot appear in a feature's table
name, so nothing collides. A fresh connection answers a resolve without asking the catalog: the
meta rows say which tables exist.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from strata.errors import DefinitionError, WriteError
from strata.features.versions import DEFAULT_ALGORITHM
from strata.resolve import sql
from strata.resolve.increment import Increment
from strata.resolve.plan import (
    CAUSE,
    CV,
    DELETED,
    DV,
    FEATURE_VERSION,
    IN,
    SEQ,
    SNAPSHOT_VERSION,
    WRITTEN_AT,
    FeaturePlan,
)
from strata.resolve.sql import ident, literal
from strata.stores.base import MetadataStore
from strata.stores.checks import (
    BITMAP_TYPES,
    RowFacts,
    bitmap_fits,
    check_case,
    check_columns,
    check_facts,
    fit_stored,
    sql_bitmap_query,
    sql_bounds_query,
    sql_counts,
    sql_counts_query,
    sql_distinct_query,
    sql_facts,
    sql_facts_queries,
    to_arrow,
)
from strata.stores.duckdb import DEFAULT_MEMORY_LIMIT, is_memory_limit
from strata.stores.snapshots import MIGRATIONS, SNAPSHOTS
from strata.stores.sqltables import (
    HISTORY,
    KEPT,
    META,
    POLARS_TYPES,
    SYNC,
    TABLE_SEQ,
    add_record,
    childless,
    get_records,
    matching,
    reconcile_checked,
)
from strata.stores.sync import Pending, SqlPending

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator, Mapping, Sequence

    import duckdb
    import narwhals as nw
    import pyarrow as pa

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey

VERSION_COMPRESSION = "uncompressed"
"""How the version columns (``strata_dv__*``, ``strata_in__*``) are stored.

Mostly random hex: DuckDB's analysis of them for each compression it knows was most of a
write's time (~0.1 s per column per 1M rows). A 1M-sample first pass (bench/features/
first_pass.py --lazy): 49 MB and ~3.8 CPU s as DuckDB picks, 107 MB and ~2.4 s uncompressed,
67 MB and ~2.7 s with ``zstd``.
"""
RUN_COMPRESSION = "rle"
"""How ``strata_seq``, ``strata_deleted`` and ``strata_write`` are stored: in runs.

All the rows of a write share them, so DuckDB stores them as constants or runs whichever it
picks; picking meant analysing each for every compression it knows, ~0.009 CPU s per column per
1M rows, a twentieth of a 1M-sample first pass (bench/features/README.md). Declared, they are
stored as before (a write's row groups hold constants) without the analysis.
"""
SESSION_ZONE = "UTC"
"""The connection's time zone: DuckDB writes a zoned datetime as text in it (the machine's, unless told), and an
aggregation folds that text into its data version (docs/stores.md, "The canonical text of a value")."""
MOVED_IN_ONE = 50_000
"""Up to this many ids written, the rows a write supersedes move in one statement (see ``_supersede``).

Process CPU of the move and its commit, one statement against an ``INSERT`` then a ``DELETE``:
1,000 ids written into 1M stored rows 21 ms against 25 ms, into 10M 58 ms against 74 ms;
333,000 ids into 1M 0.32 s against 0.24 s, into 10M 0.44 s against 0.42 s.
"""
ROWS = "$rows"
"""A split table's stored rows (see :data:`WRITES`): ``<table>$rows``, ``<table>$history$rows``."""
WRITES = "$writes"
"""Per feature table, ``<table>$writes``: what is constant across a write's rows, one row per write.

A table made by this strata is *split*: its rows keep the id, user and version columns,
``strata_seq``, ``strata_deleted`` and :data:`WRITE`, a number naming their row of
``<table>$writes``, which holds the code versions, the feature and snapshot versions and
``strata_written_at``. The feature's tables ``<table>`` and ``<table>$history`` are views joining
the two, so every reader sees the columns rows always had. A write's rows point at the entry
numbered as its ``strata_seq``; tombstones and copied rows, whose versions or times are not their
write's, at entries of their own, numbered below zero. Writing the constant columns into every
row was ~0.2 CPU s per 1M rows of a feature (bench/features/README.md). Tables made by an older
strata keep their layout (every column in every row) and are read and written as before.
"""
WRITE = "strata_write"
"""A split table's column naming the row's entry of ``<table>$writes``."""
SPLIT = "split@"
"""Meta entries ``split@<table>``: the feature table is split, recorded with the tables in one transaction."""
CONSTANT = (FEATURE_VERSION, SNAPSHOT_VERSION, WRITTEN_AT)
"""With the code versions (``strata_cv__*``), the columns a split table keeps per write."""
_names = itertools.count()


def _constant(name: str) -> bool:
    """Whether a split table keeps ``name`` in its writes table rather than in its rows."""
    return name.startswith(CV) or name in CONSTANT


_INTEGERS = frozenset(
    ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
)
_WIDER = frozenset((("FLOAT", "DOUBLE"), ("DATE", "TIMESTAMP")))
FITS = "fits"
"""Marks, in ``DuckDBStore._ready``, a batch shape whose values DuckDB's ``INSERT`` keeps as they are or refuses."""


def _loud(given: str, stored: str) -> bool:
    """Whether DuckDB's ``INSERT`` of a ``given`` value into a ``stored`` column keeps it as it is or fails.

    An integer into another integer type fails when out of range; a number into text is its
    text by design. A float into an integer column is rounded, a timestamp into a date cut, a
    big integer into a float rounded, a number into a boolean made ``true``: those are not.
    """
    if stored in (given, "VARCHAR") or (given, stored) in _WIDER:
        return True
    if stored == "DOUBLE":  # integers of up to 32 bits are all doubles
        return given in ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER")
    return stored in _INTEGERS and (given in _INTEGERS or given == "BOOLEAN")


def _lossy(given: str, stored: str) -> bool:
    """Whether values of DuckDB type ``given`` must be checked before they go into a ``stored`` column.

    Text and nested values are left to the ``INSERT`` (text that is no value of the stored type
    fails it), as are timestamps of another unit or zone (the store's own conversion), as
    :func:`~strata.stores.checks.fit_stored` leaves them.
    """
    if _loud(given, stored) or given == "VARCHAR":
        return False
    if any(mark in kind for kind in (given, stored) for mark in ("[", "STRUCT", "MAP", "UNION")):
        return False
    return not (given.startswith("TIMESTAMP") and stored.startswith("TIMESTAMP"))


def _polars(kind: str) -> str:
    """The Polars name of DuckDB type ``kind`` where there is one, for messages."""
    return POLARS_TYPES.get(kind, kind)


def _column_ddl(name: str, kind: str) -> str:
    """A feature table's column, its compression declared where DuckDB's pick is known (the rest: as it picks).

    Text data and input versions as ``VERSION_COMPRESSION``; a row's number, deletion flag and
    writes entry as ``RUN_COMPRESSION``. A column whose first batch holds only nulls of no type
    (Polars' ``Null``) becomes text: a column of DuckDB's ``NULL`` type could never take a value later.
    """
    if kind.strip('"') == "NULL":
        kind = "VARCHAR"
    if name.startswith((DV, IN)) and kind == "VARCHAR":
        return f"{ident(name)} {kind} USING COMPRESSION {VERSION_COMPRESSION}"
    if name in (SEQ, DELETED, WRITE):
        return f"{ident(name)} {kind} USING COMPRESSION {RUN_COMPRESSION}"
    return f"{ident(name)} {kind}"


class _NothingToWrite(Exception):
    """A checked write found no rows: its transaction rolls back."""


class _Written(NamedTuple):
    """What :meth:`DuckDBStore._write_source` did."""

    seq: int
    rows: int
    """Rows written (-1: not counted)."""
    in_step: bool
    """The tables' numbers were as ``since`` said when the write took its number."""


def _relation_of(frame: Any) -> duckdb.DuckDBPyRelation | None:
    """The DuckDB relation ``frame`` is (bare or wrapped by Narwhals), else None; never imports DuckDB."""
    import sys

    duckdb = sys.modules.get("duckdb")
    if duckdb is None:
        return None
    native = frame
    narwhals = sys.modules.get("narwhals")
    if narwhals is not None and isinstance(frame, (narwhals.DataFrame, narwhals.LazyFrame)):
        native = frame.to_native()
    return native if isinstance(native, duckdb.DuckDBPyRelation) else None


def _id_type(plan: FeaturePlan, described: list[tuple[Any, ...]]) -> str | None:
    """The SQL type of the feature's one id column among the rows of a ``DESCRIBE`` (None with several ids)."""
    types = {str(row[0]): str(row[1]) for row in described}
    return types.get(plan.id_columns[0]) if len(plan.id_columns) == 1 else None


def _run(con: duckdb.DuckDBPyConnection | None, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Execute and fetch everything (DuckDB refuses new work while a result is unfinished)."""
    assert con is not None
    return con.execute(query, params or []).fetchall()


LOCK_WAIT = 5.0
"""Seconds a writer waits for a file another process holds open (a read of ``strata ui`` or ``strata status``)."""


def _connect_writer(path: str, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(path)`` to write, tried again in short steps for :data:`LOCK_WAIT` seconds while it is locked.

    DuckDB lets one process write a file only while no other has it open, and does not wait:
    a reader that opens, reads and closes lets go within moments.
    """
    import time

    import duckdb

    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return duckdb.connect(path, config=config)
        except duckdb.IOException as exc:
            if not is_lock_conflict(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether DuckDB refused to open a file because another process holds it."""
    return "Could not set lock on file" in str(exc)


class DuckDBStore(MetadataStore):
    """Metadata in a DuckDB database (``path``: a file, or ``":memory:"``).

    ``memory_limit``: how much memory DuckDB may use before it spills to disk, as DuckDB writes it
    (``4GB``, ``512MiB``) or a share of the machine's memory (``50%``, the default).
    """

    kind = "duckdb"

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        hash_algorithm: str = DEFAULT_ALGORITHM,
        graph: FeatureGraph | None = None,
        read_only: bool = False,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        fallbacks: Sequence[MetadataStore] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(
            hash_algorithm=hash_algorithm, graph=graph, read_only=read_only, fallbacks=fallbacks, name=name
        )
        if not is_memory_limit(memory_limit):
            raise DefinitionError(
                f"memory_limit `{memory_limit}` is not a size",
                "write a size such as 4GB or 512MiB, or a share of the machine's memory like 50%",
            )
        self.memory_limit = memory_limit.strip()
        self.path = str(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._tables: set[str] = set()
        """Tables known to exist on this connection."""
        self._known_columns: dict[str, set[str]] = {}
        """Per table, columns known to exist on this connection (see ``_lacking``)."""
        self._ready: dict[str, set[Hashable]] = {}
        """Per feature table, the shapes of rows its tables were made ready for (see ``_ensure_tables``)."""
        self._schema: str | None = None
        """The connection's database and schema, quoted (see ``_has_table``)."""
        self._attached: dict[str, str] = {}
        """Fallback files attached read-only to this connection (resolved path -> alias), for its life."""
        self._through: dict[str, str] = {}
        """During a chained resolve: upstream tables a fallback holds -> their qualified names."""
        self._split: dict[str, bool] = {}
        """Feature tables known on this connection -> whether they are split (see :data:`WRITES`)."""
        self._planned_empty: dict[str, set[str]] = {}
        """Per feature table, the SQL of the parts its last lazy resolve planned empty (see :meth:`_write_in_place`)."""

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The open connection (``to_native()`` for users who want raw SQL)."""
        self._require_open()
        assert self._con is not None
        return self._con

    def to_native(self) -> duckdb.DuckDBPyConnection:
        return self.con

    # -- lifecycle -----------------------------------------------------------------------

    def _open(self) -> None:
        import duckdb

        self._check_place(self.path)
        if self.read_only:
            # A file that does not exist yet is an empty store: nothing is created for a read.
            exists = self.path != ":memory:" and Path(self.path).exists()
            config: dict[str, Any] = {"memory_limit": self.memory_limit}
            self._con = duckdb.connect(self.path if exists else ":memory:", read_only=exists, config=config)
        else:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._con = _connect_writer(self.path, {"memory_limit": self.memory_limit})
        _run(self._con, f"SET TimeZone = {literal(SESSION_ZONE)}")  # ICU is built in; as a connect option it is not yet
        self._tables = set()
        self._known_columns = {}
        self._ready = {}
        self._schema = None
        self._attached = {}
        try:  # one query, no catalog lookup: a store that has its bookkeeping tables answers at once
            meta = _run(
                self._con,
                f"SELECT name, value FROM {ident(META)} UNION ALL (SELECT feature, state FROM {ident(SYNC)} LIMIT 0)",
            )
        except duckdb.CatalogException:
            meta = self._create_bookkeeping(temporary=self.read_only and exists)
        self._tables.update(str(name).removeprefix(TABLE_SEQ) for name, _ in meta if str(name).startswith(TABLE_SEQ))
        # a table written (seq@) with no split@ entry was made before tables were split: the entry
        # commits with the split tables, before their first write takes a number
        split = {str(name).removeprefix(SPLIT) for name, _ in meta if str(name).startswith(SPLIT)}
        self._split = {table: table in split for table in self._tables} | dict.fromkeys(split, True)

    def _create_bookkeeping(self, *, temporary: bool) -> list[tuple[Any, ...]]:
        """Create the meta and sync tables that are missing (as temp tables in a read-only file); the meta rows."""
        kind = "TEMP TABLE" if temporary else "TABLE"
        for table, columns in (
            (META, "name VARCHAR PRIMARY KEY, value VARCHAR"),
            (SYNC, "feature VARCHAR PRIMARY KEY, state VARCHAR"),
        ):
            if not temporary or not self._has_table(table):  # a temp table would hide the file's
                _run(self._con, f"CREATE {kind} IF NOT EXISTS {ident(table)} ({columns})")
        return _run(self._con, f"SELECT name, value FROM {ident(META)}")

    def _keep_table_seqs(self) -> None:
        """Fill the bookkeeping in from the tables: a store written before it, or written behind its back.

        Each feature table's entry becomes its highest ``strata_seq``; the write sequence and
        ``seq_by_table`` become the highest number seen anywhere, so every later write takes a
        number above every row's.
        """
        con = self._con
        tables = _run(  # feature tables: those with a sequence column, history tables aside
            con,
            "SELECT table_name FROM duckdb_columns() WHERE database_name = current_database() "
            f"AND schema_name = current_schema() AND column_name = '{SEQ}' AND NOT contains(table_name, '$')",
        )
        seen = {str(t): _run(con, f"SELECT max({ident(SEQ)}) FROM {ident(str(t))}")[0][0] for (t,) in tables}
        values = {TABLE_SEQ + table: int(value) for table, value in seen.items() if value is not None}
        top = max([int(self._get_meta("seq") or 0), *values.values()])
        values.update({"seq": top, KEPT: top})
        rows = ", ".join(["(?, ?)"] * len(values))
        params = [str(item) for pair in values.items() for item in pair]
        _run(con, f"INSERT OR REPLACE INTO {ident(META)} VALUES {rows}", params)  # one statement: all or none

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        self._tables = set()
        self._known_columns = {}
        self._ready = {}
        self._schema = None
        self._attached = {}
        self._split = {}
        self._planned_empty = {}

    def _get_meta(self, name: str) -> str | None:
        assert self._con is not None
        rows = _run(self._con, f"SELECT value FROM {ident(META)} WHERE name = ?", [name])
        return str(rows[0][0]) if rows else None

    def _set_meta(self, name: str, value: str) -> None:
        assert self._con is not None
        _run(self._con, f"INSERT OR REPLACE INTO {ident(META)} VALUES (?, ?)", [name, value])

    def _next_seq(self, table: str, watch: Sequence[str] = ()) -> tuple[int, dict[str, int | None]]:
        """The next store-wide sequence number, taken for a write or delete of ``table``; ``watch``'s numbers before.

        Called inside the write's transaction: the number, the table's entry (``seq@<table>``,
        what :meth:`_max_seq` reads) and ``seq_by_table`` commit with the rows or not at all.
        The entries of the ``watch`` tables are read by the same query, so they are what the
        tables held when this write took its number.
        """
        names = list(dict.fromkeys(["seq", KEPT, TABLE_SEQ + table, *(TABLE_SEQ + t for t in watch)]))
        meta = self._meta(names)
        if not self._bookkept(meta):
            self._keep_table_seqs()
            meta = self._meta(names)
        current = str(int(meta.get("seq") or 0) + 1)
        taken = ["seq", KEPT, TABLE_SEQ + table]
        if all(name in meta for name in taken):  # an update in place is cheaper than INSERT OR REPLACE
            _run(self.con, f"UPDATE {ident(META)} SET value = ? WHERE name IN (?, ?, ?)", [current, *taken])
        else:
            pairs = [item for name in taken for item in (name, current)]
            _run(self.con, f"INSERT OR REPLACE INTO {ident(META)} VALUES (?, ?), (?, ?), (?, ?)", pairs)
        seen = {t: int(meta[TABLE_SEQ + t]) if TABLE_SEQ + t in meta else None for t in watch}
        return int(current), seen

    def _meta(self, names: Sequence[str]) -> dict[str, str]:
        """The meta entries among ``names`` that exist, in one query."""
        marks = ", ".join(["?"] * len(names))
        return dict(_run(self.con, f"SELECT name, value FROM {ident(META)} WHERE name IN ({marks})", list(names)))

    @staticmethod
    def _bookkept(meta: dict[str, str]) -> bool:
        """Whether every write so far kept its table's entry: ``seq_by_table`` equals the write sequence.

        A store written before the bookkeeping (or by an older strata since) has a higher
        sequence than ``seq_by_table``, or none of it.
        """
        return meta.get(KEPT) == meta.get("seq")

    def _has_table(self, table: str) -> bool:
        """Whether ``table`` exists; known tables are answered without a query.

        Feature tables are never dropped, so "exists" is kept in ``_tables`` for the connection's
        life (code that drops one must discard it there); "missing" is asked again each time
        (another connection may have created it meanwhile).
        """
        if table in self._tables:
            return True
        import duckdb

        con = self._con if self._con is not None else self.con
        if self._schema is None:
            database, schema = _run(con, "SELECT current_database(), current_schema()")[0]
            self._schema = f"{ident(str(database))}.{ident(str(schema))}"
        try:  # the name qualified, so a temp table of that name is not taken for it; faster than duckdb_tables()
            _run(con, f"DESCRIBE {self._schema}.{ident(table)}")
        except duckdb.CatalogException:
            return False
        self._tables.add(table)
        return True

    def _columns(self, table: str) -> dict[str, str]:
        """Column names and types of ``table`` ({} when it does not exist); ``DESCRIBE`` skips the catalog views."""
        import duckdb

        try:
            rows = _run(self.con, f"DESCRIBE {ident(table)}")
        except duckdb.CatalogException:
            return {}
        return {str(row[0]): str(row[1]) for row in rows}

    def _lacking(self, table: str, columns: list[str]) -> list[str]:
        """The ones of ``columns`` the stored ``table`` has not (see ``sql.padded``).

        Columns are never dropped (and added outside transactions), so the ones seen are kept for
        the connection's life; a column not among them is asked again (it may have been added since).
        """
        if not set(columns) <= self._known_columns.get(table, set()):
            self._known_columns[table] = set(self._columns(table))
        return [c for c in columns if c not in self._known_columns[table]]

    def _is_split(self, table: str) -> bool:
        """Whether the feature table ``table`` is split (see :data:`WRITES`); known once per connection.

        A table's layout is fixed when it is made, so it is remembered; the meta rows read at open
        tell it for every table written then (``split@<table>``). A table that does not exist yet
        is not split (it will be when its first write makes it) and is asked again.
        """
        split = self._split.get(table)
        if split is None:
            if not self._has_table(table):
                return False
            split = self._split[table] = bool(self._columns(table + WRITES))
        return split

    def _stored(self, table: str) -> str:
        """The quoted name of the table that holds the rows of ``table`` (a feature's latest table or its history).

        Writes, moves and deletes change it; readers read ``table`` (for a split table, the view).
        """
        feature = table.removesuffix(HISTORY)
        return ident(table + ROWS if self._is_split(feature) else table)

    # -- writing -------------------------------------------------------------------------

    def _system_select(
        self, plan: FeaturePlan, source: str, columns: list[str], seq: int, *, entry: str | None = None
    ) -> str:
        """The rows of ``source``, system columns stamped; ``entry``: as a split table holds them, pointing at it."""
        managed = [*plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED]
        number = f"CAST({seq} AS BIGINT) AS {ident(SEQ)}"
        split = entry is not None
        if split:
            consts = [number, f"{childless(plan)} AS {ident(DELETED)}", f"{entry} AS {ident(WRITE)}"]
        else:  # the order of the columns a first write made, before tables were split
            *versions, written_at = self._write_constants(plan)
            consts = [*versions, number, written_at, f"{childless(plan)} AS {ident(DELETED)}"]
        keep = [ident(c) for c in columns if c not in managed and not (split and (_constant(c) or c == WRITE))]
        return f"SELECT {', '.join([*keep, *consts])} FROM {source}"

    def _insert(self, plan: FeaturePlan, source: str, columns: list[str], seq: int) -> str:
        """The statement that appends the rows of ``source`` as write ``seq``; in a split table, with its entry.

        One statement either way: the entry is inserted by a ``WITH`` whose number the rows take.
        """
        stored = self._stored(plan.table)
        if not self._is_split(plan.table):
            return f"INSERT INTO {stored} BY NAME {self._system_select(plan, source, columns, seq)}"
        entry = ", ".join([f"CAST({seq} AS BIGINT) AS {ident(WRITE)}", *self._write_constants(plan)])
        made = f"INSERT INTO {ident(plan.table + WRITES)} BY NAME SELECT {entry} RETURNING {ident(WRITE)}"
        rows = self._system_select(plan, source, columns, seq, entry=f"(SELECT {ident(WRITE)} FROM entry)")
        return f"WITH entry AS ({made}) INSERT INTO {stored} BY NAME {rows}"

    @staticmethod
    def _write_constants(plan: FeaturePlan) -> list[str]:
        """What a write stamps on each of its rows, but its number and ``strata_deleted``: SQL select items."""
        consts = [f"{literal(f.stored_code_version)} AS {ident(f.cv_column)}" for f in plan.fields]
        return [
            *consts,
            f"{literal(plan.feature_version)} AS {ident(FEATURE_VERSION)}",
            f"{literal(plan.snapshot_version)} AS {ident(SNAPSHOT_VERSION)}",
            f"CAST(now() AS TIMESTAMP) AS {ident(WRITTEN_AT)}",
        ]

    def _write(
        self, plan: FeaturePlan, table: pa.Table, *, since: Mapping[str, int | None] | None = None, fresh: bool = False
    ) -> int | None:
        self._check_fit(plan, table)
        batch = f"strata_batch_{next(_names)}"
        self.con.register(batch, table)
        try:
            written = self._write_source(
                plan, ident(batch), table.column_names, since=since, fresh=fresh, shape=table.schema
            )
        finally:
            self.con.unregister(batch)
        assert written is not None
        return written.seq if since is None or written.in_step else None

    def _check_fit(self, plan: FeaturePlan, table: pa.Table) -> None:
        """Refuse rows whose columns the stored ones cannot take (``checks.fit_stored``), before anything is written.

        DuckDB converts the rest itself, as it inserts. A first write has nothing to check, and
        rows shaped as a batch this connection wrote before are not checked again when each of
        their columns the ``INSERT`` converts can only fail loudly (see :func:`_loud` and
        :meth:`_ensure_tables`): a build's batches cost no query. Their values may still not
        convert: the ``INSERT`` fails, rolls back, and :meth:`_misfit` says so in the same words.
        A shape with a column DuckDB would round or cut (a float into an integer column) is
        checked batch by batch.
        """
        if (FITS, (plan.cv_columns, table.schema)) in self._ready.get(plan.table, ()) or not self._has_table(
            plan.table
        ):
            return
        import polars as pl

        batch = pl.from_arrow(table.slice(0, 0))
        assert isinstance(batch, pl.DataFrame)
        present = [c for c in batch.columns if c in self._columns(plan.table)]
        stored = (self._stored_schema(plan, present) or {}) if present else {}
        differ = {c: t for c, t in stored.items() if batch.schema[c] != t}
        if differ:
            rows = pl.from_arrow(table.select(list(differ)))
            assert isinstance(rows, pl.DataFrame)
            fit_stored(self.describe(), plan.key, rows, differ)

    def _write_in_place(self, plan: FeaturePlan, frame: Any) -> int | None:
        """Write a DuckDB relation of this store's connection without its rows leaving DuckDB.

        An increment's lazy parts (``resolve_update(..., lazy=True)``) are such relations. The
        rows are evaluated once, by the ``INSERT``; the checks run in SQL on the rows it
        inserted, inside the write's transaction, which rolls back when one fails. A part of
        the last resolve written whole, as it was returned, with nothing written since, is not
        checked again: the store made it from rows it had checked (one row per sample, ids and
        data versions present).
        """
        relation = _relation_of(frame)
        if relation is None:
            return None
        import duckdb

        view = f"strata_rows_{next(_names)}"
        try:
            self.con.register(view, relation)
        except duckdb.Error as exc:
            raise WriteError(
                "cannot read rows from a DuckDB relation of another database",
                "pass a relation of this store's connection (store.con) or a Polars, pandas or PyArrow frame",
            ) from exc
        try:
            columns = [c for c in relation.columns if not c.startswith(CAUSE)]  # an increment's, not data
            check_columns(plan, columns)
            query = relation.sql_query()
            if query in self._planned_empty.get(plan.table, ()):  # no rows, whatever is stored: nothing changes
                return 0
            pending = self._pending.pop(plan.key, None)
            in_sql = None
            if pending is not None and self._sync_state(plan) == pending.state:
                in_sql = self._in_sql(plan, pending)
            elif pending is not None:
                pending.forget()
            trusted = in_sql is not None and in_sql.is_part(query)
            if in_sql is not None:
                in_sql.before_write(query)
            since = None if in_sql is None else in_sql.state["tables"]
            shape = tuple((c, str(t)) for c, t in zip(relation.columns, relation.types, strict=True) if c in columns)
            written = self._write_source(
                plan, ident(view), columns, check=not trusted, counted=True, since=since, shape=shape, fit=True
            )
            if written is None:  # no rows: nothing changed; in sync if the resolve asked for nothing else
                if in_sql is not None and in_sql.settle_write(None, query):
                    self._settle(plan, in_sql)
                return 0
            seq, count, in_step = written
            rows = f"(SELECT * FROM {ident(plan.table)} WHERE {ident(SEQ)} = {seq})"
            if in_sql is not None and in_step and in_sql.settle_write(rows, query):
                self._settle(plan, in_sql, {**in_sql.state["tables"], plan.table: seq})
            elif in_sql is not None:
                in_sql.forget()
            return count
        finally:
            self.con.unregister(view)

    def _in_sql(self, plan: FeaturePlan, pending: Pending | SqlPending) -> SqlPending | None:
        """``pending`` kept in the database: an eager resolve's frames copied into temp tables."""
        if isinstance(pending, SqlPending):
            return pending
        if pending.done:
            return None
        asked, gone = f"strata_frame_{next(_names)}", f"strata_frame_{next(_names)}"
        self.con.register(asked, to_arrow(pending.asks()))
        self.con.register(gone, to_arrow(pending.removed))
        try:
            queries = f"SELECT * FROM {ident(asked)}", f"SELECT * FROM {ident(gone)}"
            in_sql = SqlPending(self._sql_runner(), plan, pending.state, [queries[0]], queries[1])
            in_sql.materialize()
        finally:
            self.con.unregister(asked)
            self.con.unregister(gone)
        return in_sql

    def _sql_runner(self) -> Any:
        """``run(sql)`` on this store's connection while it is open (a closed one has no temp tables left)."""

        def run(query: str) -> list[tuple[Any, ...]]:
            return _run(self._con, query) if self._con is not None else []

        return run

    def _settle_write(self, plan: FeaturePlan, pending: Pending | SqlPending, table: pa.Table) -> bool:
        if isinstance(pending, Pending):
            return super()._settle_write(plan, pending, table)
        return self._with_registered(table, pending.settle_write)

    def _settle_delete(self, plan: FeaturePlan, pending: Pending | SqlPending, ids: pa.Table) -> bool:
        if isinstance(pending, Pending):
            return super()._settle_delete(plan, pending, ids)
        return self._with_registered(ids, pending.settle_delete)

    def _with_registered(self, table: pa.Table, settle: Any) -> bool:
        name = f"strata_frame_{next(_names)}"
        self.con.register(name, table)
        try:
            return bool(settle(ident(name)))
        finally:
            self.con.unregister(name)

    def _remember(self, plan: FeaturePlan, state: dict[str, Any], increment: Increment) -> Pending | SqlPending | None:
        """A lazy increment's asks stay queries of its parts (see ``SqlPending``); eager ones are frames."""
        if not increment.lazy:
            return super()._remember(plan, state, increment)
        parts = [_relation_of(increment.added), _relation_of(increment.changed), _relation_of(increment.removed)]
        if any(p is None for p in parts):
            return None
        added, changed, removed = (p.sql_query() for p in parts if p is not None)
        if state["tables"].get(plan.table) is None:  # nothing stored yet: only `added` can hold rows
            return SqlPending(self._sql_runner(), plan, state, [added], None)
        return SqlPending(self._sql_runner(), plan, state, [added, changed], removed)

    def _write_source(
        self,
        plan: FeaturePlan,
        source: str,
        columns: list[str],
        *,
        check: bool = False,
        counted: bool = False,
        since: Mapping[str, int | None] | None = None,
        fresh: bool = False,
        shape: Hashable = None,
        fit: bool = False,
    ) -> _Written | None:
        """Append the rows of ``source`` (a table, view or relation of this connection) in one transaction.

        ``source`` is read once, by the first statement, so a relation over the feature's own
        table (an increment's ``changed``) sees it as it was before the write. Rows it supersedes
        are found through the rows just inserted (this write's ``strata_seq``).

        ``check``: the rows are unchecked; check them in SQL once inserted and roll back (and
        drop tables this call created) when a check fails. ``counted``: count the rows, and
        write nothing (return None) when there are none. ``since`` and ``fresh``: as for
        :meth:`_write`; a fresh write whose ``since`` holds moves nothing to history. ``shape``:
        the source's columns and types, when the caller knows them (see :meth:`_ensure_tables`).
        ``fit``: the source's values are unchecked against the stored types (a relation): refuse
        those the ``INSERT`` would change (see :meth:`_check_lossy`). Returns the write's sequence
        number, how many rows it wrote (-1 when not counted) and whether ``since`` held.
        """
        import duckdb

        con = self.con
        check_case(self.describe(), columns)  # DuckDB's DESCRIBE would rename the second one (`NOTE_1`)
        # DDL stays outside the transaction: DuckDB 2.0.0 loses rows inserted in the same
        # transaction that created the table once they span several row groups.
        created = self._ensure_tables(plan, self._system_select(plan, source, columns, 0), shape, fit=fit)
        try:
            with self._transaction():
                seq, seen = self._next_seq(plan.table, list(since or ()))
                in_step = since is not None and seen == dict(since)
                _run(con, self._insert(plan, source, columns, seq))
                count = (
                    self._count_inserted(plan, seq, check=check, whole=plan.table in created)
                    if check or counted
                    else -1
                )
                if count == 0:
                    raise _NothingToWrite
                if plan.table not in created and not (fresh and in_step):  # superseded rows move to history
                    self._supersede(plan, seq)
        except BaseException as exc:
            self._drop_made(plan, created)  # nothing half-written: not even the empty tables of a first write
            if isinstance(exc, _NothingToWrite):
                return None
            if isinstance(exc, duckdb.ConversionException):  # values the stored columns cannot take
                raise self._misfit(plan, source, exc) from None
            raise
        return _Written(seq, count, in_step)

    @contextlib.contextmanager
    def _converting(self, plan: FeaturePlan, source: str) -> Iterator[None]:
        """DuckDB's failure to convert the values of ``source`` to the stored types inside, as :meth:`_misfit`."""
        import duckdb

        try:
            yield
        except duckdb.ConversionException as exc:
            raise self._misfit(plan, source, exc) from None

    def _misfit(self, plan: FeaturePlan, source: str, exc: BaseException) -> WriteError:
        """Rows of a relation that DuckDB could not convert to the stored types, as one line naming the columns.

        Rows in Python are checked before the write (:meth:`_check_fit`); a relation's are met
        only by the ``INSERT``, which rolled back.
        """
        stored = self._columns(plan.table)
        given = {str(row[0]): str(row[1]) for row in _run(self.con, f"DESCRIBE SELECT * FROM {source}")}
        differ = [
            f"`{c}` holds {_polars(t)}, stored as {_polars(stored[c])}"
            for c, t in given.items()
            if c in stored and t != stored[c]
        ]
        return self._refusal(plan, ", ".join(differ) if differ else " ".join(str(exc).split()).split(" LINE ")[0])

    def _refusal(self, plan: FeaturePlan, detail: str) -> WriteError:
        """The one line refusing a write of ``plan`` whose columns (``detail``) the stored ones cannot take."""
        return WriteError(
            f"cannot write feature {plan.key} to {self.describe()}: column {detail}",
            "give them values their stored types hold, or write them under new column names; nothing was written",
        )

    def _count_inserted(self, plan: FeaturePlan, seq: int, *, check: bool, whole: bool = False) -> int:
        """How many rows a write just inserted; ``check``: check them first (raises :class:`WriteError`).

        ``whole``: the write created the table, so its rows are all the table holds: they are
        read without a filter, and the count and null counts come from DuckDB's statistics.
        """
        stored = self._stored(plan.table)
        rows = stored if whole else f"(SELECT * FROM {stored} WHERE {ident(SEQ)} = {seq})"
        one_pass = sql_counts_query(plan, rows) if check else None
        if one_pass is None:
            total = int(_run(self.con, f"SELECT count(*) FROM {rows}")[0][0])
            if total and check:
                counted_sql, grouped_sql = sql_facts_queries(plan, rows)
                counted = _run(self.con, counted_sql)[0]
                check_facts(plan, sql_facts(plan, counted, _run(self.con, grouped_sql)[0]))
            return total
        if whole:  # the first pass answered from statistics, integer ids counted as bits
            total, facts, repeats = self._row_counts(plan, rows)
        else:
            total, facts, repeats = sql_counts(plan, _run(self.con, one_pass)[0])
        if repeats and not any(facts.nulls[c] for c in plan.resolve_ids):  # a null id is refused first
            facts.repeated = int(_run(self.con, sql_facts_queries(plan, rows)[1])[0][0])  # the rows that repeat
        check_facts(plan, facts)
        return total

    def _row_counts(self, plan: FeaturePlan, source: str, id_type: str | None = None) -> tuple[int, RowFacts, bool]:
        """What :func:`sql_counts_query` gives for ``source``: its rows, the facts but repeats, whether an id repeats.

        One id column of an integer type (``id_type``, or None when the first pass is to tell) is
        counted in two passes: the counts with the least and greatest id, then the ids as bits
        between the two (``checks.sql_bitmap_query``), a tenth of the CPU of a hash table of them;
        a whole table answers the first pass from its statistics. Other ids, and ids too spread
        for a bitmap, are counted distinct in a hash table, in one pass.
        """
        bounds = sql_bounds_query(plan, source) if id_type is None or id_type in BITMAP_TYPES else None
        if bounds is None:
            one_pass = sql_counts_query(plan, source)
            assert one_pass is not None
            return sql_counts(plan, _run(self.con, one_pass)[0])
        *counts, low, high, kind = _run(self.con, bounds)[0]
        total, facts, _ = sql_counts(plan, (*counts, 0))
        if not total:
            return total, facts, False
        fits = bitmap_fits(str(kind), total, low, high)
        repeats = sql_bitmap_query(plan, source, str(kind), low, high) if fits else sql_distinct_query(plan, source)
        return total, facts, bool(_run(self.con, repeats)[0][0])

    def _reconcile(self, plan: FeaturePlan, fields: tuple[str, ...], taken: frozenset[str], *, dry_run: bool) -> int:
        """The rows of ``sql.reconcile_select`` inserted as one write by one statement, the old ones superseded.

        One transaction; nothing leaves DuckDB, nothing is copied on the way. In a split table
        (:data:`WRITES`) a reconciled row keeps the code versions of the fields left out, which
        its old entry holds: each entry the latest rows point at gets a copy numbered below zero
        (as tombstones' do) with the reconciled fields' code versions, the graph's feature and
        snapshot version and this write's time, and the row points at its entry's copy.
        """
        split = self._is_split(plan.table)
        columns = tuple(self._columns(plan.table))
        latest = ident(plan.table)  # the view: every column
        if split:  # the view's columns and the row's entry
            constants = [c for c in self._columns(plan.table + WRITES) if c != WRITE]
            picked = ", ".join(f"w.{ident(c)}" for c in constants)
            latest = (
                f"(SELECT r.*, {picked} FROM {ident(plan.table + ROWS)} r "
                f"LEFT JOIN {ident(plan.table + WRITES)} w ON w.{ident(WRITE)} = r.{ident(WRITE)})"
            )
            columns = (*columns, WRITE)
        sources = {**self._sources(plan), plan.table: latest}
        query = sql.reconcile_select(sql.DUCKDB, self.hash_algorithm, plan, fields, taken, sources, columns)
        count = reconcile_checked(
            self, plan, (fields, taken), query, lambda q: int(_run(self.con, q)[0][0]), dry_run=dry_run
        )
        if count is not None:
            return count
        now = f"CAST(now() AS TIMESTAMP) AS {ident(WRITTEN_AT)}"
        try:
            with self._transaction():
                seq, _ = self._next_seq(plan.table)
                number = f"CAST({seq} AS BIGINT) AS {ident(SEQ)}"
                rows = f"SELECT *, {number}, {now} FROM ({query[0]})"
                if split:
                    rows = self._reconciled_rows(plan, fields, query[0], columns, number)
                written = int(_run(self.con, f"INSERT INTO {self._stored(plan.table)} BY NAME {rows}")[0][0])
                if not written:
                    raise _NothingToWrite
                self._supersede(plan, seq)
        except _NothingToWrite:
            return 0
        return written

    def _reconciled_rows(
        self, plan: FeaturePlan, fields: tuple[str, ...], query: str, columns: tuple[str, ...], number: str
    ) -> str:
        """The rows of ``query`` as a split table holds them, numbered by ``number``; their entries made first.

        See :meth:`_reconcile`. Called inside its transaction: the temp table of copies goes with
        a rollback, else with the connection.
        """
        entries = ident(plan.table + WRITES)
        copies = self._entry_copies(plan, f"SELECT DISTINCT {ident(WRITE)} AS origin FROM {ident(plan.table + ROWS)}")
        new = {f.cv_column: literal(f.stored_code_version) for f in plan.fields if f.name in fields}
        new |= {FEATURE_VERSION: literal(plan.feature_version), SNAPSHOT_VERSION: literal(plan.snapshot_version)}
        new[WRITTEN_AT] = "CAST(now() AS TIMESTAMP)"
        kept = [c for c in self._columns(plan.table + WRITES) if c != WRITE]
        picked = ", ".join(f"{new.get(c, 'w.' + ident(c))} AS {ident(c)}" for c in kept)
        _run(
            self.con,
            f"INSERT INTO {entries} BY NAME SELECT c.{ident(WRITE)}, {picked} "
            f"FROM {entries} w JOIN {copies} c ON w.{ident(WRITE)} = c.origin",
        )
        data = [f"q.{ident(c)}" for c in columns if not _constant(c) and c not in (SEQ, WRITE)]
        return (
            f"SELECT {', '.join(data)}, {number}, c.{ident(WRITE)} "
            f"FROM ({query}) q JOIN {copies} c ON q.{ident(WRITE)} = c.origin"
        )

    def _supersede(self, plan: FeaturePlan, seq: int) -> None:
        """Move the rows that write ``seq`` superseded (same resolve ids, older) from the latest table to history.

        The ids just written go to a temp table first: its size is known, so DuckDB builds the
        join on it and pushes it into the scan of the latest table as a filter (of the ids
        column). Against a subquery of the latest table the planner may build on the latest
        table instead (its whole id column hashed for every 1,000 rows written). Up to
        :data:`MOVED_IN_ONE` ids, the rows are deleted and inserted into history by one
        statement (``DELETE ... RETURNING`` in a ``WITH``): one scan of the latest table.
        More, and the per-row cost of ``RETURNING`` outweighs a second scan: an ``INSERT``
        then a ``DELETE``. An expansion's moved rows are kept in a temp table, from which the
        tombstones of its vanished children are made. Called inside the write's transaction: the
        temp tables go with a rollback.
        """
        con = self.con
        ids = sql.ids_list(plan.resolve_ids)  # an expansion's rows replace all of their parents' rows
        latest, history = self._stored(plan.table), self._stored(plan.table + HISTORY)
        written = ident(f"strata$written_{next(_names)}")
        select = f"SELECT DISTINCT {ids} FROM {latest} WHERE {ident(SEQ)} = {seq}"
        size = _run(con, f"CREATE TEMP TABLE {written} AS {select}")[0][0]
        older = f"{ident(SEQ)} <> {seq} AND ({ids}) IN (SELECT {ids} FROM {written})"
        if plan.child_ids:  # live children the write lacks leave tombstones
            same = " AND ".join(f"s.{ident(c)} IS NOT DISTINCT FROM l.{ident(c)}" for c in plan.id_columns)
            with self._moved(plan, older, many=size > MOVED_IN_ONE) as moved:
                self._tombstones(
                    plan, moved, seq, f"(SELECT 1 FROM {latest} s WHERE s.{ident(SEQ)} = {seq} AND {same})"
                )
        elif size <= MOVED_IN_ONE:
            moved_rows = f"DELETE FROM {latest} WHERE {older} RETURNING *"
            _run(con, f"WITH moved AS ({moved_rows}) INSERT INTO {history} BY NAME SELECT * FROM moved")
        else:
            _run(con, f"INSERT INTO {history} BY NAME SELECT * FROM {latest} WHERE {older}")
            _run(con, f"DELETE FROM {latest} WHERE {older}")
        _run(con, f"DROP TABLE {written}")  # on failure the write's rollback drops it

    @contextlib.contextmanager
    def _moved(self, plan: FeaturePlan, where: str, *, many: bool = False) -> Iterator[str]:
        """Move the latest rows ``where`` picks to history; the block gets the temp table that holds them.

        One scan of the latest table: one statement deletes the rows and keeps them
        (``DELETE ... RETURNING`` in a ``WITH``); history is filled from the temp table.
        ``many`` (more than :data:`MOVED_IN_ONE` ids): the rows are copied, then deleted, as
        ``RETURNING`` costs more per row than a second scan.
        """
        latest, history = self._stored(plan.table), self._stored(plan.table + HISTORY)
        moved = ident(f"strata$moved_{next(_names)}")
        rows = f"WITH rows AS (DELETE FROM {latest} WHERE {where} RETURNING *) SELECT * FROM rows"
        if many:
            rows = f"SELECT * FROM {latest} WHERE {where}"
        count = _run(self.con, f"CREATE TEMP TABLE {moved} AS {rows}")[0][0]
        if many:
            _run(self.con, f"DELETE FROM {latest} WHERE {where}")
        if count:
            _run(self.con, f"INSERT INTO {history} BY NAME SELECT * FROM {moved}")
        yield moved
        _run(self.con, f"DROP TABLE {moved}")  # on failure the write's rollback drops it

    def _tombstones(self, plan: FeaturePlan, moved: str, seq: int, unless: str = "") -> int:
        """Tombstones, written by ``seq``, of the live rows in ``moved`` (but those ``NOT EXISTS unless``); how many.

        A tombstone keeps its row's versions, under the number and time of ``seq``. In a split
        table that pair is no write's: each entry the rows pointed at gets a copy numbered below
        zero, with the time of ``seq``, and their tombstones point at it.
        """
        where = f"NOT {ident(DELETED)}" + (f" AND NOT EXISTS {unless}" if unless else "")
        number = f"true AS {ident(DELETED)}, CAST({seq} AS BIGINT) AS {ident(SEQ)}"
        now = f"CAST(now() AS TIMESTAMP) AS {ident(WRITTEN_AT)}"
        if not self._is_split(plan.table):
            tombs = f"SELECT * REPLACE ({number}, {now}) FROM {moved} l WHERE {where}"
            return int(_run(self.con, f"INSERT INTO {ident(plan.table)} BY NAME {tombs}")[0][0])
        entries = ident(plan.table + WRITES)
        copies = self._entry_copies(plan, f"SELECT DISTINCT {ident(WRITE)} AS origin FROM {moved} l WHERE {where}")
        _run(
            self.con,
            f"INSERT INTO {entries} BY NAME SELECT w.* REPLACE (c.{ident(WRITE)} AS {ident(WRITE)}, {now}) "
            f"FROM {entries} w JOIN {copies} c ON w.{ident(WRITE)} = c.origin",
        )
        tombs = (
            f"SELECT l.* REPLACE ({number}, c.{ident(WRITE)} AS {ident(WRITE)}) "
            f"FROM {moved} l JOIN {copies} c ON l.{ident(WRITE)} = c.origin WHERE {where}"
        )
        count = int(_run(self.con, f"INSERT INTO {self._stored(plan.table)} BY NAME {tombs}")[0][0])
        _run(self.con, f"DROP TABLE {copies}")  # on failure the write's rollback drops it
        return count

    def _entry_copies(self, plan: FeaturePlan, origins: str) -> str:
        """A temp table numbering below zero a copy of each entry ``origins`` (a query of ``origin``) names."""
        copies = ident(f"strata$entries_{next(_names)}")
        _run(
            self.con,
            f"CREATE TEMP TABLE {copies} AS SELECT origin, {self._below(ident(plan.table + WRITES))} "
            f"- row_number() OVER (ORDER BY origin) AS {ident(WRITE)} FROM ({origins})",
        )
        return copies

    @staticmethod
    def _below(entries: str) -> str:
        """SQL for the number below which a split table's entries of no write are free (0 or the lowest so far)."""
        return f"(SELECT least(coalesce(min({ident(WRITE)}), 0), 0) FROM {entries})"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        _run(self.con, "BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            _run(self.con, "ROLLBACK")
            raise
        _run(self.con, "COMMIT")

    def _ensure_tables(self, plan: FeaturePlan, select: str, shape: Hashable = None, *, fit: bool = False) -> list[str]:
        """Create the feature's tables from the first batch (return those made now); add columns later batches bring.

        ``select`` gives rows with every system column, as readers see them; a first batch makes
        split tables (see :data:`WRITES`). ``shape`` (the source's columns and types, when the
        caller knows them): tables made ready on this connection for rows of the same shape and
        definition are ready still, as columns are only ever added, so they are not described again.
        ``fit``: refuse rows of ``select`` whose values the ``INSERT`` would change (see
        :meth:`_check_lossy`) before anything changes, unless their shape converts only loudly.
        """
        key = None if shape is None else (plan.cv_columns, shape)
        ready = self._ready.get(plan.table, ())
        if key is not None and key in ready:
            if fit and (FITS, key) not in ready:
                wanted = {str(d[0]): str(d[1]) for d in _run(self.con, f"DESCRIBE {select}")}
                self._check_lossy(plan, select, wanted, self._columns(plan.table))
            return []
        wanted = {str(d[0]): str(d[1]) for d in _run(self.con, f"DESCRIBE {select}")}
        created = []
        existing = self._columns(plan.table)  # {} when missing; the view's columns for a split table
        check_case(self.describe(), wanted, existing)
        loud = all(_loud(kind, existing.get(name, kind)) for name, kind in wanted.items())
        if fit and not loud:
            self._check_lossy(plan, select, wanted, existing)
        if not existing:
            self._make_split(plan.table, wanted)
            created = [plan.table, plan.table + HISTORY]
        elif self._is_split(plan.table):
            self._widen_split(plan.table, wanted)
        else:  # made by an older strata: every column in every row, as before
            for table in (plan.table, plan.table + HISTORY):
                existing = self._columns(table)  # {} when missing: DESCRIBE answers faster than the catalog views
                if not existing:
                    columns = ", ".join(_column_ddl(name, kind) for name, kind in wanted.items())
                    _run(self.con, f"CREATE TABLE {ident(table)} ({columns})")
                    created.append(table)
                else:
                    for statement in self._widening(table, existing, wanted):
                        _run(self.con, statement)
                self._tables.add(table)
        if key is not None:
            self._ready.setdefault(plan.table, set()).update([key, (FITS, key)] if loud else [key])
        return created

    def _check_lossy(self, plan: FeaturePlan, select: str, wanted: dict[str, str], stored: dict[str, str]) -> None:
        """Refuse the rows of ``select`` (their types ``wanted``) whose values the ``INSERT`` would change.

        DuckDB rounds a ``DOUBLE`` into a ``BIGINT`` column, cuts a timestamp into a date …
        (see :func:`_lossy`): one query counts, per such column, the values that are not as they
        were once cast to the stored type and back (as ``checks.fit_stored`` does for a frame).
        """
        lossy = {c: (t, stored[c]) for c, t in wanted.items() if c in stored and _lossy(t, stored[c])}
        if not lossy:
            return
        counts = ", ".join(
            f"count(*) FILTER (WHERE TRY_CAST(TRY_CAST({ident(c)} AS {want}) AS {given}) IS DISTINCT FROM {ident(c)})"
            for c, (given, want) in lossy.items()
        )
        found = _run(self.con, f"SELECT {counts} FROM ({select})")[0]
        bad = [
            f"`{c}` holds {_polars(t)}, stored as {_polars(w)}"
            for (c, (t, w)), n in zip(lossy.items(), found, strict=True)
            if n
        ]
        if bad:
            raise self._refusal(plan, ", ".join(bad))

    @staticmethod
    def _widening(table: str, existing: dict[str, str], wanted: dict[str, str]) -> list[str]:
        """The ``ALTER TABLE`` statements that give ``table`` (its columns ``existing``) room for ``wanted``."""
        statements = []
        for name, kind in wanted.items():
            if name not in existing:
                statements.append(f"ALTER TABLE {ident(table)} ADD COLUMN {_column_ddl(name, kind)}")
            elif kind.endswith("[]") and existing[name] == "VARCHAR":
                # JSON text of an array that now arrives as a list (target-strata types arrays by
                # their items since): read the stored text as that list, or it would be cast to
                # DuckDB's own text form (`[a, b]`) on insert.
                column = ident(name)
                statements.append(
                    f"ALTER TABLE {ident(table)} ALTER COLUMN {column} SET DATA TYPE {kind} "
                    f"USING CAST(CAST({column} AS JSON) AS {kind})"
                )
        return statements

    def _make_split(self, table: str, wanted: dict[str, str]) -> None:
        """Create the split tables of a feature and the two views readers read, in one transaction (DDL only)."""
        data = [name for name in wanted if not _constant(name)]
        constants = [name for name in wanted if _constant(name)]
        rows = [*(_column_ddl(name, wanted[name]) for name in data), _column_ddl(WRITE, "BIGINT")]
        entries = [f"{ident(WRITE)} BIGINT", *(_column_ddl(name, wanted[name]) for name in constants)]
        with self._transaction():
            _run(self.con, f"INSERT OR REPLACE INTO {ident(META)} VALUES (?, 'true')", [SPLIT + table])
            _run(self.con, f"CREATE TABLE {ident(table + WRITES)} ({', '.join(entries)})")
            for stored in (table + ROWS, table + HISTORY + ROWS):
                _run(self.con, f"CREATE TABLE {ident(stored)} ({', '.join(rows)})")
            self._make_views(table, ([WRITE, *constants], [*data, WRITE]))
        self._tables.update((table, table + HISTORY))
        self._split[table] = True

    def _widen_split(self, table: str, wanted: dict[str, str]) -> None:
        """Add the columns ``wanted`` brings to a split feature's tables, and remake its views, in one transaction."""
        statements = []
        for stored in (table + ROWS, table + HISTORY + ROWS):
            data = {name: kind for name, kind in wanted.items() if not _constant(name)}
            statements += self._widening(stored, self._columns(stored), data)
        constants = {name: kind for name, kind in wanted.items() if _constant(name)}
        statements += self._widening(table + WRITES, self._columns(table + WRITES), constants)
        if statements:
            with self._transaction():
                for statement in statements:
                    _run(self.con, statement)
                self._make_views(table)

    def _make_views(self, table: str, made: tuple[list[str], list[str]] | None = None) -> None:
        """(Re)create the views ``<table>`` and ``<table>$history``: each row with its write's entry.

        The columns in the order a table made before the split had them (data columns, code
        versions, feature and snapshot version, ``strata_seq``, ``strata_written_at``,
        ``strata_deleted``); DuckDB builds the join's hash table on the entries (one row per write).
        ``made``: the columns of the entries and of the rows (both tables alike) as just created;
        else the tables are described.
        """
        entries = made[0] if made is not None else list(self._columns(table + WRITES))
        constants = [c for c in entries if c.startswith(CV)] + [
            c for c in (FEATURE_VERSION, SNAPSHOT_VERSION) if c in entries
        ]
        for view in (table, table + HISTORY):
            stored = made[1] if made is not None else list(self._columns(view + ROWS))
            data = [c for c in stored if c not in (SEQ, DELETED, WRITE)]
            items = [
                *(f"r.{ident(c)}" for c in data),
                *(f"w.{ident(c)}" for c in constants),
                f"r.{ident(SEQ)}",
                f"w.{ident(WRITTEN_AT)}",
                f"r.{ident(DELETED)}",
            ]
            _run(
                self.con,
                f"CREATE OR REPLACE VIEW {ident(view)} AS SELECT {', '.join(items)} FROM {ident(view + ROWS)} r "
                f"LEFT JOIN {ident(table + WRITES)} w ON w.{ident(WRITE)} = r.{ident(WRITE)}",
            )

    def _drop_made(self, plan: FeaturePlan, created: list[str]) -> None:
        """Drop the tables (and views) a failed first write or copy made: the feature is as it was, never written."""
        if not created:
            return
        split = self._split.pop(plan.table, False)
        for table in created:
            if split:
                _run(self.con, f"DROP VIEW IF EXISTS {ident(table)}")
                _run(self.con, f"DROP TABLE IF EXISTS {ident(table + ROWS)}")
            else:
                _run(self.con, f"DROP TABLE IF EXISTS {ident(table)}")
            self._tables.discard(table)
            self._known_columns.pop(table, None)
        if split:
            _run(self.con, f"DROP TABLE IF EXISTS {ident(plan.table + WRITES)}")
            _run(self.con, f"DELETE FROM {ident(META)} WHERE name = ?", [SPLIT + plan.table])
        self._ready.pop(plan.table, None)  # kept per latest table: made ready again whichever was dropped

    def _changed_rows(self, plan: FeaturePlan, table: pa.Table) -> tuple[pa.Table, int]:
        batch = f"strata_batch_{next(_names)}"
        self.con.register(batch, table)
        try:
            rows = self.con.sql(self._changed_select(plan, ident(batch), table.column_names)).to_arrow_table()
        finally:
            self.con.unregister(batch)
        import pyarrow.compute as pc

        new = int(pc.sum(rows.column("strata__new")).as_py() or 0)
        return rows.drop_columns(["strata__new"]), new

    def _changed_select(self, plan: FeaturePlan, source: str, columns: list[str]) -> str:
        """Rows of ``source`` that are new samples or differ from the live row, flagged ``strata__new``."""
        keys = sql.ids_list(plan.id_columns)
        on = " AND ".join(f"b.{ident(c)} IS NOT DISTINCT FROM l.{ident(c)}" for c in plan.id_columns)
        differs = [f"b.{ident(c)} IS DISTINCT FROM l.{ident(c)}" for c in plan.dv_columns]
        differs += [f"l.{ident(f.cv_column)} IS DISTINCT FROM {literal(f.stored_code_version)}" for f in plan.fields]
        stored = self._columns(plan.table)  # a field added since the last write has no column yet
        versions = ", ".join(
            ident(c) if c in stored else f"CAST(NULL AS VARCHAR) AS {ident(c)}"
            for c in (*plan.dv_columns, *plan.cv_columns)
        )
        live = f"SELECT {keys}, {versions}, true AS strata__live FROM {ident(plan.table)} WHERE NOT {ident(DELETED)}"
        picked = ", ".join(f"b.{ident(c)}" for c in columns)
        return (
            f"SELECT {picked}, l.strata__live IS NULL AS strata__new FROM {source} b "
            f"LEFT JOIN ({live}) l ON {on} WHERE l.strata__live IS NULL OR {' OR '.join(differs)}"
        )

    def write_changed_from(self, feature: Any, source: str, *, checked: bool = False) -> dict[str, int]:
        """:meth:`write_changed` for rows already in a table or view of this store's connection.

        ``target-strata``'s fast path: the rows never leave DuckDB. ``source`` is a quoted name
        the caller made (never user input). The checks of :meth:`write_changed` run in SQL,
        unless the caller vouches with ``checked=True`` that there is one row per sample and no
        null id or data version: then ``source`` may be a view that is costly to evaluate (it
        hashes), and its data versions are read once, by the write. Values the stored types
        cannot hold as they are are refused as a relation's are (see :meth:`_check_lossy`).
        """
        plan = self._root_plan(feature)
        if plan.key in self._pending:  # a resolve waits to be settled by this write: take the general path
            return self.write_changed(feature, self.con.sql(f"SELECT * FROM {source}").to_arrow_table())
        described = _run(self.con, f"DESCRIBE SELECT * FROM {source}")
        columns = [str(d[0]) for d in described]
        self._check_source(plan, source, columns, checked=checked, id_type=_id_type(plan, described))
        total = int(_run(self.con, f"SELECT count(*) FROM {source}")[0][0])
        if total == 0:
            return {"added": 0, "changed": 0, "unchanged": 0}
        if not self._has_table(plan.table):  # nothing stored yet: its types are the rows' own
            self._write_source(plan, source, columns)
            return {"added": total, "changed": 0, "unchanged": 0}
        if any(str(d[1]).endswith("[]") for d in described):  # a list column may still hold JSON text
            self._ensure_tables(plan, self._system_select(plan, source, columns, 0))
        changed = ident(f"strata$changed_{next(_names)}")
        with self._converting(plan, source):  # ids the stored ones cannot take
            _run(self.con, f"CREATE TEMP TABLE {changed} AS {self._changed_select(plan, source, columns)}")
        try:
            rows, new = _run(self.con, f"SELECT count(*), count(*) FILTER (WHERE strata__new) FROM {changed}")[0]
            if rows:
                self._write_source(plan, changed, columns, fit=True)
        finally:
            _run(self.con, f"DROP TABLE IF EXISTS {changed}")
        return {"added": int(new), "changed": int(rows) - int(new), "unchanged": total - int(rows)}

    def same_rows(self, feature: Any, source: str, texts: dict[str, tuple[str, str]]) -> str | None:
        """A temp table of the ids of ``source``'s rows that the live rows hold already, or None.

        ``target-strata``'s shortcut past hashing: ``source`` (a quoted name the caller made)
        has the id columns and raw values; ``texts`` gives, per field, the column of its value
        and the SQL text its data version hashes, ``{}`` standing for the column
        (``("body", "CAST({} AS VARCHAR)")``). A row is the same when every field's text equals
        the live row's and every code version is current: its data versions would be equal, so
        it need not be hashed. None when the feature has no table yet or lacks one of the columns.
        """
        plan = self._root_plan(feature)
        if not self._has_table(plan.table) or sorted(texts) != sorted(f.name for f in plan.fields):
            return None
        stored = self._columns(plan.table)
        if any(column not in stored for column, _ in texts.values()):
            return None
        same = [f"l.{ident(f.cv_column)} IS NOT DISTINCT FROM {literal(f.stored_code_version)}" for f in plan.fields]
        for column, text in texts.values():
            same.append(f"{text.format('b.' + ident(column))} IS NOT DISTINCT FROM {text.format('l.' + ident(column))}")
        on = " AND ".join(f"b.{ident(c)} = l.{ident(c)}" for c in plan.id_columns)
        table = ident(f"strata$same_{next(_names)}")
        with self._converting(plan, source):  # ids the stored ones cannot take
            _run(
                self.con,
                f"CREATE TEMP TABLE {table} AS SELECT {', '.join(f'b.{ident(c)}' for c in plan.id_columns)} FROM "
                f"{source} b JOIN {ident(plan.table)} l ON {on} WHERE NOT l.{ident(DELETED)} AND {' AND '.join(same)}",
            )
        return table

    def _check_source(
        self, plan: FeaturePlan, source: str, columns: list[str], *, checked: bool, id_type: str | None = None
    ) -> None:
        """The checks of ``_check_write`` for samples, in SQL (only the columns' presence when ``checked``).

        ``id_type``: the SQL type of the (one) id column, when the caller knows it (see :meth:`_row_counts`).
        """
        for kind, wanted in (("id column(s)", plan.id_columns), ("data-version column(s)", plan.dv_columns)):
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise WriteError(
                    f"samples for `{plan.key}` lack {kind} {', '.join(missing)}", "add them; nothing was written"
                )
        if checked:
            return
        _, facts, repeats = self._row_counts(plan, source, id_type)  # a root is never an expansion
        for column in (*plan.id_columns, *plan.dv_columns):
            if facts.nulls[column]:
                what = "id column" if column in plan.id_columns else "data-version column"
                raise WriteError(
                    f"samples for `{plan.key}` have nulls in {what} `{column}`",
                    "every sample needs its ids and data versions; nothing was written",
                )
        if not repeats:
            return
        keys = sql.ids_list(plan.id_columns)
        repeated = _run(self.con, f"SELECT count(*) FROM (SELECT 1 FROM {source} GROUP BY {keys} HAVING count(*) > 1)")
        if repeated[0][0]:
            raise WriteError(
                f"samples for `{plan.key}` have {repeated[0][0]} repeated ids",
                "write each sample once per call; nothing was written",
            )

    def _delete(
        self, plan: FeaturePlan, ids: pa.Table, *, soft: bool, since: Mapping[str, int | None] | None = None
    ) -> tuple[int, int | None]:
        con = self.con
        batch = f"strata_ids_{next(_names)}"
        con.register(batch, ids)
        latest, history = self._stored(plan.table), self._stored(plan.table + HISTORY)
        match = matching(latest, ident(batch), ids.column_names)  # the id columns, or an expansion's parent ids
        try:
            with self._transaction():
                seq, seen = self._next_seq(plan.table, list(since or ()))  # a hard delete changes the table too
                if soft:  # matched rows move to history; the live ones leave tombstones
                    with self._moved(plan, match, many=ids.num_rows > MOVED_IN_ONE) as moved:
                        count = self._tombstones(plan, moved, seq)
                        if _run(con, f"SELECT count(*) FROM {moved} WHERE {ident(DELETED)}")[0][0]:
                            self._lost_track()  # rows already deleted left with no row in their place
                else:  # the live rows erased are counted from what the DELETE returns: one scan
                    self._clear_sync()  # with the rows: no sync record may outlive them (see MetadataStore.delete)
                    gone = f"DELETE FROM {latest} WHERE {match} RETURNING {ident(DELETED)}"
                    count = _run(
                        con, f"WITH rows AS ({gone}) SELECT count(*) FILTER (WHERE NOT {ident(DELETED)}) FROM rows"
                    )[0][0]
                    _run(con, f"DELETE FROM {history} WHERE {matching(history, ident(batch), ids.column_names)}")
        finally:
            con.unregister(batch)
        return int(count), seq if since is None or seen == dict(since) else None

    def _put(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> int:
        con = self.con
        check_case(self.describe(), latest.column_names)
        self._check_fit(plan, latest)
        self._check_fit(plan, history)
        names = [f"strata_put_{next(_names)}", f"strata_put_{next(_names)}"]
        con.register(names[0], latest)
        con.register(names[1], history)
        # DDL outside the transaction, as for a write (see _write_source)
        created = self._ensure_tables(plan, f"SELECT * FROM {ident(names[0])}")
        try:
            with self._transaction():
                seq, _ = self._next_seq(plan.table)
                sources = [ident(name) for name in names]
                if self._is_split(plan.table):
                    sources = self._put_entries(plan, names, latest.column_names)
                table, older = self._stored(plan.table), self._stored(plan.table + HISTORY)
                if latest.num_rows:  # the latest rows of the same parents move to history, but those put again
                    parents = self._matching(names[0], plan.resolve_ids)
                    moved = f"DELETE FROM {table} AS l WHERE {parents} RETURNING *"
                    again = [*plan.id_columns, WRITTEN_AT]
                    kept = f"SELECT * FROM moved AS l WHERE NOT {self._matching(names[0], again)}"
                    if self._is_split(plan.table):  # the time of a moved row is its entry's
                        same = self._matching(names[0], again, entries="w")
                        kept = (
                            f"SELECT l.* FROM moved AS l JOIN {ident(plan.table + WRITES)} w "
                            f"ON w.{ident(WRITE)} = l.{ident(WRITE)} WHERE NOT {same}"
                        )
                    _run(con, f"WITH moved AS ({moved}) INSERT INTO {older} BY NAME {kept}")
                stamped = f"SELECT * REPLACE (CAST({seq} AS BIGINT) AS {ident(SEQ)}) FROM "
                _run(con, f"INSERT INTO {table} BY NAME {stamped}{sources[0]}")
                _run(con, f"INSERT INTO {older} BY NAME {stamped}{sources[1]}")
        except BaseException:
            self._drop_made(plan, created)  # nothing half-copied: not even the empty tables of a first copy
            self._ready.pop(plan.table, None)
            raise
        finally:
            con.unregister(names[0])
            con.unregister(names[1])
        return seq

    def _put_entries(self, plan: FeaturePlan, names: list[str], columns: list[str]) -> list[str]:
        """For a split table: entries for the copied rows ``names`` (one per set of versions and time); their rows.

        Copied rows keep their versions and times, which are no write's of this store: each
        distinct set gets an entry numbered below zero. Returns, per name, the SQL of its rows as
        the split table holds them (pointing at their entries).
        """
        entries = ident(plan.table + WRITES)
        constants = [c for c in columns if _constant(c)]
        kept = ", ".join(ident(c) for c in constants)
        both = f"SELECT {kept} FROM {ident(names[0])} UNION ALL SELECT {kept} FROM {ident(names[1])}"
        made = ident(f"strata$entries_{next(_names)}")
        _run(
            self.con,
            f"CREATE TEMP TABLE {made} AS SELECT *, {self._below(entries)} - row_number() OVER () AS {ident(WRITE)} "
            f"FROM (SELECT DISTINCT {kept} FROM ({both}))",
        )
        _run(self.con, f"INSERT INTO {entries} BY NAME SELECT * FROM {made}")
        same = " AND ".join(f"b.{ident(c)} IS NOT DISTINCT FROM e.{ident(c)}" for c in constants)
        return [
            f"(SELECT b.* EXCLUDE ({kept}), e.{ident(WRITE)} FROM {ident(name)} b JOIN {made} e ON {same})"
            for name in names
        ]

    def _erase(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> None:
        con = self.con
        names = [f"strata_erase_{next(_names)}", f"strata_erase_{next(_names)}"]
        con.register(names[0], latest)
        con.register(names[1], history)
        split = self._is_split(plan.table)
        entries = f" USING {ident(plan.table + WRITES)} w" if split else ""
        joined = f"w.{ident(WRITE)} = l.{ident(WRITE)} AND " if split else ""
        try:
            with self._transaction():
                for name, table, rows in ((names[0], plan.table, latest), (names[1], plan.table + HISTORY, history)):
                    if not rows.num_rows:
                        continue
                    if table == plan.table:  # the latest table changes: a new number, as for a hard delete
                        self._next_seq(plan.table)
                        self._clear_sync()
                    match = self._matching(name, rows.column_names, entries="w" if split else None)
                    _run(con, f"DELETE FROM {self._stored(table)} AS l{entries} WHERE {joined}{match}")
        finally:
            con.unregister(names[0])
            con.unregister(names[1])

    @staticmethod
    def _matching(source: str, columns: Sequence[str], *, entries: str | None = None) -> str:
        """SQL true for a row ``l`` that a row of ``source`` equals on ``columns`` (nulls equal nulls).

        ``entries``: the alias of a split table's entries joined to ``l``, which hold its constant columns.
        """

        def side(column: str) -> str:
            return f"{entries if entries and _constant(column) else 'l'}.{ident(column)}"

        same = " AND ".join(f"b.{ident(c)} IS NOT DISTINCT FROM {side(c)}" for c in columns)
        return f"EXISTS (SELECT 1 FROM {ident(source)} AS b WHERE {same})"

    # -- reading -------------------------------------------------------------------------

    def _read(self, plan: FeaturePlan, *, history: bool, include_deleted: bool) -> nw.LazyFrame[Any] | None:
        import narwhals as nw

        if not self._has_table(plan.table):
            return None
        if history:
            latest, older = ident(plan.table), ident(plan.table + HISTORY)
            return nw.from_native(self.con.sql(f"SELECT * FROM {older} UNION ALL BY NAME SELECT * FROM {latest}"))
        where = "" if include_deleted else f" WHERE NOT {ident(DELETED)}"
        return nw.from_native(self.con.sql(f"SELECT * FROM {ident(plan.table)}{where}"))

    def _stored_schema(self, plan: FeaturePlan, columns: Sequence[str]) -> dict[str, Any] | None:
        """The Polars types of ``columns``: named from ``DESCRIBE`` for plain types, else through Arrow.

        An in-sync resolve needs only these (for its empty frames), so it loads no Arrow.
        """
        import polars as pl

        stored = self._columns(plan.table) if self._has_table(plan.table) else {}
        if not stored or any(c not in stored for c in columns):
            return None
        named = {c: POLARS_TYPES.get(stored[c]) for c in columns}
        if all(named.values()):
            return {c: getattr(pl, str(name)) for c, name in named.items()}
        empty = self.con.sql(f"SELECT {sql.ids_list(tuple(columns))} FROM {ident(plan.table)} LIMIT 0")
        frame = pl.from_arrow(empty.to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return dict(frame.schema)

    def _max_seq(self, table: str) -> int | None:
        """The sequence number of the last write or delete of ``table``, from the bookkeeping: one key lookup."""
        return self._max_seqs([table])[table]

    def _max_seqs(self, tables: Sequence[str]) -> dict[str, int | None]:
        names = [TABLE_SEQ + table for table in tables]
        meta = self._meta(["seq", KEPT, *names])
        if not self._bookkept(meta):
            if self.read_only:  # nothing may be written: scan the tables
                return {table: self._scanned_max(table) for table in tables}
            self._keep_table_seqs()
            meta = self._meta(["seq", KEPT, *names])
        self._tables.update(
            table for table, name in zip(tables, names, strict=True) if name in meta
        )  # entries follow tables
        return {table: None if name not in meta else int(meta[name]) for table, name in zip(tables, names, strict=True)}

    def _scanned_max(self, table: str) -> int | None:
        if not self._has_table(table):
            return None
        value = _run(self.con, f"SELECT max({ident(SEQ)}) FROM {ident(table)}")[0][0]
        return None if value is None else int(value)

    # -- increments ----------------------------------------------------------------------

    def _source(self, plan: FeaturePlan, columns: list[str], resolving: FeaturePlan) -> str:
        """The feature's table, or an empty relation with the needed columns when it was never written.

        A split table's rows are read alone (no join with its writes) when ``columns`` holds none
        of the columns its writes keep. The stand-in's id columns take their types from the
        stored feature nearest to the one being resolved (itself, its upstreams, theirs), so it
        never compares text with numbers.
        """
        if plan.table in self._through:  # a fallback's table, attached: its columns asked each time
            source = self._through[plan.table]
            held = {str(r[0]) for r in _run(self.con, f"DESCRIBE SELECT * FROM {source}")}
            return sql.padded(source, [c for c in columns if c not in held])
        if self._has_table(plan.table):  # a split table's rows alone, when they hold every column needed
            rows_alone = self._is_split(plan.table) and not any(_constant(c) for c in columns)
            return sql.padded(
                ident(plan.table + ROWS if rows_alone else plan.table), self._lacking(plan.table, columns)
            )
        donors = {c: d for c, (_, d) in self._id_donors(resolving, plan.id_columns).items()}
        stored = {d.table: self._columns(d.table) for d in donors.values()}  # one lookup per donor table
        types = {c: stored[d.table][c] for c, d in donors.items()}
        for source in self._through.values():  # upstreams a fallback holds give the types this store lacks
            described = _run(self.con, f"DESCRIBE SELECT * FROM {source}")
            types = {str(r[0]): str(r[1]) for r in described if r[0] in plan.id_columns} | types
        nulls = ", ".join(f"CAST(NULL AS {types.get(c, 'VARCHAR')}) AS {ident(c)}" for c in columns)
        return f"(SELECT {nulls}, false AS {ident(DELETED)}, CAST(NULL AS BIGINT) AS {ident(SEQ)} WHERE false)"

    def _sources(self, plan: FeaturePlan) -> dict[str, str]:
        own = [*plan.id_columns, *plan.input_columns, *plan.cv_columns, *plan.dv_columns]
        sources = {plan.table: self._source(plan, own, plan)}
        for up in plan.upstreams:
            cols = [*up.id_columns, *(f"strata_dv__{f}" for f in up.fields)]
            sources[up.table] = self._source(self.plan(up.key), cols, plan)
        return sources

    def _candidates(
        self, plan: FeaturePlan, sources: dict[str, str], since: dict[str, int], only: dict[str, Any] | None
    ) -> tuple[str, set[str]]:
        """A temp table of the resolve ids that may have changed since the last sync, and the tables found whole.

        A table is found whole when it holds one row per resolve id and its rows written since
        the sync (``strata_seq`` above its number) hold every candidate: its rows of the
        candidates are then exactly those, so the resolve reads them alone, found by the
        sequence numbers (rows are appended: DuckDB's zonemaps skip the older row groups).
        Another table's rows of the candidates may lie anywhere: with no index, every one of its
        ids is compared with the candidates.
        """
        name = f"strata_cand_{next(_names)}"
        keys = sql.ids_list(plan.resolve_ids)
        if only is not None:
            values = ", ".join(f"? AS {ident(k)}" for k in plan.resolve_ids)
            _run(self.con, f"CREATE TEMP TABLE {name} AS SELECT {values}", [only[k] for k in plan.resolve_ids])
            return name, set()
        tables = {plan.table: plan.id_columns, **{u.table: u.id_columns for u in plan.upstreams}}
        stored = [t for t in tables if self._has_table(t)]
        if not stored:
            _run(self.con, f"CREATE TEMP TABLE {name} AS SELECT {keys} FROM {sources[plan.table]} WHERE false")
            return name, set()
        one_row = set(plan.resolve_ids)
        watched = [t for t in stored if t in since and set(tables[t]) == one_row and len(tables[t]) == len(one_row)]
        # the columns added to the ids are named as no id column can be (`strata_` is reserved)
        origin, flag = ident("strata_table"), [ident(f"strata_new_in_{i}") for i in range(len(watched))]
        parts = []
        for index, table in enumerate(stored):
            recent = f" WHERE {ident(SEQ)} > {int(since[table])}" if table in since else ""
            parts.append(f"SELECT {keys}, {index} AS {origin} FROM {sources[table]}{recent}")
        flags = [f"bool_or({origin} = {stored.index(t)}) AS {flag[i]}" for i, t in enumerate(watched)]
        union = " UNION ALL ".join(parts)
        _run(self.con, f"CREATE TEMP TABLE {name} AS SELECT {', '.join([keys, *flags])} FROM ({union}) GROUP BY {keys}")
        if not watched:
            return name, set()
        whole = ", ".join(f"bool_and({f})" for f in flag)
        found = _run(self.con, f"SELECT {whole} FROM {name}")[0]
        return name, {t for t, all_in in zip(watched, found, strict=True) if all_in}

    def _resolve_chained(self, plan: FeaturePlan, *, lazy: bool, only: dict[str, Any] | None = None) -> Increment:
        """The full comparison in SQL, the upstreams a DuckDB fallback holds read from its file attached read-only.

        The same query as one store holding every table runs; a fallback that cannot be attached
        (another kind of store, ``:memory:``, a file open for writing in this process) sends the
        resolve the general way (rows read as Arrow, compared in Polars).
        """
        through = {}
        for up in plan.upstreams:
            holder = self._holder(self.plan(up.key))
            if holder is self:
                continue
            alias = self._attach(holder)
            if alias is None:
                return super()._resolve_chained(plan, lazy=lazy, only=only)
            through[up.table] = f"{ident(alias)}.{ident(up.table)}"
        self._through = through
        try:
            increment = self._resolve(plan, None, lazy=lazy, only=only)
        finally:
            self._through = {}
        increment.meta["chain"] = "attached"
        return increment

    def _attach(self, store: MetadataStore) -> str | None:
        """The alias of ``store``'s file attached read-only to this connection; None when it cannot be."""
        import duckdb

        if not isinstance(store, DuckDBStore) or store.path == ":memory:" or not Path(store.path).exists():
            return None
        path = str(Path(store.path).resolve())
        alias = self._attached.get(path)
        if alias is None:
            alias = f"strata$fallback{len(self._attached)}"
            try:
                _run(self.con, f"ATTACH {literal(path)} AS {ident(alias)} (READ_ONLY)")
            except duckdb.Error:
                return None
            self._attached[path] = alias
        return alias

    def _resolve(
        self, plan: FeaturePlan, since: dict[str, int] | None, *, lazy: bool, only: dict[str, Any] | None = None
    ) -> Increment:
        sources = self._sources(plan)
        candidates = None
        if since is not None or only is not None:
            candidates, whole = self._candidates(plan, sources, since or {}, only)
            for table in whole:  # found whole among its rows written since the sync (see _candidates)
                sources[table] = f"(SELECT * FROM {sources[table]} WHERE {ident(SEQ)} > {int((since or {})[table])})"
        expected = sql.expected_select(sql.DUCKDB, self.hash_algorithm, plan, candidates, sources)
        current = sql.current_select(plan, candidates, sources[plan.table])
        # nothing stored for the feature: only `added` can hold rows (a lazy part would run the whole comparison)
        only_added = lazy and not self._has_table(plan.table)
        increment = self._increment(plan, expected, current, lazy=lazy, only_added=only_added)
        if candidates is not None and not lazy:  # a lazy increment still reads it; it goes at close
            _run(self.con, f"DROP TABLE IF EXISTS {candidates}")
        return increment

    def _resolve_root(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        name = f"strata_samples_{next(_names)}"
        self.con.register(name, samples)  # zero-copy: DuckDB scans the Arrow buffers
        try:
            return self._compare_root(plan, name, lazy=lazy)
        finally:
            self.con.unregister(name)  # the increment is a table of its own: the samples are read once

    def _resolve_root_native(self, plan: FeaturePlan, samples: Any, *, lazy: bool) -> Increment | None:
        """Samples as a DuckDB relation of this store's connection: checked and compared without leaving DuckDB.

        A relation of another connection (or anything else) gets None: the general path reads it as Arrow.
        """
        import duckdb

        relation = _relation_of(samples)  # bare, or a lazy increment's part wrapped by Narwhals
        if relation is None:
            return None
        name = f"strata_samples_{next(_names)}"
        try:
            self.con.register(name, relation)
            described = _run(self.con, f"DESCRIBE SELECT * FROM {ident(name)}")
            columns = [str(d[0]) for d in described]
        except duckdb.Error:  # made on another connection: it cannot be read here
            with contextlib.suppress(duckdb.Error):
                self.con.unregister(name)
            return None
        kept = False  # a lazy first increment's parts read the samples: they stay registered
        try:
            if self._max_seq(plan.table) is None:  # nothing stored yet: every sample is new
                self._check_source(plan, ident(name), columns, checked=False, id_type=_id_type(plan, described))
                if lazy:
                    kept = True
                    return self._all_added_in_place(plan, name)
                keep = sql.ids_list((*plan.id_columns, *plan.dv_columns))
                return self._all_added(
                    plan, self.con.sql(f"SELECT {keep} FROM {ident(name)}").to_arrow_table(), lazy=False
                )
            self._check_source(plan, ident(name), columns, checked=True)  # the columns; the rows in the comparison
            return self._compare_root(plan, name, lazy=lazy, columns=columns)
        finally:
            if not kept:
                self.con.unregister(name)

    def _all_added_in_place(self, plan: FeaturePlan, name: str) -> Increment:
        """A lazy first increment of the samples registered as ``name``: every sample added.

        The parts are queries of ``name``, like a compared increment's: the samples are read
        when the parts are written (in place, checked again there), never copied out of DuckDB.
        """
        import narwhals as nw

        ids = sql.ids_list(plan.id_columns)
        added = f"SELECT {sql.ids_list((*plan.id_columns, *plan.dv_columns))} FROM {ident(name)}"
        nulls = [f"CAST(NULL AS VARCHAR) AS {ident(c)}" for c in (*plan.input_columns, *plan.dv_columns)]
        causes = [f"CAST(NULL AS VARCHAR) AS {ident(f.cause_column)}" for f in plan.fields]
        changed = f"SELECT {', '.join([ids, *nulls, *causes])} FROM {ident(name)} WHERE false"
        removed = f"SELECT {ids} FROM {ident(name)} WHERE false"
        parts = [nw.from_native(self.con.sql(query)) for query in (added, changed, removed)]
        self._plan_empty(plan, [parts[1], parts[2]])
        return Increment(plan.key, parts[0], parts[1], parts[2], lazy=True, meta={"mode": "first"})

    def _plan_empty(self, plan: FeaturePlan, parts: list[Any]) -> None:
        """Remember the lazy ``parts`` (Narwhals frames of relations) made to hold no rows, e.g. ``WHERE false``.

        Writing one changes nothing, so :meth:`_write_in_place` returns at once: a first pass writes
        a first increment's ``changed`` after its ``added``, which cost a transaction, the tables'
        descriptions and an insert of nothing. Only the last lazy resolve's are kept per feature.
        """
        self._planned_empty[plan.table] = {part.to_native().sql_query() for part in parts}

    def _compare_root(self, plan: FeaturePlan, name: str, *, lazy: bool, columns: list[str] | None = None) -> Increment:
        """The increment of a root feature against the samples registered as ``name``, kept in a temp table.

        The increment is small, so it is made once, whether lazy or not: its parts read that
        table, never the samples, and stay what they were at resolve time after they are written.
        ``columns``: the samples are unchecked (they have these columns); their rows are checked
        on the increment itself (:meth:`_check_compared`), not in passes of their own.
        """
        own = [*plan.id_columns, *plan.cv_columns, *plan.dv_columns]
        current = sql.current_select(plan, None, self._source(plan, own, plan))
        picked = [ident(c) for c in (*plan.id_columns, *plan.dv_columns)]
        if columns is not None:  # a sample lacking a data version matches no stored row: it surfaces as added
            lacks = " OR ".join(f"{ident(c)} IS NULL" for c in plan.dv_columns)
            first = ident(plan.id_columns[0])
            picked[0] = f"CASE WHEN {lacks} THEN NULL ELSE {first} END AS {first}"
        expected = f"SELECT {', '.join(picked)} FROM {ident(name)}"
        tagged = ident(f"strata$root_{next(_names)}")
        query = sql.increment_query(sql.DUCKDB, self.hash_algorithm, plan, expected, current)
        _run(self.con, f"CREATE TEMP TABLE {tagged} AS {query}")
        try:
            if columns is not None:
                self._check_compared(plan, name, columns, tagged)
            increment = self._parts(plan, f"SELECT * FROM {tagged}", lazy=lazy)
        except BaseException:
            _run(self.con, f"DROP TABLE IF EXISTS {tagged}")
            raise
        if not lazy:  # a lazy increment reads it; it goes at close
            _run(self.con, f"DROP TABLE {tagged}")
        return increment

    def _check_compared(self, plan: FeaturePlan, name: str, columns: list[str], tagged: str) -> None:
        """The row checks of :meth:`_check_source` for the samples ``name``, worked out from their increment ``tagged``.

        A sample with a null id (or data version, see :meth:`_compare_root`) matches no stored
        row, so it is an added row; repeated new ids repeat among the added rows. A repeated
        stored id matches its stored row twice, so the samples that matched a stored row
        (samples - added) outnumber the stored rows that matched one (live - removed). Only
        when one of these says something is wrong are the samples checked pass by pass, for the
        error the other paths give. The live rows are counted from the ids alone (a root is never
        an expansion: one row per sample), which a split table answers without its writes.
        """
        stored = self._source(plan, list(plan.id_columns), plan)
        live_rows = f"(SELECT 1 FROM {stored} WHERE NOT {ident(DELETED)})"
        part = ident(sql.PART)
        added_code, removed_code = sql.part_code("added"), sql.part_code("removed")
        keys = sql.ids_list(plan.id_columns)
        null_ids = " OR ".join(f"{ident(c)} IS NULL" for c in plan.id_columns)
        repeated_added = (
            f"SELECT count(*) FROM (SELECT 1 FROM {tagged} WHERE {part} = {added_code} "
            f"GROUP BY {keys} HAVING count(*) > 1)"
        )
        samples, live, added, removed, nulls, repeated = _run(
            self.con,
            f"SELECT (SELECT count(*) FROM {ident(name)}), (SELECT count(*) FROM {live_rows}), "
            f"count(*) FILTER (WHERE {part} = {added_code}), count(*) FILTER (WHERE {part} = {removed_code}), "
            f"count(*) FILTER (WHERE {part} = {added_code} AND ({null_ids})), ({repeated_added}) FROM {tagged}",
        )[0]
        if nulls or repeated or samples - added != live - removed:
            self._check_source(plan, ident(name), columns, checked=False)

    def _increment(
        self, plan: FeaturePlan, expected: str, current: str, *, lazy: bool, only_added: bool = False
    ) -> Increment:
        """The three parts from one pass over both sides (``sql.increment_query``)."""
        query = sql.increment_query(sql.DUCKDB, self.hash_algorithm, plan, expected, current)
        return self._parts(plan, query, lazy=lazy, only_added=only_added)

    def _parts(self, plan: FeaturePlan, tagged: str, *, lazy: bool, only_added: bool = False) -> Increment:
        """The increment of ``tagged`` (``sql.increment_query``, or a table of its rows).

        Eager: the tagged rows (the increment and nothing else) come out once, as one Polars
        frame, and are cut by part there. Lazy: each part is that query filtered, left to DuckDB;
        ``only_added`` (nothing is stored for the feature): ``changed`` and ``removed`` are
        planned empty (a constant false filter), so reading or writing them runs nothing.
        """
        import narwhals as nw

        if lazy:
            queries = sql.part_queries(plan, tagged)
            if only_added:
                queries = {n: q if n == "added" else f"{q} AND false" for n, q in queries.items()}
            parts = {name: nw.from_native(self.con.sql(query)) for name, query in queries.items()}
            if only_added:
                self._plan_empty(plan, [parts["changed"], parts["removed"]])
            return Increment(plan.key, parts["added"], parts["changed"], parts["removed"], lazy=True)
        import polars as pl

        rows = self.con.sql(tagged).pl()
        split = {}
        for name, columns in sql.part_columns(plan).items():
            part = rows.filter(pl.col(sql.PART) == sql.part_code(name))
            split[name] = nw.from_native(part.select([pl.col(a).alias(b) for a, b in columns.items()]))
        return Increment(plan.key, split["added"], split["changed"], split["removed"])

    # -- sync records --------------------------------------------------------------------

    def _get_sync(self, key: FeatureKey) -> dict[str, Any] | None:
        rows = _run(self.con, f"SELECT state FROM {ident(SYNC)} WHERE feature = ?", [str(key)])
        return json.loads(rows[0][0]) if rows else None

    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        _run(self.con, f"INSERT OR REPLACE INTO {ident(SYNC)} VALUES (?, ?)", [str(key), json.dumps(state)])

    def _clear_sync(self) -> None:
        _run(self.con, f"DELETE FROM {ident(SYNC)}")

    # -- snapshots -----------------------------------------------------------------------

    def _add_snapshot(self, version: str, pushed_at: str, record: str) -> None:
        add_record(self._statement, "?", SNAPSHOTS, (version, pushed_at, record))

    def _get_snapshots(self, version: str | None) -> list[str]:
        return get_records(self._statement, "?", SNAPSHOTS, version) if self._has_table(SNAPSHOTS) else []

    def _add_migration_record(self, migration: str, recorded_at: str, record: str) -> None:
        add_record(self._statement, "?", MIGRATIONS, (migration, recorded_at, record))

    def _get_migration_records(self) -> list[str]:
        return get_records(self._statement, "?", MIGRATIONS, None) if self._has_table(MIGRATIONS) else []

    def _statement(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return _run(self.con, query, params)
