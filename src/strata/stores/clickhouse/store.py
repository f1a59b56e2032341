"""The ClickHouse store: the scale-out engine, embedded (chDB, ``path:``) or on a server (``host:``).

ClickHouse has no cheap row update or delete and no multi-statement transaction, so a feature is one
append-only ``MergeTree`` table ordered by ``strata_seq``: every write, tombstone and put appends rows
under a new sequence number, and nothing is moved. The latest row of a sample is the one of the
highest *committed* number (for an expansion, no older than the last write of its parent); every
other committed row is history. A number is committed by one row in ``strata$commits``, appended
after the rows: a write that fails half-way leaves rows under a number that is never committed, and
no read counts them. Several writers at once: a number is claimed first (``strata$claims``, given
by the server, never shared), commits come in any order, and a sync record keeps the numbers still
open when it was taken, to look at again (``_claim``, ``_in_flight``, ``_get_sync``). See
docs/stores.md, "The ClickHouse store".

Increments are the queries of ``resolve/sql.py`` in the ``CLICKHOUSE`` dialect over the latest rows;
the aggregation ids an upstream folds into a data version are written as DuckDB writes them
(:func:`text_cast`), so hashes are DuckDB's, byte for byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from strata.errors import RuntimeFailure
from strata.features.versions import DEFAULT_ALGORITHM
from strata.resolve import sql
from strata.resolve.plan import DELETED, FEATURE_VERSION, SEQ, SNAPSHOT_VERSION, WRITTEN_AT, FeaturePlan
from strata.stores.base import MetadataStore
from strata.stores.checks import fit_stored, typed_match
from strata.stores.snapshots import MIGRATIONS, SNAPSHOTS
from strata.stores.sqltables import (
    META,
    SYNC,
    SYSTEM_RECORDS,
    childless,
    polars_frames,
    reconcile_checked,
    split_increment,
    with_text_casts,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    import narwhals as nw
    import polars as pl
    import pyarrow as pa

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey
    from strata.resolve.increment import Increment
    from strata.stores.clickhouse.engine import Engine

COMMITS = "strata$commits"
"""One row per committed sequence number and the feature table it belongs to."""
CLAIMS = "strata$claims"
"""One row per number a write took (its table, a token of the writer's own, the time it must commit by);
a second row of the token, ``until`` 1970, lets the number go."""
CLAIM_BOUND = "INTERVAL 6 HOUR"
"""How long a write may hold its number before it commits (recorded with each claim as ``until``)."""
CLAIM_GRACE = "INTERVAL 5 MINUTE"
"""How long after its ``until`` readers still wait for a claim (a commit checked in time, seen late)."""
CLAIM_TRIES = 20
"""Claims a write makes before it gives up (each lost only to another claim of its number, or a higher commit)."""
DOOMED = "strata$doomed"
"""The rows a delete is taking out, by operation (a ``Memory`` table: what a killed one leaves dies with the server).

A delete is a mutation, which runs outside the session and cannot see its temporary tables."""
SYNC_DELETE = "SETTINGS lightweight_deletes_sync = 2, mutations_sync = 2"
"""A delete (lightweight or a mutation) returns once done on every replica, whatever the server's defaults."""
KIND = "strata$kind"
"""0: a row (live or tombstone); 1: a marker that takes the sample out of the latest rows; 2: history only."""
WHOLE = "strata$whole"
"""The row's write replaced every row of its resolve ids (an expansion's parent), not only its own."""
_ROW, _GONE, _HISTORY = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Claim:
    """A sequence number a write took for ``table`` (``_claim``); ``token`` tells its claim rows from others'."""

    table: str
    seq: int
    token: str


ident = sql.CLICKHOUSE.ident
"""A quoted ClickHouse name: its backslashes are escapes, so they are doubled (a name is kept intact)."""
literal = sql.CLICKHOUSE.literal
"""A ClickHouse string constant, its backslashes doubled as well."""


def ids_list(columns: Sequence[str], alias: str | None = None) -> str:
    """``"a", "b"`` (or ``x."a", x."b"``), quoted for ClickHouse."""
    return sql.ids_list(tuple(columns), alias, sql.CLICKHOUSE)


_TYPES = {
    "Int64": "Int64",
    "Int32": "Int32",
    "Int16": "Int16",
    "Int8": "Int8",
    "UInt64": "UInt64",
    "UInt32": "UInt32",
    "UInt16": "UInt16",
    "UInt8": "UInt8",
    "Float64": "Float64",
    "Float32": "Float32",
    "String": "String",
    "Boolean": "Bool",
}
"""Polars types and the ClickHouse types they are kept as (every column ``Nullable``)."""
_AS_INTEGERS = {"Date": "Int32", "Time": "Int64", "Datetime": "Int64", "Datetime(UTC)": "Int64"}
"""Types ClickHouse cannot keep whole (``Date32`` spans 1900 to 2299, ``DateTime64`` too on older servers;
``Time`` is new), kept as Polars keeps them (days, nanoseconds of the day, microseconds since 1970 in
UTC), the type named in the column's comment (``strata:Date``)."""
_MARK = "strata:"


def kept_as(dtype: pl.DataType) -> str | None:
    """The name (``Date``, ``Time``, ``Datetime``, ``Datetime(UTC)``) of a type kept as an integer, else None."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return "Datetime(UTC)" if dtype.time_zone else "Datetime"
    if dtype == pl.Date:
        return "Date"
    return "Time" if dtype == pl.Time else None


def column_type(dtype: pl.DataType) -> str:
    """The ClickHouse type of a Polars type; nested and other types are JSON text (``String``)."""
    import polars as pl

    named = kept_as(dtype)
    if named is not None:
        return _AS_INTEGERS[named]
    if isinstance(dtype, pl.Decimal):
        return f"Decimal({dtype.precision or 38}, {dtype.scale})"
    return _TYPES.get(str(dtype.base_type()), "String")


def column_definition(dtype: pl.DataType) -> str:
    """``Nullable(<type>)``, and the comment naming a type kept as an integer."""
    named = kept_as(dtype)
    return f"Nullable({column_type(dtype)})" + (f" COMMENT {literal(_MARK + named)}" if named else "")


def declared_type(declared: str, comment: str) -> str:
    """The type a column is read as: its comment's for a type kept as an integer, else its own."""
    return comment.removeprefix(_MARK) if comment.startswith(_MARK) else declared


def polars_type(declared: str) -> pl.DataType:
    """The Polars type a ClickHouse column (:func:`declared_type`) reads back as."""
    import polars as pl

    bare = _bare(declared)
    kept: dict[str, pl.DataType] = {"Date": pl.Date(), "Time": pl.Time(), "Datetime": pl.Datetime("us")}
    if bare in kept or bare == "Datetime(UTC)":
        return kept.get(bare, pl.Datetime("us", "UTC"))
    if bare.startswith("Decimal("):
        precision, scale = (int(n) for n in bare.removeprefix("Decimal(").removesuffix(")").split(","))
        return pl.Decimal(precision, scale)
    name = {v: k for k, v in _TYPES.items()}.get(bare)
    return getattr(pl, name)() if name else pl.String()


# -- DuckDB's text of a value ----------------------------------------------------------------


def _float_text(text: str) -> str:
    """SQL turning ``text`` (ClickHouse's shortest digits of a float) into DuckDB's (Python's ``repr``) spelling.

    ClickHouse writes ``1e-7``, ``100``, ``100000000000000000000``; DuckDB ``1e-07``, ``100.0``, ``1e+20``:
    the same digits, so only the notation is rewritten: scientific below 1e-4 and from 1e16 on, with a
    sign and two exponent digits at least, else positional with at least one digit after the point.
    """
    bound, text = text, "_txt"
    a = f"if(startsWith({text}, '-'), substring({text}, 2), {text})"
    sign = f"if(startsWith({text}, '-'), '-', '')"
    mantissa = f"splitByChar('e', {a})[1]"
    power = f"if(position({a}, 'e') > 0, toInt32(splitByChar('e', {a})[2]), 0)"
    whole = f"splitByChar('.', {mantissa})[1]"
    digits_all = f"concat({whole}, if(position({mantissa}, '.') > 0, splitByChar('.', {mantissa})[2], ''))"
    digits = f"trimRight(trimLeft({digits_all}, '0'), '0')"
    zeros = f"(length({digits_all}) - length(trimLeft({digits_all}, '0')))"
    exp = f"(toInt32(length({whole})) - 1 - toInt32({zeros}) + {power})"
    parts = _let("_txt", bound, f"({text}, {sign}, {digits}, {exp}, {a} IN ('nan', 'inf'))")
    digits, exp, sign = "_n.3", "_n.4", "_n.2"  # each computed once
    rest = f"substring({digits}, 2)"
    scientific = (
        f"concat(substring({digits}, 1, 1), if(length({digits}) > 1, concat('.', {rest}), ''), 'e', "
        f"if({exp} < 0, '-', '+'), {_padded(f'toString(abs({exp}))', 2)})"
    )
    positional = (
        f"if({exp} < 0, concat('0.', repeat('0', toUInt32(-{exp} - 1)), {digits}), "
        f"if(length({digits}) <= {exp} + 1, concat(rightPad({digits}, toUInt32({exp} + 1), '0'), '.0'), "
        f"concat(substring({digits}, 1, {exp} + 1), '.', substring({digits}, {exp} + 2))))"
    )
    written = f"if({exp} >= 16 OR {exp} < -4, {scientific}, {positional})"
    return _let("_n", parts, f"multiIf(_n.5, _n.1, {digits} = '', concat({sign}, '0.0'), concat({sign}, {written}))")


def _padded(text: str, width: int) -> str:
    """SQL: ``text`` with zeros before it up to ``width`` characters (``leftPad`` alone cuts a longer one)."""
    return f"if(length({text}) >= {width}, {text}, leftPad({text}, {width}, '0'))"


def _power(base: int, exponent: str) -> str:
    """SQL for ``base ** exponent`` (a non-negative integer) as an exact ``UInt256``."""
    if base == 2:  # noqa: PLR2004 - powers of two are shifts
        return f"bitShiftLeft(toUInt256(1), toUInt16({exponent}))"
    return f"toUInt256(concat('1', repeat('0', toUInt16({exponent}))))"


def _let(name: str, value: str, body: str) -> str:
    """SQL for ``body`` with ``name`` bound to ``value``, computed once (a one-element ``arrayMap``)."""
    return f"arrayElement(arrayMap({name} -> {body}, [{value}]), 1)"


def single_text(value: str) -> str:
    """SQL writing a ``Float32`` as DuckDB does (``resolve/text.py``, :func:`~strata.resolve.text.single_text`).

    In exact ``UInt256`` arithmetic, for 1 to 9 significant digits in turn: the value rounded to that
    many digits (half to even) is the answer when it lies strictly between the midpoints to the
    value's neighbours; when it lies exactly on one, or the value lies exactly halfway between two
    such candidates, the answer is the value's own digits (as a double is written). The value is
    ``m * 2**q``; the midpoints are ``(4m ± 2) * 2**(q-2)`` (``4m - 1`` below a power of two).
    """
    e, f = "bitShiftRight(_b, 23)", "bitAnd(_b, 8388607)"
    m = f"toUInt256(if({e} = 0, {f}, {f} + 8388608))"
    q = f"toInt32(if({e} = 0, -149, toInt32({e}) - 150))"
    below = f"if({f} = 0 AND {e} > 1, 1, 2)"
    k = "toInt32(floor(log10(toFloat64(reinterpretAsFloat32(_b)))))"
    parts = _let("_b", f"reinterpretAsUInt32(abs(assumeNotNull({value})))", f"({m}, {q}, {below}, {k})")
    # _p: (m, q, 1 or 2 below m, k); each candidate is t.2 * 10**t.1 (s = t.1)
    steps = "arrayMap(d -> toInt32(_p.4 - d + 1), range(1, 10))"
    num = f"(_p.1 * {_power(2, 'greatest(_p.2, 0)')} * {_power(10, 'greatest(-s, 0)')})"
    den = f"({_power(2, 'greatest(-_p.2, 0)')} * {_power(10, 'greatest(s, 0)')})"
    quotients = f"arrayMap(s -> (s, intDiv({num}, {den}), 2 * ({num} % {den}), {den}), {steps})"
    rounded = f"arrayMap(t -> (t.1, t.2 + if(t.3 > t.4 OR (t.3 = t.4 AND t.2 % 2 = 1), 1, 0), t.3 = t.4), {quotients})"
    scaled = f"t.2 * {_power(10, 'greatest(t.1, 0)')} * {_power(2, 'greatest(2 - _p.2, 0)')}"
    edge = f"{_power(2, 'greatest(_p.2 - 2, 0)')} * {_power(10, 'greatest(-t.1, 0)')}"
    compared = (
        f"arrayMap(t -> (t.1, t.2, t.3, {scaled}, (4 * _p.1 - _p.3) * {edge}, (4 * _p.1 + 2) * {edge}), {rounded})"
    )
    first = _let(
        "_p", parts, f"arrayFirst(t -> t.3 OR t.4 = t.5 OR t.4 = t.6 OR (t.4 > t.5 AND t.4 < t.6), {compared})"
    )
    own = _float_text(f"toString(toFloat64({value}))")
    shortest = _float_text(f"concat(if({value} < 0, '-', ''), toString(_f.2), 'e', toString(_f.1))")
    picked = _let("_f", first, f"if(NOT _f.3 AND _f.4 > _f.5 AND _f.4 < _f.6, {shortest}, {own})")
    return f"if(isFinite({value}) AND {value} != 0, {picked}, {own})"


_DAY_US = 86_400_000_000
_CYCLE_DAYS = 146_097
"""Days in 400 Gregorian years, after which the calendar repeats."""
_FROM_1900 = 25_567
"""Days from 1900-01-01, where ClickHouse's ``Date32`` begins, to 1970-01-01; it spans exactly one cycle."""


def _date_text(days: str) -> str:
    """SQL writing ``days`` since 1970-01-01 as ``YYYY-MM-DD``, for any year from 1.

    ``Date32`` covers 1900 to 2299, one whole 400-year cycle: the date is moved into it by whole
    cycles, written, and its year moved back.
    """
    offset = f"(toInt64({days}) + {_FROM_1900})"
    inside = f"positiveModulo({offset}, toInt64({_CYCLE_DAYS}))"  # an unsigned divisor would wrap a negative
    date = f"addDays(toDate32('1900-01-01'), {inside})"
    year = f"toYear({date}) + 400 * intDiv({offset} - {inside}, {_CYCLE_DAYS})"
    return f"concat({_padded(f'toString({year})', 4)}, substring(toString({date}), 5))"


def _clock_text(micros: str) -> str:
    """SQL writing ``micros`` since midnight as ``HH:MM:SS``, then the fraction without its trailing zeros."""
    parts = [f"intDiv({micros}, 3600000000)", f"intDiv({micros}, 60000000) % 60", f"intDiv({micros}, 1000000) % 60"]
    clock = ", ':', ".join(f"leftPad(toString({p}), 2, '0')" for p in parts)
    fraction = f"{micros} % 1000000"
    return (
        f"concat({clock}, if({fraction} = 0, '', concat('.', trimRight(leftPad(toString({fraction}), 6, '0'), '0'))))"
    )


def _datetime_text(micros: str) -> str:
    """SQL writing ``micros`` since 1970-01-01 00:00 as ``YYYY-MM-DD HH:MM:SS[.f]``."""
    time_of_day = f"positiveModulo(toInt64({micros}), toInt64({_DAY_US}))"
    days = f"intDiv(toInt64({micros}) - {time_of_day}, toInt64({_DAY_US}))"
    return f"concat({_date_text(days)}, ' ', {_clock_text(time_of_day)})"


_WRITERS: dict[str, Callable[[str], str]] = {
    "Float64": lambda v: _float_text(f"toString({v})"),
    "Float32": single_text,
    "Date": _date_text,
    "Time": lambda v: _clock_text(f"intDiv(toInt64({v}), 1000)"),
    "Datetime": _datetime_text,
    "Datetime(UTC)": lambda v: f"concat({_datetime_text(v)}, '+00')",
}
"""SQL writing a value (not null) of each type (:func:`declared_type`) whose ClickHouse text is not DuckDB's."""


def _bare(declared: str) -> str:
    """``declared`` without ``Nullable(...)`` around it."""
    return declared.removeprefix("Nullable(").removesuffix(")") if declared.startswith("Nullable(") else declared


def text_cast(declared: str) -> str | None:
    """SQL template (``{0}``: the column) writing a ``declared`` column as DuckDB's ``CAST(... AS VARCHAR)`` does.

    None when ClickHouse's own text is DuckDB's already (integers, strings, booleans); null stays null.
    A decimal is written with every fraction digit of its scale, as DuckDB writes it.
    """
    bare = _bare(declared)
    if bare.startswith("Decimal("):
        written = f"toDecimalString({{0}}, {int(bare.removesuffix(')').split(',')[1])})"
    elif bare in _WRITERS:
        written = _WRITERS[bare]("{0}")
    else:
        return None
    return f"if({{0}} IS NULL, NULL, {written})"


class ClickHouseStore(MetadataStore):
    """Metadata in ClickHouse: embedded chDB in ``path`` (a directory), or a server at ``host``.

    ``database``: the ClickHouse database of its tables (default: the connection's, ``default``); several
    embedded stores of one process share one chDB directory by taking a database each.
    """

    kind = "clickhouse"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        database: str | None = None,
        secure: bool = False,
        hash_algorithm: str = DEFAULT_ALGORITHM,
        graph: FeatureGraph | None = None,
        read_only: bool = False,
        fallbacks: Sequence[MetadataStore] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(
            hash_algorithm=hash_algorithm, graph=graph, read_only=read_only, fallbacks=fallbacks, name=name
        )
        if (path is None) == (host is None):
            from strata.errors import DefinitionError

            raise DefinitionError(
                "a ClickHouse store needs either `path` (embedded chDB) or `host` (a server), not both",
                "give path= for a local directory, or host= (with port, username, password) for a server",
            )
        self.path = None if path is None else str(path)
        self.server = {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "database": database,
            "secure": secure,
        }
        self.database = database
        self._engine: Engine | None = None
        self._tables: dict[str, dict[str, str]] = {}
        """Columns (name -> ClickHouse type) of feature tables known to exist on this connection."""

    def describe(self) -> str:
        if self.name:
            return self.name
        if self.path is not None:
            return f"clickhouse store at {self.path}"
        from strata.stores.clickhouse.engine import server_port

        return f"clickhouse store at {self.server['host']}:{server_port(self.server)}"

    def _same_place(self, other: MetadataStore) -> bool:
        if not isinstance(other, ClickHouseStore):
            return False
        if self.path is not None:
            same = other.path is not None and os.path.realpath(self.path) == os.path.realpath(other.path)
            return same and self.server["database"] == other.server["database"]
        keys = ("host", "port", "database")
        return other.path is None and all(self.server[k] == other.server[k] for k in keys)

    def to_native(self) -> Engine:
        """The connection (``query``, ``command``, ``insert``) for users who want raw SQL."""
        self._require_open()
        assert self._engine is not None
        return self._engine

    # -- plumbing ------------------------------------------------------------------------

    def _t(self, table: str) -> str:
        """A table of the store, quoted, in its database when it has one (stores of one chDB session differ so)."""
        return (ident(self.database) + "." if self.database else "") + ident(table)

    def _scratch(self, what: str, definition: str) -> str:
        """A new temporary table of the session (``definition``: its columns and engine); dropped by its user.

        It is in no database and dies with the session, so a process killed while it exists leaves
        nothing behind and a read-only store creates nothing anywhere. The session is held until it
        is dropped (:meth:`_drop`): chDB opens no other directory meanwhile.
        """
        name = ident(f"strata${what}_{uuid.uuid4().hex}")
        self._db.hold()
        try:
            self._db.command(f"CREATE TEMPORARY TABLE {name} {definition}")
        except BaseException:
            self._db.release()
            raise
        return name

    @property
    def _database_sql(self) -> str:
        return literal(self.database) if self.database else "currentDatabase()"

    @property
    def _db(self) -> Engine:
        assert self._engine is not None
        return self._engine

    def _rows(self, query: str) -> list[tuple[Any, ...]]:
        table = self._db.query(query)
        columns = [c.to_pylist() for c in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def _frame(self, query: str, schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
        """The rows of ``query`` as Polars, cast to ``schema`` (times without a zone lose chDB's UTC)."""
        import polars as pl

        frame = pl.from_arrow(self._db.query(query))
        assert isinstance(frame, pl.DataFrame)
        if schema is None:
            return frame
        casts = []
        for name, dtype in schema.items():
            have = frame.schema[name]
            if isinstance(dtype, pl.Datetime) and have.is_integer():  # microseconds since 1970, in UTC
                instant = pl.col(name).cast(pl.Datetime("us", "UTC" if dtype.time_zone else None))
                casts.append(instant.dt.convert_time_zone(dtype.time_zone) if dtype.time_zone else instant)
            elif isinstance(dtype, pl.Datetime) and isinstance(have, pl.Datetime):
                if dtype.time_zone is None and have.time_zone is not None:
                    casts.append(pl.col(name).dt.replace_time_zone(None).dt.cast_time_unit("us"))
                elif dtype.time_zone is not None:
                    zoned = pl.col(name) if have.time_zone else pl.col(name).dt.replace_time_zone("UTC")
                    casts.append(zoned.dt.convert_time_zone(dtype.time_zone).dt.cast_time_unit("us"))
            elif have != dtype:
                casts.append(pl.col(name).cast(dtype))
        return frame.with_columns(casts) if casts else frame

    def _batch(self, frame: pl.DataFrame) -> str:
        """A table of this connection holding ``frame``'s rows (dropped by the caller)."""
        import polars as pl

        columns = ", ".join(f"{ident(c)} {column_definition(t)}" for c, t in frame.schema.items())
        name = self._scratch("batch", f"({columns or 'strata$none Nullable(Int8)'}) ENGINE = Memory")
        try:
            if len(frame) and frame.columns:
                kept = _to_clickhouse(frame)
                self._db.insert(name, kept.to_arrow(compat_level=pl.CompatLevel.oldest()))
        except BaseException:  # dropped (and the session let go) here: the caller never had it
            self._drop(name)
            raise
        return name

    @contextlib.contextmanager
    def _batches(self, *frames: pl.DataFrame) -> Iterator[list[str]]:
        """Tables of :meth:`_batch` holding ``frames``, dropped on leaving, also those made before one that failed."""
        made: list[str] = []
        try:
            for frame in frames:
                made.append(self._batch(frame))  # noqa: PERF401 - those made before a failure are dropped
            yield made
        finally:
            self._drop(*made)

    def _drop(self, *tables: str) -> None:
        """Drop temporary tables of :meth:`_scratch`; one that cannot be dies with the session, unseen."""
        for table in tables:
            try:
                self._db.command(f"DROP TEMPORARY TABLE IF EXISTS {table}")
            except RuntimeFailure:
                pass
            finally:
                self._db.release()

    def _delete_rows(self, plan: FeaturePlan, columns: Sequence[str], where: str) -> None:
        """Delete the rows of the feature ``where`` picks, which may read temporary tables.

        A delete's condition is evaluated outside the session, so the rows are first named in
        :data:`DOOMED` by ClickHouse's text of their ``columns`` (those ``where`` compares, with
        ``strata_seq``), read from the rows themselves, and deleted by that name; the delete is done
        when its statement returns (:data:`SYNC_DELETE`, whatever the server's defaults), so those
        names can go. A delete that fails takes its own mutation out of the queue, so a retry can run
        (:meth:`_kill_failed`).
        """
        op = uuid.uuid4().hex
        key = f"toString(tuple({ids_list([*dict.fromkeys([*columns, SEQ])])}))"
        doomed, table = self._t(DOOMED), self._t(plan.table)
        self._db.command(f"INSERT INTO {doomed} SELECT {literal(op)}, {key} FROM {table} WHERE {where}")
        try:
            self._db.command(
                f"DELETE FROM {table} WHERE {key} IN (SELECT key FROM {doomed} WHERE op = {literal(op)}) {SYNC_DELETE}"
            )
        except RuntimeFailure:  # a failed mutation stays queued, and every later one on the table fails behind it
            self._kill_failed(plan.table, op)
            raise
        finally:
            self._db.command(f"ALTER TABLE {doomed} DELETE WHERE op = {literal(op)} {SYNC_DELETE}")

    def _kill_failed(self, table: str, op: str) -> None:
        """Take out of ``table``'s queue the failed mutation of the delete ``op``, and failed ones not of strata.

        Another writer's delete (its command reads :data:`DOOMED`) is left to that writer: a failure
        of it may pass, and its writer waits for it.
        """
        self._db.command(
            f"KILL MUTATION WHERE database = {self._database_sql} AND table = {literal(table)} "
            f"AND NOT is_done AND latest_fail_reason != '' "
            f"AND (position(command, {literal(op)}) > 0 OR position(command, {literal(DOOMED)}) = 0) SYNC"
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _open(self) -> None:
        from strata.stores.clickhouse.engine import ChdbEngine, DirectoryBusyError, ServerEngine

        self._tables = {}
        if self.path is not None:
            self._engine = ChdbEngine(self.path, self.describe(), read_only=self.read_only)
        else:
            self._engine = ServerEngine(self.server, self.describe())
        try:
            self._bookkeeping()
        except DirectoryBusyError:
            self._close()
            raise
        except RuntimeFailure as exc:
            self._close()
            raise RuntimeFailure(
                exc.reason, "check the connection settings and that the user may create tables; nothing was written"
            ) from exc

    def _bookkeeping(self) -> None:
        """The meta, sync and commit tables (append-only; the newest entry of a name wins)."""
        if self.read_only:
            self._db.query("SELECT 1")
            return
        if self.database:
            self._db.command(f"CREATE DATABASE IF NOT EXISTS {ident(self.database)}")
        for table, columns, order in (
            (META, "name String, value String, at UInt64", "name"),
            (SYNC, "feature String, state Nullable(String), at UInt64", "feature"),
            (COMMITS, '"table" String, seq Int64', '"table", seq'),
            (CLAIMS, "\"table\" String, seq Int64, token String, until DateTime64(3, 'UTC')", '"table", seq'),
        ):
            self._db.command(
                f"CREATE TABLE IF NOT EXISTS {self._t(table)} ({columns}) ENGINE = MergeTree ORDER BY ({order})"
            )
        self._db.command(f"CREATE TABLE IF NOT EXISTS {self._t(DOOMED)} (op String, key String) ENGINE = Memory")

    def _close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._tables = {}

    def _exists(self, table: str) -> bool:
        found = self._rows(
            f"SELECT count() FROM system.tables WHERE database = {self._database_sql} AND name = {literal(table)}"
        )
        return bool(found[0][0])

    def _get_meta(self, name: str) -> str | None:
        return self._meta([name]).get(name)

    def _meta(self, names: Sequence[str]) -> dict[str, str]:
        if not names or not self._exists(META):
            return {}
        wanted = ", ".join(literal(n) for n in names)
        rows = self._rows(f"SELECT name, argMax(value, at) FROM {self._t(META)} WHERE name IN ({wanted}) GROUP BY name")
        return {str(n): str(v) for n, v in rows}

    def _set_meta(self, name: str, value: str) -> None:
        self._db.command(f"INSERT INTO {self._t(META)} VALUES ({literal(name)}, {literal(value)}, {_tick()})")

    @contextlib.contextmanager
    def _claimed(self, table: str) -> Iterator[Claim]:
        """A number of :meth:`_claim` for the write inside, let go (:meth:`_release`) if it fails.

        Let go also once committed: a committed number is never open, so its release changes nothing.
        """
        claim = self._claim(table)
        try:
            yield claim
        except BaseException:
            self._release(claim.token)
            raise

    def _claim(self, table: str) -> Claim:
        """A new sequence number for a write of ``table``, no other writer's and above every committed one.

        The server gives it (``generateSnowflakeID()``: its clock in milliseconds and a counter, so no
        two of one server are equal and later ones are higher; at least one above every number
        claimed or taken before, so above the small numbers of stores written before claims). The
        claim row is the number's only record; the writer then checks that no other claim holds the
        same number (two servers can give one) and that nothing above it is committed already, else
        lets it go and takes another. So a reader that read the committed numbers, up to ``n``, and
        then the open claims knows every number that can still commit at or below ``n``
        (``_in_flight``).
        """
        claims = self._t(CLAIMS)
        floor = (
            f"greatest((SELECT max(seq) FROM {claims}), "
            f"(SELECT max(toInt64OrZero(value)) FROM {self._t(META)} WHERE name = 'seq')) + 1"
        )
        for _ in range(CLAIM_TRIES):
            token = uuid.uuid4().hex
            try:  # the claim row may be in even when the statement failed: its token is let go then
                self._db.command(
                    f"INSERT INTO {claims} ({ident('table')}, seq, token, until) SELECT {literal(table)}, "
                    f"greatest(toInt64(generateSnowflakeID()), {floor}), {literal(token)}, now64(3) + {CLAIM_BOUND}"
                )
                mine = f"(SELECT any(seq) FROM {claims} WHERE token = {literal(token)})"
                seq, holders, top = self._rows(
                    f"SELECT {mine}, (SELECT uniqExact(token) FROM {claims} WHERE seq = {mine}), "
                    f"(SELECT max(seq) FROM {self._t(COMMITS)})"
                )[0]
            except BaseException:
                self._release(token)
                raise
            claim = Claim(table, int(seq), token)
            if int(holders) == 1 and claim.seq > int(top or 0):
                return claim
            self._release(claim.token)
        from strata.errors import RuntimeFailure

        raise RuntimeFailure(
            f"{self.describe()}: no sequence number could be taken in {CLAIM_TRIES} tries (other writers took each)",
            "retry the command; nothing was written",
        )

    def _release(self, token: str) -> None:
        """Let go of the number claimed under ``token``, never committed (a second row, dead since 1970); best effort.

        The row copies the claim row of the token (none if its insert never went in), so a claim
        whose number its writer never read is let go as well. A writer that cannot let go (killed,
        or its connection gone) leaves its claim open until its bound.
        """
        claims, table = self._t(CLAIMS), ident("table")
        with contextlib.suppress(Exception):
            self._db.command(
                f"INSERT INTO {claims} ({table}, seq, token, until) SELECT {table}, seq, token, "
                f"toDateTime64(0, 3, 'UTC') FROM {claims} WHERE token = {literal(token)} LIMIT 1"
            )

    def _commit(self, claim: Claim, since: Mapping[str, int | None] | None = None) -> bool:
        """Make the rows under ``claim``'s number count: one row appended, all or nothing, within the claim's bound.

        The row goes in only while the server's clock is before the claim's ``until`` (checked in the
        insert itself): a writer slower than that fails here, as readers may have taken it for dead.

        ``since`` (a waiting resolve's numbers): whether, once this number counts, nothing else was
        committed to those tables past them and no number of theirs is open. Asked after the commit,
        so a writer that claims later sees this number committed and takes a higher one: whatever
        this misses is above every number a record settled now keeps. Without ``since``: True.
        """
        commits, table = self._t(COMMITS), ident("table")
        until = f"(SELECT min(until) FROM {self._t(CLAIMS)} WHERE token = {literal(claim.token)})"
        self._db.command(
            f"INSERT INTO {commits} ({table}, seq) SELECT {literal(claim.table)}, {claim.seq} WHERE {until} > now64(3)"
        )
        own = f"({table} = {literal(claim.table)} AND seq = {claim.seq})"
        checks = [f"(SELECT count() FROM {commits} WHERE {own})"]
        if since is not None:
            later = " OR ".join(
                f"({table} = {literal(t)}" + ("" if n is None else f" AND seq > {int(n)}") + ")"
                for t, n in since.items()
            )
            checks.append(f"(SELECT count() FROM {commits} WHERE ({later or 'false'}) AND NOT {own})")
            checks.append(f"(SELECT count() FROM ({self._open_claims(list(since))}))")
        landed, *others = (int(n) for n in self._rows(f"SELECT {', '.join(checks)}")[0])
        if not landed:
            from strata.errors import RuntimeFailure

            raise RuntimeFailure(
                f"{self.describe()}: the write took longer than its number may stay open ({CLAIM_BOUND.lower()})",
                "retry it (a smaller batch if it is that large); nothing was written",
            )
        return not any(others)

    def _in_flight(self, tables: Sequence[str]) -> dict[str, list[int]]:
        """The open numbers of ``tables`` (:meth:`_open_claims`), by table."""
        if not tables or (self.read_only and not self._exists(CLAIMS)):  # a writable store made it on opening
            return {}
        found: dict[str, list[int]] = {}
        for name, seq in self._rows(f"{self._open_claims(tables)} ORDER BY seq"):
            found.setdefault(str(name), []).append(int(seq))
        return found

    def _open_claims(self, tables: Sequence[str]) -> str:
        """A query of the open numbers of ``tables``: claimed, neither committed nor let go, nor past bound and grace.

        Read after the tables' committed numbers, it holds every number that can still commit at or
        below them (see ``_claim``). A claim past its ``until`` can no longer commit (``_commit``);
        one past ``until`` plus :data:`CLAIM_GRACE` is dead for readers too (the grace covers a commit
        row checked in time and seen a little later).
        """
        wanted, table = ", ".join(literal(t) for t in tables), ident("table")
        return (
            f"SELECT {table}, seq FROM {self._t(CLAIMS)} WHERE {table} IN ({wanted}) "
            f"AND ({table}, seq) NOT IN (SELECT {table}, seq FROM {self._t(COMMITS)} WHERE {table} IN ({wanted})) "
            f"GROUP BY {table}, seq, token HAVING min(until) + {CLAIM_GRACE} > now64(3)"
        )

    def _sync_state(self, plan: FeaturePlan) -> dict[str, Any]:
        """The tables' committed numbers, then the numbers still open (``open``: table -> numbers).

        A sync record keeps them: a number open then may commit later, below a number the record
        is past; ``_get_sync`` looks at them again.
        """
        state = super()._sync_state(plan)
        in_flight = self._in_flight(list(state["tables"]))
        return {**state, "open": in_flight} if in_flight else state

    def _has_table(self, table: str) -> bool:
        if table in self._tables:
            return True
        if self._exists(table):
            self._tables[table] = self._columns(table)
            return True
        return False

    def _columns(self, table: str) -> dict[str, str]:
        rows = self._rows(
            f"SELECT name, type, comment FROM system.columns WHERE database = {self._database_sql} "
            f"AND table = {literal(table)} ORDER BY position"
        )
        return {str(n): declared_type(str(t), str(c)) for n, t, c in rows if n not in (KIND, WHOLE)}

    def _schema(self, table: str) -> dict[str, pl.DataType]:
        if table not in self._tables:
            self._tables[table] = self._columns(table)
        return {c: polars_type(t) for c, t in self._tables[table].items()}

    # -- what is latest ------------------------------------------------------------------

    def _committed(self, table: str) -> str:
        return f"{ident(SEQ)} IN (SELECT seq FROM {self._t(COMMITS)} WHERE {ident('table')} = {literal(table)})"

    def _latest(self, plan: FeaturePlan, narrow: str = "") -> str:
        """A subquery of the feature's latest rows (tombstones included); ``narrow``: a condition on the ids.

        A row is latest when no committed row of its ids has a higher number, and (for an expansion)
        no committed write of its parent came later.
        """
        table = plan.table
        helpers = [ident("strata$top")]
        ranked = f"if({ident(KIND)} != {_HISTORY}, {ident(SEQ)}, -1)"
        windows = f"max({ranked}) OVER (PARTITION BY {ids_list(plan.id_columns)}) AS {ident('strata$top')}"
        condition = f"{ident(SEQ)} = {ident('strata$top')}"
        if plan.child_ids:
            whole = f"if({ident(WHOLE)} AND {ident(KIND)} != {_HISTORY}, {ident(SEQ)}, -1)"
            windows += f", max({whole}) OVER (PARTITION BY {ids_list(plan.resolve_ids)}) AS {ident('strata$parent')}"
            condition += f" AND {ident(SEQ)} >= {ident('strata$parent')}"
            helpers.append(ident("strata$parent"))
        where = self._committed(table) + (f" AND {narrow}" if narrow else "")
        ranked_rows = f"SELECT *, {windows} FROM {self._t(table)} WHERE {where}"
        picked = f"* EXCEPT ({', '.join(helpers)})"  # every column, also one another connection just added
        return f"(SELECT {picked} FROM ({ranked_rows}) WHERE {condition} AND {ident(KIND)} = {_ROW})"

    def _matching(self, batch: str, columns: Sequence[str], alias: str = "") -> str:
        """SQL true for rows whose ``columns`` equal a row of ``batch`` (nulls equal, by ``transform_null_in``)."""
        keys = ids_list(columns, alias or None)
        return f"({keys}) IN (SELECT {ids_list(columns)} FROM {batch})"

    # -- writing -------------------------------------------------------------------------

    def _ensure_table(self, plan: FeaturePlan, wanted: dict[str, str]) -> bool:
        """Create the feature's table, or add the columns it lacks (``wanted``: definitions); whether it was created."""
        table = plan.table
        created = not self._has_table(table)
        if created:
            columns = [f"{ident(n)} {t}" for n, t in wanted.items() if n != SEQ]
            columns += [f"{ident(SEQ)} Int64", f"{ident(KIND)} Int8", f"{ident(WHOLE)} Bool"]
            self._db.command(
                f"CREATE TABLE IF NOT EXISTS {self._t(table)} ({', '.join(columns)}) "
                f"ENGINE = MergeTree ORDER BY {ident(SEQ)}"
            )
        else:
            existing = self._tables[table]
            for name, kind in wanted.items():
                if name not in existing:
                    self._db.command(f"ALTER TABLE {self._t(table)} ADD COLUMN IF NOT EXISTS {ident(name)} {kind}")
        self._tables[table] = self._columns(table)
        return created

    def _fitted(self, plan: FeaturePlan, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` cast to the types its columns are stored with (``checks.fit_stored``)."""
        return (
            fit_stored(self.describe(), plan.key, frame, self._schema(plan.table))
            if self._has_table(plan.table)
            else frame
        )

    def _append(self, plan: FeaturePlan, select: str, names: Sequence[str]) -> None:
        self._db.command(f"INSERT INTO {self._t(plan.table)} ({ids_list(names)}) {select}")

    def _latest_of(self, plan: FeaturePlan, batch: str, columns: Sequence[str]) -> str:
        """The latest rows matching a row of ``batch`` on ``columns``: only their rows are ranked.

        The match goes inside the ranking when it keeps or drops whole groups of rows that compete
        (same ids; for an expansion, same parent), else after it (a child of an expansion).
        """
        match = self._matching(batch, columns)
        if set(columns) <= set(plan.resolve_ids):
            return self._latest(plan, match)
        parents = self._matching(batch, plan.resolve_ids) if set(plan.resolve_ids) <= set(columns) else ""
        return f"(SELECT * FROM {self._latest(plan, parents)} WHERE {match})"

    def _copies(self, plan: FeaturePlan, where: str, seq: int, *, kind: int | str, deleted: str, of: str = "") -> None:
        """Append a copy of the latest rows ``where`` picks, under ``seq``, as tombstones (``kind`` 0) or markers."""
        names = [*self._schema(plan.table), KIND, WHOLE]
        replaced = {SEQ: str(int(seq)), WRITTEN_AT: _now_sql(), DELETED: deleted, KIND: str(kind), WHOLE: "false"}
        picked = ", ".join(replaced.get(c, ident(c)) for c in names)
        self._append(plan, f"SELECT {picked} FROM {of or self._latest(plan)} WHERE {where}", names)

    def _write(
        self, plan: FeaturePlan, table: pa.Table, *, since: Mapping[str, int | None] | None = None, fresh: bool = False
    ) -> int | None:
        import polars as pl

        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        managed = {*plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED}
        frame = self._fitted(plan, frame.drop([c for c in frame.columns if c in managed]))
        wanted = {c: column_definition(t) for c, t in frame.schema.items()} | _system_types(plan)
        seen = self._max_seqs(list(since or ()))
        in_step = since is not None and seen == dict(since)
        with self._batches(frame) as (batch,), self._claimed(plan.table) as claim:
            seq = claim.seq
            created = self._ensure_table(plan, wanted)
            if plan.child_ids and not created and not (fresh and in_step):  # lost children leave tombstones
                kept = self._matching(batch, plan.id_columns)
                of = self._latest_of(plan, batch, plan.resolve_ids)
                self._copies(plan, f"NOT {kept} AND NOT {ident(DELETED)}", seq, kind=_ROW, deleted="true", of=of)
            consts = [*(literal(f.stored_code_version) for f in plan.fields), literal(plan.feature_version)]
            consts += [
                literal(plan.snapshot_version),
                str(int(seq)),
                _now_sql(),
                childless(plan, sql.CLICKHOUSE),
                str(_ROW),
            ]
            names = [*frame.columns, *plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED]
            names += [KIND, WHOLE]
            values = [*(ident(c) for c in frame.columns), *consts, "true" if plan.child_ids else "false"]
            self._append(plan, f"SELECT {', '.join(values)} FROM {batch}", names)
            settled = self._commit(claim, since if in_step else None)
        return seq if since is None or (in_step and settled) else None

    def _reconcile(self, plan: FeaturePlan, fields: tuple[str, ...], taken: frozenset[str], *, dry_run: bool) -> int:
        """The rows of ``sql.reconcile_select`` appended under a new number by one ``INSERT ... SELECT`` on the server.

        As for any write, the rows they replace stop being latest once the number commits (an
        expansion's rows replace their parent's whole); none is written, no number is taken.
        """
        self._tables[plan.table] = self._columns(plan.table)  # every column there is rides along
        columns = tuple(self._schema(plan.table))
        sources = {**self._sources(plan, None, {}), plan.table: self._latest(plan)}
        query = sql.reconcile_select(self._dialect(plan), self.hash_algorithm, plan, fields, taken, sources, columns)
        count = reconcile_checked(
            self, plan, (fields, taken), query, lambda q: int(self._rows(q)[0][0]), dry_run=dry_run
        )
        if count is not None:
            return count
        names = [c for c in columns if c not in (SEQ, WRITTEN_AT)]
        with self._claimed(plan.table) as claim:  # let go when nothing went in, or on a failure
            stamp = [str(int(claim.seq)), _now_sql(), str(_ROW), "true" if plan.child_ids else "false"]
            picked = ", ".join([*(ident(c) for c in names), *stamp])
            self._append(plan, f"SELECT {picked} FROM ({query[0]})", [*names, SEQ, WRITTEN_AT, KIND, WHOLE])
            written = int(
                self._rows(f"SELECT count() FROM {self._t(plan.table)} WHERE {ident(SEQ)} = {claim.seq}")[0][0]
            )
            if written:
                self._commit(claim)
            else:
                self._release(claim.token)
        return written

    def _put(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> int:
        frames = [self._fitted(plan, frame) for frame in polars_frames(latest, history)]
        system = _system_types(plan)
        wanted = {c: system.get(c, column_definition(t)) for f in frames for c, t in f.schema.items()}
        with self._batches(*frames) as batches, self._claimed(plan.table) as claim:
            seq = claim.seq
            self._ensure_table(plan, wanted)
            for frame, batch, kind in zip(frames, batches, (_ROW, _HISTORY), strict=True):
                kept = [c for c in frame.columns if c != SEQ]  # every row put takes this store's number
                picked = [*(ident(c) for c in kept), str(int(seq)), str(kind), "true"]
                self._append(plan, f"SELECT {', '.join(picked)} FROM {batch}", [*kept, SEQ, KIND, WHOLE])
            self._commit(claim)
            if len(frames[0]):  # rows put again replace their old copies, which do not become history
                again = [*plan.id_columns, WRITTEN_AT]  # once the new ones count
                self._delete_rows(plan, again, f"{self._matching(batches[0], again)} AND {ident(SEQ)} < {int(seq)}")
        return seq

    def _erase(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> None:
        frames = polars_frames(latest, history)
        with self._batches(*frames) as batches:
            if len(frames[0]):  # latest rows go: no sync record may outlive them (forgotten first, no transaction)
                self._clear_sync()
            for frame, batch in zip(frames, batches, strict=True):
                if len(frame):
                    self._delete_rows(plan, frame.columns, self._matching(batch, frame.columns))
            if len(frames[0]):  # the latest rows changed: a new number, as for a hard delete
                with self._claimed(plan.table) as claim:
                    self._commit(claim)

    def _delete(
        self, plan: FeaturePlan, ids: pa.Table, *, soft: bool, since: Mapping[str, int | None] | None = None
    ) -> tuple[int, int | None]:
        import polars as pl

        frame = pl.from_arrow(ids)
        assert isinstance(frame, pl.DataFrame)
        seen = self._max_seqs(list(since or ()))
        with self._batches(frame) as (batch,), self._claimed(plan.table) as claim:
            seq = claim.seq
            self._tables[plan.table] = self._columns(plan.table)  # the tombstones copy every column there is
            match = self._matching(batch, frame.columns)
            of = self._latest_of(plan, batch, frame.columns)
            live = f"SELECT count() FROM {of} WHERE NOT {ident(DELETED)}"
            count = int(self._rows(live)[0][0])
            if soft:
                gone = f"if({ident(DELETED)}, {_GONE}, {_ROW})"  # a tombstone's sample leaves the latest rows
                self._copies(plan, "true", seq, kind=gone, deleted="true", of=of)
            else:  # no sync record may outlive the rows: forgotten first, as nothing here is one transaction
                self._clear_sync()
                self._delete_rows(plan, frame.columns, match)
            in_step = since is not None and seen == dict(since)
            settled = self._commit(claim, since if in_step else None)
        return count, seq if since is None or (in_step and settled) else None

    # -- reading -------------------------------------------------------------------------

    def _read(self, plan: FeaturePlan, *, history: bool, include_deleted: bool) -> nw.LazyFrame[Any] | None:
        import narwhals as nw

        if not self._has_table(plan.table):
            return None
        self._tables[plan.table] = self._columns(plan.table)  # columns grow under other connections
        schema = self._schema(plan.table)
        columns = ids_list(list(schema))
        if history:
            query = (
                f"SELECT {columns} FROM {self._t(plan.table)} WHERE {self._committed(plan.table)} "
                f"AND {ident(KIND)} != {_GONE} ORDER BY {ident(SEQ)}"
            )
        else:
            where = "" if include_deleted else f" WHERE NOT {ident(DELETED)}"
            query = f"SELECT * FROM {self._latest(plan)}{where} ORDER BY {ident(SEQ)}"
        frame = _from_clickhouse(self._frame(query, schema), schema)
        return nw.from_native(frame.lazy())

    def _read_matching(self, plan: FeaturePlan, match: Mapping[str, Any], *, history: bool) -> pl.DataFrame | None:
        """The few rows asked, selected by the engine: the values go in as a one-row batch typed as stored."""
        import polars as pl

        if not self._has_table(plan.table):
            return None
        self._tables[plan.table] = self._columns(plan.table)  # columns grow under other connections
        schema = self._schema(plan.table)
        values = typed_match(match, schema)
        if values is None:
            return pl.DataFrame(schema=schema)  # no stored row can hold these values
        nulls = [c for c, v in match.items() if v is None and c in schema]
        values = values.with_columns(pl.lit(None, schema[c]).alias(c) for c in nulls)
        columns = values.columns
        with self._batches(values) as (batch,):
            if history:
                matching = f" AND {self._matching(batch, columns)}" if columns else ""
                query = (
                    f"SELECT {ids_list(list(schema))} FROM {self._t(plan.table)} WHERE {self._committed(plan.table)} "
                    f"AND {ident(KIND)} != {_GONE}{matching} ORDER BY {ident(SEQ)}"
                )
            else:
                latest = self._latest_of(plan, batch, columns) if columns else self._latest(plan)
                query = f"SELECT * FROM {latest} ORDER BY {ident(SEQ)}"
            return _from_clickhouse(self._frame(query, schema), schema)

    def _holds_rows(self, plan: FeaturePlan) -> bool:
        return self._has_table(plan.table) and bool(self._rows(f"SELECT 1 FROM {self._latest(plan)} LIMIT 1"))

    def _stored_schema(self, plan: FeaturePlan, columns: Sequence[str]) -> dict[str, Any] | None:
        stored = self._schema(plan.table) if self._has_table(plan.table) else {}
        if not stored or any(c not in stored for c in columns):
            return None
        return {c: stored[c] for c in columns}

    def _max_seq(self, table: str) -> int | None:
        return self._max_seqs([table])[table]

    def _max_seqs(self, tables: Sequence[str]) -> dict[str, int | None]:
        if not tables or not self._exists(COMMITS):
            return dict.fromkeys(tables)
        wanted = ", ".join(literal(t) for t in tables)
        rows = self._rows(
            f"SELECT {ident('table')}, max(seq) FROM {self._t(COMMITS)} WHERE {ident('table')} IN ({wanted}) "
            f"GROUP BY {ident('table')}"
        )
        found = {str(t): int(s) for t, s in rows}
        return {t: found.get(t) for t in tables}

    # -- increments ----------------------------------------------------------------------

    def _stand_in(self, plan: FeaturePlan, columns: Sequence[str]) -> str:
        """An empty table with the needed columns, for a feature never written (ids typed as ``plan`` has them)."""
        ids = self._id_schema(plan, [c for c in columns if c in plan.id_columns or c in plan.resolve_ids])
        typed = [
            f"CAST(NULL AS Nullable({column_type(ids[c]) if c in ids else 'String'})) AS {ident(c)}" for c in columns
        ]
        typed += [f"CAST(false AS Bool) AS {ident(DELETED)}", f"CAST(0 AS Int64) AS {ident(SEQ)}"]
        return f"(SELECT {', '.join(typed)} WHERE 0)"

    def _source(self, plan: FeaturePlan, columns: list[str], candidates: str | None) -> str:
        if not self._has_table(plan.table):
            return self._stand_in(plan, columns)
        narrow = ""
        if candidates is not None:
            narrow = self._matching(candidates, plan.resolve_ids) if plan.resolve_ids else ""
        return self._padded(plan.table, self._latest(plan, narrow), columns)

    def _padded(self, table: str, source: str, columns: list[str]) -> str:
        """``source`` (rows of the stored ``table``) with the ones of ``columns`` it lacks as nulls (``sql.padded``).

        The columns are known since the table was seen; a column not among them is asked again
        (this or another connection may have added it since).
        """
        if not set(columns) <= self._tables.get(table, {}).keys():
            self._tables[table] = self._columns(table)
        stored = self._tables[table]
        return sql.padded(source, [c for c in columns if c not in stored], sql.CLICKHOUSE)

    def _sources(self, plan: FeaturePlan, candidates: str | None, since: dict[str, int]) -> dict[str, str]:
        """Each table's latest rows (of the candidates, when narrowing), or a stand-in for a table never written."""
        own = [*plan.id_columns, *plan.input_columns, *plan.cv_columns, *plan.dv_columns]
        sources = {plan.table: self._source(plan, own, candidates)}
        for up in plan.upstreams:
            up_plan = self.plan(up.key)
            columns = [*up.id_columns, *(f"strata_dv__{f}" for f in up.fields)]
            if not self._has_table(up.table):
                sources[up.table] = self._stand_in(
                    plan if set(up.id_columns) <= set(plan.id_columns) else up_plan, columns
                )
                continue
            if candidates is None:
                source = self._latest(up_plan)
            elif self._written_since(plan, up_plan, candidates, since):
                recent = f"{ident(SEQ)} > {int(since[up.table])} AND {self._matching(candidates, plan.resolve_ids)}"
                source = self._latest(up_plan, recent)
            elif not up_plan.child_ids or set(plan.resolve_ids) <= set(up_plan.resolve_ids):
                source = self._latest(up_plan, self._matching(candidates, plan.resolve_ids))
            else:  # narrowed below an expansion's parents: after its latest rows are picked
                source = f"(SELECT * FROM {self._latest(up_plan)} WHERE {self._matching(candidates, plan.resolve_ids)})"
            sources[up.table] = self._padded(up.table, source, columns)
        return sources

    def _written_since(self, plan: FeaturePlan, up_plan: FeaturePlan, candidates: str, since: dict[str, int]) -> bool:
        """Whether every candidate has a row of the upstream written since its number (one row per resolve id).

        Then each candidate's latest row is among those rows, which the table's order by ``strata_seq``
        reads as one range, so its other rows are never searched for by id (a build leaves upstreams so).
        """
        if up_plan.table not in since or up_plan.child_ids or set(up_plan.id_columns) != set(plan.resolve_ids):
            return False
        keys = ids_list(plan.resolve_ids)
        recent = f"{self._committed(up_plan.table)} AND {ident(SEQ)} > {int(since[up_plan.table])}"
        missing = self._rows(
            f"SELECT count() FROM {candidates} WHERE ({keys}) NOT IN "
            f"(SELECT {keys} FROM {self._t(up_plan.table)} WHERE {recent})"
        )
        return int(missing[0][0]) == 0

    def _candidates(self, plan: FeaturePlan, since: dict[str, int], only: dict[str, Any] | None) -> str:
        """A table of the resolve ids that may have changed since the last sync."""
        import polars as pl

        keys = ids_list(plan.resolve_ids)
        if only is not None:
            types = self._id_schema(plan, plan.resolve_ids)
            return self._batch(pl.DataFrame({k: [only[k]] for k in plan.resolve_ids}, schema=types))
        parts = []
        for table in dict.fromkeys([plan.table, *(u.table for u in plan.upstreams)]):
            if self._has_table(table):
                recent = f" AND {ident(SEQ)} > {int(since[table])}" if table in since else ""
                parts.append(f"SELECT {keys} FROM {self._t(table)} WHERE {self._committed(table)}{recent}")
        if not parts:
            types = self._id_schema(plan, plan.resolve_ids)
            return self._batch(pl.DataFrame(schema=types))
        return self._scratch("cand", f"ENGINE = Memory AS SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)})")

    def _resolve(
        self, plan: FeaturePlan, since: dict[str, int] | None, *, lazy: bool, only: dict[str, Any] | None = None
    ) -> Increment:
        candidates = None
        if since is not None or only is not None:
            candidates = self._candidates(plan, since or {}, only)
        try:
            sources = self._sources(plan, candidates, since or {})
            expected = sql.expected_select(self._dialect(plan), self.hash_algorithm, plan, None, sources)
            current = sql.current_select(plan, None, sources[plan.table], sql.CLICKHOUSE)
            return self._increment(plan, expected, current, lazy=lazy)
        finally:
            if candidates is not None:
                self._drop(candidates)

    def _dialect(self, plan: FeaturePlan) -> sql.Dialect:
        """``sql.CLICKHOUSE``, writing the floats and datetimes of upstream ids as text the way DuckDB does."""
        return with_text_casts(sql.CLICKHOUSE, plan, lambda t: self._tables[t] if self._has_table(t) else {}, text_cast)

    def _resolve_root(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        import polars as pl

        frame = pl.from_arrow(samples.select([*plan.id_columns, *plan.dv_columns]))
        assert isinstance(frame, pl.DataFrame)
        with self._batches(frame) as (batch,):
            own = [*plan.id_columns, *plan.cv_columns, *plan.dv_columns]
            current = sql.current_select(plan, None, self._source(plan, own, None), sql.CLICKHOUSE)
            ids = {c: frame.schema[c] for c in plan.id_columns}
            return self._increment(plan, f"SELECT * FROM {batch}", current, lazy=lazy, ids=ids)

    def _increment(
        self, plan: FeaturePlan, expected: str, current: str, *, lazy: bool, ids: dict[str, Any] | None = None
    ) -> Increment:
        """The three parts from one full join (``sql.increment_query``), cut in Polars."""
        query = sql.increment_query(sql.CLICKHOUSE, self.hash_algorithm, plan, expected, current)
        schema = self._increment_schema(plan, ids)
        return split_increment(plan, _from_clickhouse(self._frame(query, schema), schema), lazy=lazy)

    # -- sync records --------------------------------------------------------------------

    def _get_sync(self, key: FeatureKey) -> dict[str, Any] | None:
        """The record, each table's number lowered below the numbers open then and committed since.

        The resolve "since last sync" then reads their rows (``strata_seq`` above the lowered number).
        """
        if not self._exists(SYNC):
            return None
        rows = self._rows(f"SELECT argMax(state, at) FROM {self._t(SYNC)} WHERE feature = {literal(str(key))}")
        state: dict[str, Any] | None = json.loads(rows[0][0]) if rows and rows[0][0] else None
        if state is None or not state.get("open"):
            return state
        pairs = ", ".join(f"({literal(t)}, {int(n)})" for t, numbers in state["open"].items() for n in numbers)
        table = ident("table")
        tables = dict(state["tables"])
        for name, seq in self._rows(f"SELECT {table}, seq FROM {self._t(COMMITS)} WHERE ({table}, seq) IN ({pairs})"):
            if tables.get(name) is not None:
                tables[name] = min(tables[name], int(seq) - 1)
        return {**state, "tables": tables}

    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        self._db.command(
            f"INSERT INTO {self._t(SYNC)} VALUES ({literal(str(key))}, {literal(json.dumps(state))}, {_tick()})"
        )

    def _clear_sync(self) -> None:
        self._db.command(f"TRUNCATE TABLE IF EXISTS {self._t(SYNC)}")

    # -- snapshots -----------------------------------------------------------------------

    def _add_snapshot(self, version: str, pushed_at: str, record: str) -> None:
        self._add_record(SNAPSHOTS, (version, pushed_at, record))

    def _get_snapshots(self, version: str | None) -> list[str]:
        return self._get_records(SNAPSHOTS, version)

    def _add_migration_record(self, migration: str, recorded_at: str, record: str) -> None:
        self._add_record(MIGRATIONS, (migration, recorded_at, record))

    def _get_migration_records(self) -> list[str]:
        return self._get_records(MIGRATIONS, None)

    def _add_record(self, table: str, values: tuple[str, str, str]) -> None:
        """Append a row to a system table of records (``sqltables.SYSTEM_RECORDS``), made by the first."""
        key, at = SYSTEM_RECORDS[table]
        self._db.command(
            f"CREATE TABLE IF NOT EXISTS {self._t(table)} ({key} String, {at} String, record String) "
            f"ENGINE = MergeTree ORDER BY ({key}, {at})"
        )
        self._db.command(f"INSERT INTO {self._t(table)} VALUES ({', '.join(literal(v) for v in values)})")

    def _get_records(self, table: str, key: str | None) -> list[str]:
        if not self._exists(table):
            return []
        where = "" if key is None else f" WHERE {SYSTEM_RECORDS[table][0]} = {literal(key)}"
        return [str(row[0]) for row in self._rows(f"SELECT record FROM {self._t(table)}{where}")]


_last_tick = 0


def _tick() -> int:
    """A number above every earlier one of this process (nanoseconds): the newest meta or sync entry wins."""
    global _last_tick  # noqa: PLW0603 - one clock for the process
    _last_tick = max(time.time_ns(), _last_tick + 1)
    return _last_tick


def _now_sql() -> str:
    """Now, in microseconds since 1970 (UTC), as datetimes are kept."""
    now = dt.datetime.now(dt.UTC)
    return str((now - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1))


def _system_types(plan: FeaturePlan) -> dict[str, str]:
    """The definitions of the columns the store fills in (the time of a write kept as every datetime is)."""
    import polars as pl

    types = dict.fromkeys((*plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION), "Nullable(String)")
    return types | {SEQ: "Int64", WRITTEN_AT: column_definition(pl.Datetime("us")), DELETED: "Nullable(Bool)"}


def _to_clickhouse(frame: pl.DataFrame) -> pl.DataFrame:
    """Values ClickHouse keeps as they are; dates and times as integers, nested and other types as JSON text."""
    import polars as pl

    converted: list[pl.Expr | pl.Series] = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Null:
            converted.append(pl.col(name).cast(pl.String))
        elif isinstance(dtype, pl.Datetime):
            converted.append(pl.col(name).dt.cast_time_unit("us").to_physical())
        elif kept_as(dtype) is not None:
            converted.append(pl.col(name).to_physical())
        elif isinstance(dtype, (pl.Enum, pl.Categorical)):
            converted.append(pl.col(name).cast(pl.String))
        elif column_type(dtype) == "String" and dtype != pl.String:
            text = [None if v is None else json.dumps(v, default=str) for v in frame[name].to_list()]
            converted.append(pl.Series(name, text, dtype=pl.String))
    return frame.with_columns(converted) if converted else frame


def _from_clickhouse(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns, in order."""
    return frame.select(list(schema))
