"""The PostgreSQL store: metadata on a server that a team shares.

Increments are computed on the server (``resolve/sql.py`` with the ``POSTGRES`` dialect): joins,
hashes and comparisons run there, and only the increment comes back. Rows go in and out with
``COPY`` (CSV written and read by Polars), never row by row. Every write and delete is one
transaction that first locks ``strata$meta`` against other writers (readers never wait): a server
stopped in the middle leaves all of it or none.

Tables are DuckDB's (``<feature>``, ``<feature>$history``, ``strata$meta``, ``strata$sync``) in
the store's schema (``schema=``, default: the connection's ``search_path``). Columns take the
PostgreSQL type of their Polars type; the types PostgreSQL lacks are domains named after DuckDB's
(``strata_utinyint`` ... ``strata_ubigint`` over a wider integer, ``strata_json`` text for nested
values, read back as strings). The session runs in UTC with ISO dates, so a value's text
(``CAST(... AS VARCHAR)``) is DuckDB's; floats, which PostgreSQL writes otherwise (``1`` for
``1.0``, ``1e+15``, ``Infinity``), go through ``strata$text``, a function the store creates.

Errors are one line naming the store; the connection URI's password never appears in them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import itertools
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from strata.errors import RuntimeFailure
from strata.extras import needs
from strata.features.versions import DEFAULT_ALGORITHM
from strata.resolve import sql
from strata.resolve.increment import Increment
from strata.resolve.plan import DELETED, FEATURE_VERSION, SEQ, SNAPSHOT_VERSION, WRITTEN_AT, FeaturePlan
from strata.resolve.sql import ident, literal
from strata.stores.base import MetadataStore
from strata.stores.sqltables import (
    HISTORY,
    META,
    SYNC,
    TABLE_SEQ,
    childless,
    matching,
    polars_frames,
    system_types,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import narwhals as nw
    import polars as pl
    import psycopg
    import pyarrow as pa

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey

CONNECT_TIMEOUT_S = 10
"""How long opening the store waits for the server."""
_names = itertools.count()

_TYPES: dict[str, tuple[str, str | None]] = {
    "Int64": ("BIGINT", "bigint"),
    "Int32": ("INTEGER", "integer"),
    "Int16": ("SMALLINT", "smallint"),
    "Int8": ("strata_tinyint", "smallint"),
    "UInt64": ("strata_ubigint", "numeric(20,0)"),
    "UInt32": ("strata_uinteger", "bigint"),
    "UInt16": ("strata_usmallint", "integer"),
    "UInt8": ("strata_utinyint", "smallint"),
    "Float64": ("DOUBLE PRECISION", None),
    "Float32": ("REAL", None),
    "String": ("VARCHAR", None),
    "Boolean": ("BOOLEAN", None),
    "Date": ("DATE", None),
}
"""Polars type -> the PostgreSQL type of its column, and what a domain of that name stands for (None: a built-in)."""
_JSON = "strata_json"
_DOMAINS = {declared: base for declared, base in _TYPES.values() if base} | {_JSON: "text"}
_READ_BACK = {
    "bigint": "Int64",
    "integer": "Int32",
    "smallint": "Int16",
    "double precision": "Float64",
    "real": "Float32",
    "character varying": "String",
    "text": "String",
    "boolean": "Boolean",
    "date": "Date",
} | {declared: polars for polars, (declared, base) in _TYPES.items() if base}
"""``format_type`` of a column -> its Polars type."""
_FLOATS = ("double precision", "real")
_TEXT_FUNCTION = '"strata$text"'
_TEXT_FUNCTION_SQL = r"""
CREATE OR REPLACE FUNCTION "strata$text"(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
    sign text := '';
    mantissa text;
    exponent int := 0;
    digits text;
    lead int;
BEGIN
    IF t = 'NaN' THEN RETURN 'nan'; END IF;
    IF t = 'Infinity' THEN RETURN 'inf'; END IF;
    IF t = '-Infinity' THEN RETURN '-inf'; END IF;
    IF left(t, 1) = '-' THEN sign := '-'; t := substr(t, 2); END IF;
    mantissa := split_part(t, 'e', 1);
    IF position('e' IN t) > 0 THEN exponent := split_part(t, 'e', 2)::int; END IF;
    digits := replace(mantissa, '.', '');
    exponent := exponent + length(split_part(mantissa, '.', 1)) - 1;
    lead := length(digits) - length(ltrim(digits, '0'));
    digits := rtrim(ltrim(digits, '0'), '0');
    IF digits = '' THEN RETURN sign || '0.0'; END IF;
    exponent := exponent - lead;
    IF exponent >= 16 OR exponent < -4 THEN
        RETURN sign || left(digits, 1) || CASE WHEN length(digits) > 1 THEN '.' || substr(digits, 2) ELSE '' END
            || 'e' || CASE WHEN exponent < 0 THEN '-' ELSE '+' END || lpad(abs(exponent)::text, 2, '0');
    END IF;
    IF exponent < 0 THEN RETURN sign || '0.' || repeat('0', -exponent - 1) || digits; END IF;
    IF length(digits) <= exponent + 1 THEN RETURN sign || rpad(digits, exponent + 1, '0') || '.0'; END IF;
    RETURN sign || left(digits, exponent + 1) || '.' || substr(digits, exponent + 2);
END
$f$
"""
"""A float's PostgreSQL text (its shortest digits) as DuckDB writes it: Python's ``repr`` layout."""
_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def declared_type(dtype: pl.DataType) -> str:
    """The PostgreSQL type of a column of Polars type ``dtype``."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if dtype == pl.Null:
        return "VARCHAR"
    known = _TYPES.get(str(dtype.base_type()))
    return known[0] if known else _JSON


def polars_type(declared: str) -> pl.DataType:
    """The Polars type a column of ``format_type`` ``declared`` reads back as (anything else: a string)."""
    import polars as pl

    declared = declared.rsplit(".", 1)[-1].strip('"')
    if declared.startswith("timestamp"):
        return pl.Datetime("us", "UTC" if "with time zone" in declared else None)
    name = _READ_BACK.get(declared)
    return getattr(pl, name)() if name else pl.String()


def to_csv(frame: pl.DataFrame) -> bytes:
    """``frame`` as the CSV ``COPY ... FROM STDIN (FORMAT csv)`` reads: nulls unquoted and empty, text quoted."""
    import polars as pl

    converted = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype.time_zone:
            converted.append(pl.col(name).dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%d %H:%M:%S%.6f+00"))
        elif declared_type(dtype) == _JSON:
            converted.append(
                pl.col(name).map_elements(lambda v: json.dumps(v, default=str), return_dtype=pl.String, skip_nulls=True)
            )
    frame = frame.with_columns(converted) if converted else frame
    return frame.write_csv(include_header=False, quote_style="non_numeric").encode()


def from_csv(data: bytes, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """What ``COPY (...) TO STDOUT (FORMAT csv)`` wrote, as a frame of ``schema``."""
    import polars as pl

    if not data:
        return pl.DataFrame(schema=dict(schema))
    text = pl.read_csv(
        io.BytesIO(data), has_header=False, new_columns=list(schema), schema_overrides=dict.fromkeys(schema, pl.String)
    )
    back = []
    for name, dtype in schema.items():
        column = pl.col(name)
        if dtype == pl.Boolean:
            back.append(column == "t")
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone:
            utc = column.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", time_unit="us", time_zone="UTC")
            back.append(utc.dt.convert_time_zone(dtype.time_zone))
        elif isinstance(dtype, pl.Datetime):
            back.append(column.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"))
        elif dtype == pl.Date:
            back.append(column.str.to_date("%Y-%m-%d"))
        elif dtype != pl.String:
            back.append(column.cast(dtype))
    return text.with_columns(back) if back else text


class PostgresStore(MetadataStore):
    """Metadata in a PostgreSQL database (``uri``: ``postgresql://user:password@host:port/database``)."""

    kind = "postgres"

    def __init__(
        self,
        uri: str,
        *,
        schema: str | None = None,
        hash_algorithm: str = DEFAULT_ALGORITHM,
        graph: FeatureGraph | None = None,
        read_only: bool = False,
        fallbacks: Sequence[MetadataStore] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(
            hash_algorithm=hash_algorithm, graph=graph, read_only=read_only, fallbacks=fallbacks, name=name
        )
        self.uri = uri
        self.schema = schema
        self._con: psycopg.Connection[Any] | None = None
        self._tables: set[str] = set()

    def describe(self) -> str:
        """Its name, else ``postgres store at host:port/database`` (never the user or password)."""
        if self.name:
            return self.name
        parts = urlsplit(self.uri)
        where = f"{parts.hostname or 'localhost'}{f':{parts.port}' if parts.port else ''}{parts.path}"
        return f"postgres store at {where}" + (f" (schema {self.schema})" if self.schema else "")

    def _same_place(self, other: MetadataStore) -> bool:
        """The same database and schema, whoever logs in."""
        if not isinstance(other, PostgresStore):
            return False
        mine, theirs = urlsplit(self.uri), urlsplit(other.uri)
        return (mine.hostname, mine.port, mine.path, self.schema) == (
            theirs.hostname,
            theirs.port,
            theirs.path,
            other.schema,
        )

    @property
    def con(self) -> psycopg.Connection[Any]:
        """The open connection (``to_native()`` for users who want raw SQL)."""
        self._require_open()
        assert self._con is not None
        return self._con

    def to_native(self) -> psycopg.Connection[Any]:
        return self.con

    # -- errors --------------------------------------------------------------------------

    def _hide(self, text: str) -> str:
        """``text`` without the connection's password (nor URL credentials, a ``password=`` setting, :attr:`hidden`)."""
        from urllib.parse import unquote

        password = urlsplit(self.uri).password
        for form in {password, unquote(password)} if password else ():
            text = text.replace(form, "***")
        return _PASSWORD.sub(r"\1***", self.shown(text))

    def _failure(self, exc: Exception, doing: str) -> RuntimeFailure:
        """A PostgreSQL error as one line naming the store."""
        import psycopg

        detail = self._hide(" ".join(str(exc).split()) or type(exc).__name__)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return RuntimeFailure(
                f"PostgreSQL store `{self.describe()}`: the connection failed while {doing}: {detail}",
                "check that the server is up and reachable and the credentials are right, then run the command "
                "again (a write is kept whole or not at all)",
            )
        return RuntimeFailure(
            f"PostgreSQL store `{self.describe()}`: {doing} failed: {detail}",
            "check the database (its tables are strata's, created by its first write); run with --debug for more",
        )

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """PostgreSQL's errors inside as :meth:`_failure`."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise self._failure(exc, doing) from None

    def _run(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._con is not None
        with self._errors("running a query"):
            cursor = self._con.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    # -- lifecycle -----------------------------------------------------------------------

    def _open(self) -> None:
        with needs("postgres", "the PostgreSQL store"):
            import psycopg

        try:
            con = psycopg.connect(self.uri, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:  # a malformed URI too (psycopg.ProgrammingError)
            raise self._failure(exc, "connecting") from None
        self._con = con
        self._tables = set()
        try:
            self._run("SET TimeZone TO 'UTC'")
            self._run("SET DateStyle TO 'ISO'")
            self._run("SET extra_float_digits TO 1")
            if self.schema is not None:
                if not self.read_only:
                    self._run(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
                self._run(f"SET search_path TO {ident(self.schema)}")
            temporary = "TEMP " if self.read_only else ""
            if not (self.read_only and self._has_table(META)):
                for table, columns in (
                    (META, "name VARCHAR PRIMARY KEY, value VARCHAR"),
                    (SYNC, "feature VARCHAR PRIMARY KEY, state VARCHAR"),
                ):
                    self._run(f"CREATE {temporary}TABLE IF NOT EXISTS {ident(table)} ({columns})")
            if (
                not self.read_only
                and self._run("SELECT to_regprocedure(%s) IS NULL", [f"{_TEXT_FUNCTION}(text)"])[0][0]
            ):
                self._run(_TEXT_FUNCTION_SQL)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None
        self._tables = set()

    def _get_meta(self, name: str) -> str | None:
        rows = self._run(f"SELECT value FROM {ident(META)} WHERE name = %s", [name])
        return str(rows[0][0]) if rows else None

    def _set_meta(self, name: str, value: str) -> None:
        upsert = "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        self._run(f"INSERT INTO {ident(META)} VALUES (%s, %s) {upsert}", [name, value])

    def _meta(self, names: Sequence[str]) -> dict[str, str]:
        return dict(self._run(f"SELECT name, value FROM {ident(META)} WHERE name = ANY(%s)", [list(names)]))

    def _next_seq(self, table: str, watch: Sequence[str] = ()) -> tuple[int, dict[str, int | None]]:
        """The next sequence number, taken inside the write's transaction; ``watch``'s numbers before it."""
        meta = self._meta(["seq", *(TABLE_SEQ + t for t in watch)])
        current = int(meta.get("seq") or 0) + 1
        upsert = "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        self._run(
            f"INSERT INTO {ident(META)} VALUES ('seq', %s), (%s, %s) {upsert}",
            [str(current), TABLE_SEQ + table, str(current)],
        )
        seen = {t: int(meta[TABLE_SEQ + t]) if TABLE_SEQ + t in meta else None for t in watch}
        return current, seen

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; writers take turns on a lock of ``strata$meta`` (readers go on reading)."""
        self._run("BEGIN")
        try:
            self._run(f"LOCK TABLE {ident(META)} IN SHARE ROW EXCLUSIVE MODE")
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._run("ROLLBACK")
            raise
        self._run("COMMIT")

    def _has_table(self, table: str) -> bool:
        if table in self._tables:
            return True
        found = self._run("SELECT to_regclass(%s) IS NOT NULL", [ident(table)])[0][0]
        if found:
            self._tables.add(table)
        elif table != META and self._has_table(META) and self._get_meta(TABLE_SEQ + table) is not None:
            raise RuntimeFailure(
                f"PostgreSQL store `{self.describe()}`: table `{table}` is missing, yet strata wrote it",
                "it was dropped outside strata: restore it from a backup, or copy the feature in again "
                "(`strata metadata copy`)",
            )
        return bool(found)

    def _columns(self, table: str) -> dict[str, str]:
        """Column names and ``format_type`` of ``table`` ({} when it does not exist)."""
        rows = self._run(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [ident(table)],
        )
        return {str(name): str(kind) for name, kind in rows}

    # -- writing -------------------------------------------------------------------------

    def _batch(self, frame: pl.DataFrame) -> str:
        """A temp table holding ``frame``'s rows (one ``COPY``), columns typed as they will be stored."""
        name = ident(f"strata$batch_{next(_names)}")
        types = {c: declared_type(t) for c, t in frame.schema.items()}
        self._domains(types.values())
        columns = ", ".join(f"{ident(c)} {t}" for c, t in types.items())
        self._run(f"CREATE TEMP TABLE {name} ({columns})")
        if len(frame):
            self._copy_in(name, frame)
        return name

    def _copy_in(self, table: str, frame: pl.DataFrame) -> None:
        assert self._con is not None
        statement = f"COPY {table} ({sql.ids_list(tuple(frame.columns))}) FROM STDIN (FORMAT csv)"
        with self._errors("writing rows"), self._con.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(to_csv(frame))

    def _domains(self, declared: Iterator[str] | Sequence[str] | Any) -> None:
        """Create the domains among ``declared`` that the schema lacks (DuckDB's types PostgreSQL has not)."""
        for name in sorted(set(declared) & set(_DOMAINS)):
            create = f"CREATE DOMAIN {ident(name)} AS {_DOMAINS[name]}"
            if self._run("SELECT to_regtype(%s) IS NULL", [ident(name)])[0][0]:
                self._run(f"DO $$ BEGIN {create}; EXCEPTION WHEN duplicate_object THEN NULL; END $$")

    def _ensure_tables(self, plan: FeaturePlan, wanted: dict[str, str]) -> bool:
        """Create the feature's tables, or add the columns they lack; whether they were created."""
        created = False
        self._domains(wanted.values())
        for table in (plan.table, plan.table + HISTORY):
            existing = self._columns(table)
            if not existing:
                columns = ", ".join(f"{ident(n)} {t}" for n, t in wanted.items())
                self._run(f"CREATE TABLE {ident(table)} ({columns})")
                if table == plan.table:
                    self._run(f"CREATE INDEX ON {ident(table)} ({ident(SEQ)})")
                    self._run(f"CREATE INDEX ON {ident(table)} ({sql.ids_list(plan.resolve_ids)})")
                created = True
            for name, kind in wanted.items():
                if existing and name not in existing:
                    self._run(f"ALTER TABLE {ident(table)} ADD COLUMN {ident(name)} {kind}")
        self._tables.update((plan.table, plan.table + HISTORY))
        return created

    def _forget_created(self, plan: FeaturePlan, *, created: bool) -> None:
        """After a rollback: tables this transaction created are gone again (``_tables`` must not keep them)."""
        if created:
            self._tables.difference_update((plan.table, plan.table + HISTORY))

    def _drop(self, *tables: str) -> None:
        """Drop temp tables, unless the connection is gone (they went with it)."""
        if self._con is None or self._con.closed:
            return
        with contextlib.suppress(RuntimeFailure):
            for table in tables:
                self._run(f"DROP TABLE IF EXISTS {table}")

    def _write(
        self, plan: FeaturePlan, table: pa.Table, *, since: Mapping[str, int | None] | None = None, fresh: bool = False
    ) -> int | None:
        (frame,) = polars_frames(table)
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
                consts = [*(f.code_version for f in plan.fields), plan.feature_version, plan.snapshot_version]
                names = [*frame.columns, *plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED]
                values = [*(ident(c) for c in frame.columns), *(literal(c) for c in consts), str(int(seq))]
                values += [f"{literal(_now())}::timestamp", childless(plan)]
                into = f"INSERT INTO {ident(plan.table)} ({sql.ids_list(tuple(names))})"
                self._run(f"{into} SELECT {', '.join(values)} FROM {batch}")
        except BaseException:
            self._forget_created(plan, created=created)
            raise
        finally:
            self._drop(batch)
        return seq if since is None or in_step else None

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
                    self._run(f"DELETE FROM {table} WHERE {matching(table, batches[0], frames[0].columns)}")
                if len(frames[1]):
                    self._run(f"DELETE FROM {older} WHERE {matching(older, batches[1], frames[1].columns)}")
        finally:
            self._drop(*batches)

    def _supersede(self, plan: FeaturePlan, batch: str, seq: int) -> None:
        """Move the latest rows of the batch's resolve ids to history; an expansion's lost children leave tombstones."""
        keys = sql.ids_list(plan.resolve_ids)
        older = f"({keys}) IN (SELECT {keys} FROM {batch})"
        if plan.child_ids:
            same = " AND ".join(
                f"b.{ident(c)} IS NOT DISTINCT FROM {ident(plan.table)}.{ident(c)}" for c in plan.id_columns
            )
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
            replaced = {SEQ: str(int(seq)), WRITTEN_AT: f"{literal(_now())}::timestamp", DELETED: "true"}
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
                match = matching(latest, batch, frame.columns)
                if soft:
                    count = self._move(plan, match, seq)
                else:
                    count = self._run(f"SELECT count(*) FROM {latest} WHERE NOT {ident(DELETED)} AND {match}")[0][0]
                    self._run(f"DELETE FROM {latest} WHERE {match}")
                    self._run(f"DELETE FROM {history} WHERE {matching(history, batch, frame.columns)}")
        finally:
            self._drop(batch)
        return int(count), seq if since is None or seen == dict(since) else None

    # -- reading -------------------------------------------------------------------------

    def _frame(self, query: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
        """The rows of ``query`` as a frame of ``schema``, read with one ``COPY ... TO STDOUT``."""
        assert self._con is not None
        buffer = bytearray()
        statement = f"COPY ({query}) TO STDOUT (FORMAT csv)"
        with self._errors("reading rows"), self._con.cursor() as cursor, cursor.copy(statement) as copy:
            for chunk in copy:
                buffer += chunk
        return from_csv(bytes(buffer), schema)

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
        return nw.from_native(self._frame(query, schema).lazy())

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

    def _source(self, plan: FeaturePlan, columns: list[str], ids: Mapping[str, Any] | None = None) -> str:
        """The feature's table, or an empty stand-in with the needed columns when it was never written.

        The stand-in's id columns have the types the ids have elsewhere (``ids``, else :meth:`_id_schema`),
        so that joining them is well typed; the other columns are text.
        """
        if self._has_table(plan.table):
            return ident(plan.table)
        id_types = dict(ids) if ids is not None else self._id_schema(plan, [c for c in columns if c in plan.id_columns])
        types = {c: declared_type(id_types[c]) if c in id_types else "VARCHAR" for c in columns}
        self._domains(types.values())
        nulls = ", ".join(f"CAST(NULL AS {t}) AS {ident(c)}" for c, t in types.items())
        return f"(SELECT {nulls}, false AS {ident(DELETED)}, CAST(NULL AS BIGINT) AS {ident(SEQ)} WHERE false) AS s"

    def _sources(self, plan: FeaturePlan) -> dict[str, str]:
        own = [*plan.id_columns, *plan.input_columns, *plan.cv_columns, *plan.dv_columns]
        tables = [plan.table, *(u.table for u in plan.upstreams)]
        ids = None
        if not all(self._has_table(t) for t in tables):  # a stand-in's ids are typed as the stored ones
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
        name = ident(f"strata$cand_{next(_names)}")
        keys = sql.ids_list(plan.resolve_ids)
        if only is not None:
            import polars as pl

            types = self._id_schema(plan, plan.resolve_ids)
            frame = pl.DataFrame({k: [only[k]] for k in plan.resolve_ids}, schema=types)
            batch = self._batch(frame)
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
        self._run(f"ANALYZE {name}")
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
        """``sql.POSTGRES``, writing the floats of upstream ids as text the way DuckDB does."""
        casts = {}
        for up in plan.upstreams:
            if self._has_table(up.table):
                for column, declared in self._columns(up.table).items():
                    if declared in _FLOATS:
                        casts[up.table, column] = f"{_TEXT_FUNCTION}(CAST({{}} AS VARCHAR))"
        return dataclasses.replace(sql.POSTGRES, text_casts=casts) if casts else sql.POSTGRES

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

    def _increment(
        self, plan: FeaturePlan, expected: str, current: str, *, lazy: bool, ids: dict[str, Any] | None = None
    ) -> Increment:
        """The three parts from one pass over both sides on the server (``sql.increment_query``), cut in Polars."""
        import narwhals as nw
        import polars as pl

        rows = self._tagged(plan, expected, current, ids)
        split = {}
        for name, columns in sql.part_columns(plan).items():
            part = rows.filter(pl.col(sql.PART) == sql.part_code(name))
            picked = part.select([pl.col(a).alias(b) for a, b in columns.items()])
            split[name] = nw.from_native(picked.lazy() if lazy else picked)
        return Increment(plan.key, split["added"], split["changed"], split["removed"], lazy=lazy)

    def _tagged(self, plan: FeaturePlan, expected: str, current: str, ids: dict[str, Any] | None) -> pl.DataFrame:
        """The rows of ``sql.increment_query``, typed: ids as stored (or as ``ids``), the rest text."""
        import polars as pl

        query = sql.increment_query(sql.POSTGRES, self.hash_algorithm, plan, expected, current)
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
        rows = self._run(f"SELECT state FROM {ident(SYNC)} WHERE feature = %s", [str(key)])
        return json.loads(rows[0][0]) if rows else None

    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        upsert = "ON CONFLICT (feature) DO UPDATE SET state = excluded.state"
        self._run(f"INSERT INTO {ident(SYNC)} VALUES (%s, %s) {upsert}", [str(key), json.dumps(state)])

    def _clear_sync(self) -> None:
        self._run(f"DELETE FROM {ident(SYNC)}")


def _now() -> str:
    """Now (UTC, naive) as ISO text."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
