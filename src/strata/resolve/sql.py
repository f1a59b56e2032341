"""The SQL of increment resolution, for every SQL store.

A :class:`Dialect` says how one engine spells the few things that differ (a hash, a byte
length, a backslash in quoted text); the rest is portable SQL. Identifiers are always quoted with
:meth:`Dialect.ident` and constants with :meth:`Dialect.literal`, so no key, field or code version
reaches SQL unquoted.

Queries read the *latest* table of each feature (one live row per sample) and return only the
increment. ``candidates`` narrows every scan to the samples that may have changed since the
feature was last seen in sync (see ``stores/base.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.features.versions import HASH_HEX_DIGITS
from strata.resolve.plan import (
    CAUSE_CODE,
    CAUSE_DATA,
    DELETED,
    FEATURE_VERSION,
    MIXED,
    SEQ,
    SNAPSHOT_VERSION,
    WRITTEN_AT,
    FeaturePlan,
    FieldPlan,
    UpstreamPlan,
    input_column,
)

if TYPE_CHECKING:
    from collections.abc import Mapping


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted SQL string constant."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Dialect:
    """How one engine hashes and measures strings."""

    name: str
    hash_functions: dict[str, str]
    """Algorithm -> SQL template with ``{}`` for the argument, giving lowercase hex."""
    byte_length: str
    """SQL template giving the byte length of a string."""
    concat_function: str = "concat({})"
    """SQL template joining its comma-separated arguments into one string, a null as the empty string."""
    ordered_agg: str = "string_agg({}, '' ORDER BY {})"
    """SQL template concatenating a group's strings (``{}``) in an order (``{}``); ``presorted``: the strings alone."""
    presorted: bool = False
    """The engine has no ordered aggregate: a group's rows are read from a subquery sorted by the order instead."""
    full_join: bool = True
    """The engine runs a ``FULL JOIN`` of two subqueries by lookups; else it is spelled as two ``LEFT JOIN`` s
    (SQLite 3.40 materializes a full join's right side without an index: a nested loop)."""

    join_nonnull: str = "concat_ws(',', {})"
    """SQL template joining its comma-separated arguments with commas, skipping nulls (DuckDB's ``concat_ws``)."""

    text_casts: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    """(Table, column) -> SQL template turning the column into the text DuckDB's ``CAST(... AS VARCHAR)``
    gives, for the columns the engine keeps in another form (SQLite's 0/1 booleans, its doubles)."""
    backslash_escapes: bool = False
    """The engine reads a backslash in quoted names and strings as an escape (ClickHouse): it is doubled."""
    null_text: str = "CAST(NULL AS VARCHAR)"
    """A null of the type the stored versions have."""

    def ident(self, name: str) -> str:
        """A quoted identifier of this engine."""
        return ident(name.replace("\\", "\\\\") if self.backslash_escapes else name)

    def literal(self, value: str) -> str:
        """A quoted string constant of this engine."""
        return literal(value.replace("\\", "\\\\") if self.backslash_escapes else value)

    def hash(self, algorithm: str, expr: str) -> str:
        """Hex digest of ``expr`` cut to the kept digits."""
        full = self.hash_functions[algorithm].format(expr)
        return f"substr({full}, 1, {HASH_HEX_DIGITS})"

    def as_text(self, table: str, column: str) -> str:
        """Column ``column`` of ``table`` as text, as DuckDB (and Polars) write its value."""
        return self.text_casts.get((table, column), "CAST({} AS VARCHAR)").format(self.ident(column))

    def encoded(self, expr: str) -> str:
        """``<byte length>:<value>``, or ``-1:`` when null."""
        length = self.byte_length.format(expr)
        return f"(CASE WHEN {expr} IS NULL THEN '-1:' ELSE CAST({length} AS VARCHAR) || ':' || {expr} END)"

    def encoded_pieces(self, expr: str) -> list[str]:
        """:meth:`encoded` as arguments of :meth:`concat`: the byte length (``-1`` when null), ``:``, the value."""
        return [f"coalesce(CAST({self.byte_length.format(expr)} AS VARCHAR), '-1')", "':'", expr]

    def concat(self, pieces: list[str]) -> str:
        """One string of ``pieces`` (SQL expressions), built at once rather than by a chain of ``||``."""
        return self.concat_function.format(", ".join(pieces))


DUCKDB = Dialect("duckdb", {"md5": "md5({})", "sha256": "sha256({})"}, "strlen({})")
SQLITE = Dialect(
    "sqlite",
    {"md5": "strata_md5({})", "sha256": "strata_sha256({})"},
    "length(CAST({} AS BLOB))",
    concat_function="strata_concat({})",
    ordered_agg="group_concat({}, '')",
    presorted=True,
    full_join=False,
)
"""SQLite 3.40 has no hashes, no ``concat`` and no ordered ``group_concat``: the SQLite store registers
``strata_md5``, ``strata_sha256``, ``strata_concat``, ``concat_ws``, ``strata_text`` and
``strata_decimal_text`` (the canonical text of an id SQLite keeps in another form, ``resolve/text.py``)
on its connection (``stores/sqlite``)."""

CLICKHOUSE = Dialect(
    "clickhouse",
    {"md5": "lower(hex(MD5({})))", "sha256": "lower(hex(SHA256({})))"},
    "length({})",
    concat_function="arrayStringConcat([{}])",
    ordered_agg="arrayStringConcat(arraySort((r, o) -> o, groupArray({}), groupArray(tuple({}))))",
    join_nonnull="arrayStringConcat([{}], ',')",
    backslash_escapes=True,
    null_text="CAST(NULL AS Nullable(String))",
)
"""ClickHouse's ``concat`` and ``concatWithSeparator`` give null when an argument is; ``arrayStringConcat``
skips nulls, as DuckDB's ``concat`` and ``concat_ws`` do. The store's connection sets ``join_use_nulls``
(a full join's missing side is null, not its type's default) and ``cast_keep_nullable`` (a cast of null is
null, as everywhere else); its text casts write floats and datetimes as DuckDB does (``stores/clickhouse``)."""

POSTGRES = Dialect(
    "postgres",
    {"md5": "md5({})", "sha256": "encode(sha256(convert_to({}, 'UTF8')), 'hex')"},
    "octet_length({})",
)
"""PostgreSQL has DuckDB's ``md5``, ``concat``, ``concat_ws`` and ordered ``string_agg``; its floats are written
as DuckDB writes them by a function the PostgreSQL store creates (``stores/postgres``)."""


def ids_list(columns: tuple[str, ...], alias: str | None = None, dialect: Dialect = DUCKDB) -> str:
    """``"a", "b"`` (or ``x."a", x."b"``)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + dialect.ident(c) for c in columns)


def padded(source: str, missing: list[str], dialect: Dialect = DUCKDB) -> str:
    """``source`` with a null text column for each of ``missing``: the columns its table lacks.

    A feature's table has no version columns of a field added since it was written, nor input
    columns of an input its fields read since: they read as null, a missing provenance, so the
    field is stale in every stored sample (cause ``code`` or the input) until it is computed.
    """
    if not missing:
        return source
    nulls = ", ".join(f"{dialect.null_text} AS {dialect.ident(c)}" for c in missing)
    return f"(SELECT *, {nulls} FROM {source}) AS {dialect.ident('strata$padded')}"


def dv_expr(
    dialect: Dialect, algorithm: str, field: FieldPlan, alias: str, aliases: Mapping[str, str] | None = None
) -> str:
    """The new data version of ``field``, from the input columns of ``alias`` (or of ``aliases[column]``).

    The hash input is one concatenation with adjacent constants merged into one literal: a chain
    of ``||`` builds every intermediate string, which cost a fifth of the hashing of a million rows.
    """
    pieces: list[str] = []
    constant = ""
    for prefix, column in field.hash_parts():
        constant += prefix
        if column is not None:
            source = (aliases or {}).get(column, alias)
            pieces += [dialect.literal(constant), *dialect.encoded_pieces(f"{source}.{dialect.ident(column)}")]
            constant = ""
    if constant:
        pieces.append(dialect.literal(constant))
    return dialect.hash(algorithm, dialect.concat(pieces))


def candidate_filter(
    ids: tuple[str, ...], candidates: str | None, alias: str | None = None, dialect: Dialect = DUCKDB
) -> str:
    """``AND (ids) IN (SELECT ids FROM candidates)`` when narrowing, else nothing."""
    if candidates is None:
        return ""
    return f" AND ({ids_list(ids, alias, dialect)}) IN (SELECT {ids_list(ids, None, dialect)} FROM {candidates})"


def upstream_select(
    dialect: Dialect, algorithm: str, plan: FeaturePlan, up: UpstreamPlan, candidates: str | None, source: str
) -> str:
    """One upstream's live rows as input columns keyed by this feature's resolve ids."""
    cols = up.input_columns()
    live = f"NOT {dialect.ident(DELETED)}"
    if up.lineage.kind == "aggregation":
        keys = plan.resolve_ids
        rest = tuple(c for c in up.id_columns if c not in keys)
        order = ids_list(rest, None, dialect)
        aggs = []
        for field, column in cols.items():
            row = " || ".join(
                [
                    *(dialect.encoded(dialect.as_text(up.table, c)) for c in rest),
                    dialect.encoded(dialect.ident(f"strata_dv__{field}")),
                ]
            )
            aggregate = dialect.ordered_agg.format(row) if dialect.presorted else dialect.ordered_agg.format(row, order)
            aggs.append(f"{dialect.hash(algorithm, aggregate)} AS {dialect.ident(column)}")
        select = ", ".join([ids_list(keys, None, dialect), *aggs])
        where = live + candidate_filter(keys, candidates, None, dialect)
        if dialect.presorted:
            sorted_rows = (
                f"(SELECT * FROM {source} WHERE {where} ORDER BY {ids_list(keys, None, dialect)}, {order}) AS s"
            )
            return f"SELECT {select} FROM {sorted_rows} GROUP BY {ids_list(keys, None, dialect)}"
        return f"SELECT {select} FROM {source} WHERE {where} GROUP BY {ids_list(keys, None, dialect)}"
    keys = plan.resolve_ids
    select = ", ".join(
        [
            ids_list(keys, None, dialect),
            *(f"{dialect.ident('strata_dv__' + f)} AS {dialect.ident(c)}" for f, c in cols.items()),
        ]
    )
    return f"SELECT {select} FROM {source} WHERE {live}{candidate_filter(keys, candidates, None, dialect)}"


def expected_select(
    dialect: Dialect, algorithm: str, plan: FeaturePlan, candidates: str | None, sources: dict[str, str]
) -> str:
    """Every sample this feature should have, with the current data versions of its inputs."""
    keys = plan.resolve_ids
    required = [u for u in plan.upstreams if not u.optional]
    optional = [u for u in plan.upstreams if u.optional]
    subqueries = {
        u.key: f"({upstream_select(dialect, algorithm, plan, u, candidates, sources[u.table])})" for u in plan.upstreams
    }
    if required:
        base_up, *rest = required
        sql = f"SELECT * FROM {subqueries[base_up.key]} AS u0"
        joins = [(u, "JOIN") for u in rest] + [(u, "LEFT JOIN") for u in optional]
    else:
        union = " UNION ".join(f"SELECT {ids_list(keys, None, dialect)} FROM {subqueries[u.key]}" for u in optional)
        sql = f"SELECT * FROM ({union}) AS u0"
        joins = [(u, "LEFT JOIN") for u in optional]
    for index, (up, how) in enumerate(joins, start=1):
        sql += f" {how} {subqueries[up.key]} AS u{index} USING ({ids_list(keys, None, dialect)})"
    return sql


def current_select(plan: FeaturePlan, candidates: str | None, source: str, dialect: Dialect = DUCKDB) -> str:
    """This feature's live rows at resolve granularity.

    Children collapse onto their parent, with the "no children" rows (see
    ``FeaturePlan.child_ids``): a stored column keeps its value when every row of the parent
    agrees on it, else it becomes :data:`MIXED`, which matches nothing, so a parent is stale in
    a field as soon as any of its children is.
    """
    keys = plan.resolve_ids
    stored = [*plan.input_columns, *plan.cv_columns, *plan.dv_columns]
    by = ids_list(keys, None, dialect)
    if plan.child_ids:
        childless = " AND ".join(f"{dialect.ident(c)} IS NULL" for c in plan.child_ids)
        where = f"(NOT {dialect.ident(DELETED)} OR ({childless})){candidate_filter(keys, candidates, None, dialect)}"
        aggs = ", ".join(f"{_agreed(dialect.ident(c), dialect)} AS {dialect.ident(c)}" for c in stored)
        return f"SELECT {by}, {aggs} FROM {source} WHERE {where} GROUP BY {by}"
    where = f"NOT {dialect.ident(DELETED)}{candidate_filter(keys, candidates, None, dialect)}"
    return f"SELECT {by}, {', '.join(dialect.ident(c) for c in stored)} FROM {source} WHERE {where}"


def _agreed(column: str, dialect: Dialect) -> str:
    """The column's value when all rows of the group agree (nulls included), else :data:`MIXED`."""
    same = f"count(DISTINCT {column}) = 0 OR (count(DISTINCT {column}) = 1 AND count({column}) = count(*))"
    return f"CASE WHEN {same} THEN min({column}) ELSE {dialect.literal(MIXED)} END"


def code_stale(field: FieldPlan, dialect: Dialect = DUCKDB, current: str = "c") -> str:
    """The condition of ``current``'s stored code version of ``field`` being none of its current ones."""
    column = f"{current}.{dialect.ident(field.cv_column)}"
    versions = field.current_code_versions
    if len(versions) == 1:
        return f"{column} IS DISTINCT FROM {dialect.literal(versions[0])}"
    return f"({column} IS NULL OR {column} NOT IN ({', '.join(map(dialect.literal, versions))}))"


def stale_conditions(
    plan: FeaturePlan, field: FieldPlan, dialect: Dialect = DUCKDB, current: str = "c"
) -> list[tuple[str, str]]:
    """(condition, cause) pairs that make ``field`` stale, comparing ``current`` (stored) to ``e`` (expected)."""
    conditions = [(code_stale(field, dialect, current), CAUSE_CODE)]
    if plan.is_root:
        conditions.append(
            (
                f"{current}.{dialect.ident(field.dv_column)} IS DISTINCT FROM e.{dialect.ident(field.dv_column)}",
                CAUSE_DATA,
            )
        )
    else:
        conditions += [(differs(input_column(item), dialect, current), item.dotted) for item in field.inputs]
    return conditions


PART = "strata$part"
"""The column of :func:`increment_query` giving each row's part as its index in :data:`PARTS`."""
PARTS = ("added", "changed", "removed")
"""The parts of an increment, in the order of their codes in :data:`PART`."""


def part_code(name: str) -> int:
    """The value of :data:`PART` on the rows of part ``name`` (a small integer moves faster than a name)."""
    return PARTS.index(name)


IN_EXPECTED = "strata$expected"
IN_CURRENT = "strata$current"


def removed_id(column: str) -> str:
    """The column of :func:`increment_query` carrying id ``column`` as the stored row has it."""
    return f"strata$removed__{column}"


def increment_query(
    dialect: Dialect,
    algorithm: str,
    plan: FeaturePlan,
    expected: str,
    current: str,
) -> str:
    """The whole increment in one pass: a full outer join of ``expected`` and ``current``.

    Each row is tagged in :data:`PART` (:func:`part_code`). Added and changed rows carry the ids
    and input columns of ``expected``, their new data versions (hashed here, only for them) and
    the causes; removed rows carry their ids as ``current`` has them, in the :func:`removed_id` columns,
    so every part keeps the types it would have on its own. Rows in sync never leave the join.
    """
    keys = plan.resolve_ids
    fresh = f"c.{dialect.ident(IN_CURRENT)} IS NOT NULL AND e.{dialect.ident(IN_EXPECTED)} IS NOT NULL"
    if plan.is_root:
        new_dvs = [f"e.{dialect.ident(f.dv_column)}" for f in plan.fields]
    else:
        in_expected = f"e.{dialect.ident(IN_EXPECTED)}"
        new_dvs = [
            f"CASE WHEN {in_expected} THEN {dv_expr(dialect, algorithm, f, 'e')} END AS {dialect.ident(f.dv_column)}"
            for f in plan.fields
        ]
    causes: list[str] = []
    any_stale: list[str] = []
    for field in plan.fields:
        conditions = stale_conditions(plan, field, dialect)
        parts = ", ".join(f"CASE WHEN {cond} THEN {dialect.literal(cause)} END" for cond, cause in conditions)
        joined = dialect.join_nonnull.format(parts)
        causes.append(f"CASE WHEN {fresh} THEN NULLIF({joined}, '') END AS {dialect.ident(field.cause_column)}")
        any_stale.extend(cond for cond, _ in conditions)
    part = (
        f"CASE WHEN c.{dialect.ident(IN_CURRENT)} IS NULL THEN {part_code('added')} "
        f"WHEN e.{dialect.ident(IN_EXPECTED)} IS NULL THEN {part_code('removed')} "
        f"ELSE {part_code('changed')} END AS {dialect.ident(PART)}"
    )
    columns = ", ".join(
        [
            part,
            ids_list(keys, "e", dialect),
            *(f"c.{dialect.ident(k)} AS {dialect.ident(removed_id(k))}" for k in keys),
            *(f"e.{dialect.ident(c)}" for c in plan.input_columns),
            *new_dvs,
            *causes,
        ]
    )
    on = " AND ".join(f"e.{dialect.ident(k)} = c.{dialect.ident(k)}" for k in keys)
    e = f"(SELECT *, true AS {dialect.ident(IN_EXPECTED)} FROM ({expected}) AS e0) AS e"
    c = f"(SELECT *, true AS {dialect.ident(IN_CURRENT)} FROM ({current}) AS c0) AS c"
    where = (
        f"c.{dialect.ident(IN_CURRENT)} IS NULL OR e.{dialect.ident(IN_EXPECTED)} IS NULL OR {' OR '.join(any_stale)}"
    )
    if dialect.full_join:
        return f"SELECT {columns} FROM {e} FULL JOIN {c} ON {on} WHERE {where}"
    return (
        f"SELECT {columns} FROM {e} LEFT JOIN {c} ON {on} WHERE {where} "
        f"UNION ALL SELECT {columns} FROM {c} LEFT JOIN {e} ON {on} WHERE e.{dialect.ident(IN_EXPECTED)} IS NULL"
    )


def part_columns(plan: FeaturePlan) -> dict[str, dict[str, str]]:
    """Per part, the columns of :func:`increment_query` it keeps, as {query column: part column}."""
    keys = {k: k for k in plan.resolve_ids}
    added = {**keys, **{c: c for c in plan.input_columns}, **{c: c for c in plan.dv_columns}}
    return {
        "added": added,
        "changed": {**added, **{f.cause_column: f.cause_column for f in plan.fields}},
        "removed": {removed_id(k): k for k in plan.resolve_ids},
    }


def part_queries(plan: FeaturePlan, tagged: str, dialect: Dialect = DUCKDB) -> dict[str, str]:
    """SELECTs for ``added``, ``changed`` and ``removed``: ``tagged`` cut by part.

    ``tagged`` is :func:`increment_query`, or a SELECT of a table holding its rows.
    """
    queries = {}
    for name, columns in part_columns(plan).items():
        picked = ", ".join(f"{dialect.ident(source)} AS {dialect.ident(target)}" for source, target in columns.items())
        queries[name] = f"SELECT {picked} FROM ({tagged}) AS t WHERE {dialect.ident(PART)} = {part_code(name)}"
    return queries


def reconcile_select(
    dialect: Dialect,
    algorithm: str,
    plan: FeaturePlan,
    fields: tuple[str, ...],
    taken: frozenset[str],
    sources: dict[str, str],
    columns: tuple[str, ...],
) -> tuple[str, str]:
    """The rows a reconcile writes, and the condition of a rewritten row that would hide a left-out field's staleness.

    ``sources`` are the tables a resolve reads (the feature's own latest table among them),
    ``columns`` the latest table's columns, ``taken`` the input columns taken as the new graph
    gives them (``MetadataStore.reconcile``). A latest row (live, or an expansion's "no
    children" row) whose sample is stale in one of ``fields`` by its code version or a taken
    input comes out with every column as stored but: those fields' code versions, their data
    versions where stale so (hashed here as a resolve hashes them, over the taken inputs as
    the graph gives them and the others as stored; a root's are its caller's and stay), the
    taken inputs, and the feature and snapshot version of ``plan``. ``strata_seq`` and
    ``strata_written_at`` are left to the writer. The condition (over the same rows) is true
    where a taken input that a field outside ``fields`` also reads differs from the stored one
    while that field's code version is current: rewriting it would hide that field's staleness.
    """
    latest = sources[plan.table]
    alias = "c" if plan.child_ids else "l"  # an expansion's parent is compared as its children collapse
    picked = [f for f in plan.fields if f.name in fields]
    absorbs = {}
    for field in picked:
        conditions = [code_stale(field, dialect, alias)]
        if not plan.is_root:
            conditions += [differs(c, dialect, alias) for c in _columns_of(field) if c in taken]
        absorbs[field.name] = " OR ".join(conditions)
    inputs = {c for f in picked for c in _columns_of(f) if c in taken}
    moved = []
    for column in sorted(inputs):
        current = [
            f"NOT {code_stale(other, dialect, alias)}"
            for other in plan.fields
            if other.name not in fields and column in _columns_of(other) and other.cv_column in columns
        ]  # a field never written has no code version to keep: it is stale anyway
        if current:
            moved.append(f"({differs(column, dialect, alias)} AND ({' OR '.join(current)}))")
    new = {
        FEATURE_VERSION: dialect.literal(plan.feature_version),
        SNAPSHOT_VERSION: dialect.literal(plan.snapshot_version),
    }
    for field in picked:
        new[field.cv_column] = dialect.literal(field.stored_code_version)
        if not plan.is_root:
            hashed = dv_expr(dialect, algorithm, field, "l", dict.fromkeys(inputs, "e"))
            kept = f"l.{dialect.ident(field.dv_column)}"
            new[field.dv_column] = f"CASE WHEN {absorbs[field.name]} THEN {hashed} ELSE {kept} END"
    new.update({c: f"e.{dialect.ident(c)}" for c in sorted(inputs)})
    items = [f"{new.pop(c) if c in new else 'l.' + dialect.ident(c)} AS {dialect.ident(c)}" for c in columns]
    items = [item for item, c in zip(items, columns, strict=True) if c not in (SEQ, WRITTEN_AT)]
    items += [f"{value} AS {dialect.ident(c)}" for c, value in new.items()]
    keys = plan.resolve_ids
    source = f"{latest} AS l"
    row = f"NOT l.{dialect.ident(DELETED)}"
    if plan.child_ids:
        row = f"({row} OR ({' AND '.join(f'l.{dialect.ident(c)} IS NULL' for c in plan.child_ids)}))"
        on = " AND ".join(f"l.{dialect.ident(k)} = c.{dialect.ident(k)}" for k in keys)
        own = [*plan.input_columns, *plan.cv_columns, *plan.dv_columns]
        stored = padded(latest, [c for c in own if c not in columns], dialect)  # fields outside ``fields`` too
        source += f" JOIN ({current_select(plan, None, stored, dialect)}) AS c ON {on}"
    if not plan.is_root:
        expected = expected_select(dialect, algorithm, plan, None, sources)
        on = " AND ".join(f"e.{dialect.ident(k)} = l.{dialect.ident(k)}" for k in keys)
        source += f" JOIN ({expected}) AS e ON {on}"
    any_stale = " OR ".join(f"({s})" for s in absorbs.values()) or "false"
    return f"SELECT {', '.join(items)} FROM {source} WHERE {row} AND ({any_stale})", " OR ".join(moved) or "false"


def differs(column: str, dialect: Dialect, current: str) -> str:
    """Whether ``current``'s stored input ``column`` differs from the expected one (``e``)."""
    return f"{current}.{dialect.ident(column)} IS DISTINCT FROM e.{dialect.ident(column)}"


def _columns_of(field: FieldPlan) -> list[str]:
    """The input columns ``field`` reads."""
    return [input_column(i) for i in field.inputs]
