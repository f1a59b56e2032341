"""What users call on every store: open, write, delete, read, resolve, look up.

A store keeps, per feature, an append-only history table and a *latest* table with one live row
per sample. Writes add rows tagged with feature and snapshot version and a store-wide sequence
number; nothing is updated in place in the history.

``resolve_update(feature)`` answers "which samples must be added, recomputed (which fields,
why) or removed". For a non-root feature the store keeps, per feature, the sequence numbers it
last saw when the feature was fully in sync; the next resolve only looks at samples written
since (upstream or own rows), so its cost follows what changed, not what exists. A changed
definition, a hard delete or no sync record means a full comparison.

Backends implement the primitives of :class:`~strata.stores.contract.StoreBackend`; everything
users call is here, once. The increment itself is :class:`~strata.resolve.increment.Increment`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from strata.errors import (
    DefinitionError,
    FeatureNotFoundError,
    RuntimeFailure,
    SnapshotNotFoundError,
    StrataError,
    UsageError,
    WriteError,
    hiding,
)
from strata.features.graph import FeatureGraph, current_graph
from strata.features.keys import FeatureKey, feature_key_of
from strata.features.versions import DEFAULT_ALGORITHM, check_algorithm
from strata.resolve.increment import Increment
from strata.resolve.plan import (
    CAUSE,
    CAUSE_CODE,
    DELETED,
    FEATURE_VERSION,
    SEQ,
    SNAPSHOT_VERSION,
    WRITTEN_AT,
    FeaturePlan,
    FieldPlan,
    input_column,
)
from strata.stores.checks import check_write, fit_stored, to_arrow
from strata.stores.contract import StoreBackend
from strata.stores.snapshots import AMBIGUOUS_SHOWN, Pushed, Snapshot, new_snapshot
from strata.stores.sync import Pending, SqlPending

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    import polars as pl
    import pyarrow as pa

    from strata.progress import Reporter


__all__ = ["Increment", "MetadataStore", "Reconciled"]


@dataclass(frozen=True)
class Reconciled:
    """What :meth:`MetadataStore.reconcile` did (or, in a dry run, would do) to one feature."""

    feature: FeatureKey
    samples: int
    """Latest rows given the new provenance (an expansion's children each count)."""
    fields: tuple[str, ...]
    """The fields reconciled, in the feature's order."""


class MetadataStore(StoreBackend):
    """Base of every store. Use as a context manager: ``with store: ...``."""

    kind: str = "store"

    def __init__(
        self,
        *,
        hash_algorithm: str = DEFAULT_ALGORITHM,
        graph: FeatureGraph | None = None,
        read_only: bool = False,
        fallbacks: Sequence[MetadataStore] = (),
        name: str | None = None,
    ) -> None:
        self.hash_algorithm = check_algorithm(hash_algorithm)
        self.read_only = read_only
        """Only read: writes are refused and resolves record nothing (what reporting commands use)."""
        self.fallbacks: list[MetadataStore] = list(fallbacks)
        """Stores read through, in order, for a feature this one holds no rows of (see :meth:`_holder`)."""
        self.name = name
        """What messages call the store (a project's store name); else :meth:`describe`."""
        self.hidden: tuple[tuple[str, str], ...] = ()
        """(value, what to show instead): a project's ``${VAR}`` values, never shown in messages (:meth:`shown`)."""
        self._opened_fallbacks: list[tuple[MetadataStore, bool]] = []
        self._graph = graph
        self._plans: dict[FeatureKey, FeaturePlan] = {}
        self._plans_of: tuple[FeatureGraph, int] | None = None
        """The graph (held, so its address is never reused meanwhile) and revision ``_plans`` belong to."""
        self._pending: dict[FeatureKey, Pending | SqlPending] = {}
        self._depth = 0

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._depth == 0:
            self._check_chain()
            self._open()
            try:
                self._check_algorithm()
                self._open_fallbacks()
            except BaseException:
                self._close_fallbacks()
                self._close()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            try:
                self._close_fallbacks()
            finally:
                self._close()

    def describe(self) -> str:
        """What messages call the store: its name, else its kind and, for a store in a file, where it lives."""
        path = getattr(self, "path", None)
        return self.name or f"{self.kind} store" + (f" at {path}" if path else "")

    # -- chains --------------------------------------------------------------------------

    def _check_chain(self) -> None:
        """Refuse a chain whose fallbacks lead back to a store, or whose stores hash differently."""
        path: list[MetadataStore] = []

        def visit(store: MetadataStore) -> None:
            if any(store is s or store._same_place(s) for s in path):
                start = next(i for i, s in enumerate(path) if store is s or store._same_place(s))
                cycle = [*path[start:], store]
                names = sorted({f"`{s.describe()}`" for s in cycle[:-1]})
                raise DefinitionError(
                    f"{_names(names)} fall back on each other in a cycle ({' -> '.join(s.describe() for s in cycle)})"
                    if len(names) > 1
                    else f"store {names[0]} falls back on itself ({' -> '.join(s.describe() for s in cycle)})",
                    "a store's fallbacks must not lead back to it",
                )
            path.append(store)
            for fallback in store.fallbacks:
                if fallback.hash_algorithm != store.hash_algorithm:
                    raise DefinitionError(
                        f"store `{store.describe()}` hashes with `{store.hash_algorithm}` but its fallback "
                        f"`{fallback.describe()}` with `{fallback.hash_algorithm}`",
                        "give every store of a chain the same hash_algorithm",
                    )
                visit(fallback)
            path.pop()

        visit(self)

    def _same_place(self, other: MetadataStore) -> bool:
        """Whether ``other`` is this store under another object: a store of the same kind on the same file.

        ``:memory:`` databases are each their own; a store without a ``path`` is only itself.
        """
        paths = [getattr(store, "path", None) for store in (self, other)]
        if type(other) is not type(self) or None in paths or ":memory:" in paths:
            return False
        return Path(str(paths[0])).resolve() == Path(str(paths[1])).resolve()

    def _open_fallbacks(self) -> None:
        """Open each fallback read-only (a chain never writes to one) unless it is open already."""
        for fallback in self.fallbacks:
            was = fallback.read_only
            if not fallback.is_open:
                fallback.read_only = True
            try:
                fallback.__enter__()
            except BaseException as exc:
                fallback.read_only = was
                if isinstance(exc, Exception) and not isinstance(exc, StrataError):
                    raise self._unopened(fallback, exc) from hiding(exc, fallback.shown)
                raise
            self._opened_fallbacks.append((fallback, was))

    def shown(self, text: str) -> str:
        """``text`` as a message may show it: the values in :attr:`hidden` replaced, URL credentials hidden."""
        from strata.project.settings import redact_urls

        for value, reference in self.hidden:
            text = text.replace(value, reference)
        return redact_urls(text)

    def _unopened(self, fallback: MetadataStore, exc: Exception) -> RuntimeFailure:
        """A fallback's failure to open (an unreadable file), naming it rather than the store reading through it."""
        detail = fallback.shown(" ".join(str(exc).split()))
        return RuntimeFailure(
            f"cannot open store `{fallback.describe()}`, a fallback of `{self.describe()}`: {detail}",
            "check the fallback's path, and that it is a database of its type",
        )

    def _close_fallbacks(self) -> None:
        while self._opened_fallbacks:
            fallback, was = self._opened_fallbacks.pop()
            try:
                fallback.__exit__(None, None, None)
            finally:
                if not fallback.is_open:
                    fallback.read_only = was

    def _chain(self) -> list[MetadataStore]:
        """This store, then its fallbacks depth first, in order, each once."""
        out: list[MetadataStore] = []
        stack: list[MetadataStore] = [self]
        while stack:
            store = stack.pop()
            if all(store is not s for s in out):
                out.append(store)
                stack.extend(reversed(store.fallbacks))
        return out

    def _holder(self, plan: FeaturePlan) -> MetadataStore:
        """The first store of the chain holding rows of ``plan`` (an empty table does not count); else this one."""
        if not self.fallbacks:
            return self
        for store in self._chain():
            if store._max_seq(plan.table) is not None and store._holds_rows(plan):  # noqa: SLF001 - a store of the chain
                return store
        return self

    def _holds_rows(self, plan: FeaturePlan) -> bool:
        """Whether ``plan``'s latest table has a row (a tombstone counts); a backend may ask more directly."""
        frame = self._read(plan, history=False, include_deleted=True)
        return frame is not None and len(frame.head(1).collect(backend="polars")) > 0

    def _read_matching(self, plan: FeaturePlan, match: Mapping[str, Any], *, history: bool) -> pl.DataFrame | None:
        """Rows of ``plan`` (tombstones too; ``history``: every row) whose columns equal ``match``'s values.

        A value None matches null. Read from this store only, None without a table. Here a
        filter of :meth:`_read`, which lazy backends run inside the engine; a backend whose
        ``_read`` fetches the whole table asks its engine for the few rows instead.
        """
        import narwhals as nw

        from strata.stores.checks import typed_match

        frame = self._read(plan, history=history, include_deleted=True)
        if frame is None:
            return None
        stored = self._stored_schema(plan, list(match))  # the types, without a query where a backend knows them
        if stored is None:  # a column the table lacks: its schema from an empty read
            stored = dict(frame.head(0).collect(backend="polars").to_native().schema)
        values = typed_match(match, stored)
        if values is None:  # no stored row can hold these values
            native_empty: pl.DataFrame = frame.head(0).collect(backend="polars").to_native()
            return native_empty
        nulls = [c for c, v in match.items() if v is None and c in stored]
        for expr in [*(nw.col(c).is_null() for c in nulls), *(nw.col(c) == values[c][0] for c in values.columns)]:
            frame = frame.filter(expr)
        native: pl.DataFrame = frame.collect(backend="polars").to_native()
        return native

    def _read_through(self, plan: FeaturePlan, *, history: bool, include_deleted: bool) -> Any:
        """:meth:`_read` from the store of the chain that holds ``plan``'s rows."""
        return self._holder(plan)._read(plan, history=history, include_deleted=include_deleted)  # noqa: SLF001 - a store of the chain

    def _fallback_supplies(self, plan: FeaturePlan) -> bool:
        """Whether a fallback, not this store, holds the rows of one of ``plan``'s upstreams."""
        return bool(self.fallbacks) and any(self._holder(self.plan(u.key)) is not self for u in plan.upstreams)

    def _resolve_chained(self, plan: FeaturePlan, *, lazy: bool, only: dict[str, Any] | None = None) -> Increment:
        """The full comparison of a feature whose upstream rows come (partly) from fallbacks.

        Here the rows are read as Arrow (:meth:`_resolve_through`); a backend may compare them
        in its engine instead (DuckDB attaches DuckDB files). ``meta["chain"]`` says which.
        """
        increment = self._resolve_through(plan, lazy=lazy, only=only)
        increment.meta["chain"] = "read"
        return increment

    def _resolve_through(self, plan: FeaturePlan, *, lazy: bool, only: dict[str, Any] | None = None) -> Increment:
        """The full comparison of a feature whose upstream rows come (partly) from fallbacks, in Polars.

        Each upstream's latest rows come from the store that holds them, the feature's own
        from this store (writes go here, so what it holds stays whole); the same engine as
        the in-memory store compares them, so the increment is the one a single store holding
        all of those rows gives.
        """
        import narwhals as nw
        import polars as pl

        from strata.resolve import polars as engine

        def latest(source: MetadataStore, table_plan: FeaturePlan) -> pl.DataFrame | None:
            if only is not None:  # the resolve ids are id columns of every table compared: whole samples kept
                return source._read_matching(table_plan, {k: only[k] for k in plan.resolve_ids}, history=False)
            frame = source._read(table_plan, history=False, include_deleted=True)
            return None if frame is None else frame.collect(backend="polars").to_native()

        tables = {u.table: latest(self._holder(self.plan(u.key)), self.plan(u.key)) for u in plan.upstreams}
        own = latest(self, plan)
        candidates = None if only is None else pl.DataFrame({k: [only[k]] for k in plan.resolve_ids})
        expected = engine.expected_frame(self.hash_algorithm, plan, tables, candidates)
        current = engine.current_frame(plan, own, candidates)
        schema: dict[str, pl.DataType] | None = None
        if expected is None and current is None:
            schema = {}
            for frame in (own, *tables.values()):
                for column in plan.resolve_ids:
                    if frame is not None and column in frame.columns:
                        schema.setdefault(column, frame.schema[column])
            schema = {c: schema.get(c, pl.String()) for c in plan.resolve_ids}
        parts = engine.increment(self.hash_algorithm, plan, expected, current, schema)
        frames = {k: nw.from_native(v.lazy() if lazy else v) for k, v in parts.items()}
        return Increment(
            plan.key, frames["added"], frames["changed"], frames["removed"], lazy=lazy, meta={"mode": "full"}
        )

    @property
    def is_open(self) -> bool:
        return self._depth > 0

    def _require_open(self) -> None:
        if not self.is_open:
            raise DefinitionError(f"the {self.kind} store is not open", "use it inside `with store:`")

    def _require_writable(self) -> None:
        self._require_open()
        if self.read_only:
            raise WriteError(
                f"{self._called()} is open read-only, so nothing can be written to it",
                "write through a store opened for writing (not read_only)",
            )

    def _check_place(self, path: str | Path) -> None:
        """:func:`check_place` of this store's file."""
        check_place(path, self._called(), self.shown)

    def _called(self) -> str:
        """What a message calls the store: ``store `prod```, else its kind and place (values hidden)."""
        return f"store `{self.name}`" if self.name else self.shown(self.describe())

    def _check_algorithm(self) -> None:
        stored = self._get_meta("hash_algorithm")
        if stored is None:
            if not self.read_only:
                self._set_meta("hash_algorithm", self.hash_algorithm)
        elif stored != self.hash_algorithm:
            raise DefinitionError(
                f"{self._called()} holds data versions hashed with `{stored}`, not `{self.hash_algorithm}`",
                f"open it with hash_algorithm={stored!r}; algorithms are never mixed",
            )

    # -- graph ---------------------------------------------------------------------------

    @property
    def graph(self) -> FeatureGraph:
        """The definitions the store versions by: the graph given to it, else the active one.

        Assign a new graph (``store.graph = graph``) to hand an open store new definitions,
        e.g. after a code change; ``None`` goes back to the active graph.
        """
        return self._graph or current_graph()

    @graph.setter
    def graph(self, graph: FeatureGraph | None) -> None:
        self._graph = graph
        self._forget_all()

    def plan(self, feature: Any) -> FeaturePlan:
        """The versioning plan of ``feature`` under the store's graph.

        Plans are kept for one graph at a time, by identity and revision: a graph built anew
        (even at a freed graph's address) or changed in place is planned again.
        """
        graph = self.graph
        key = feature_key_of(feature)
        if key not in graph:
            raise FeatureNotFoundError(f"no feature `{key}` in the graph", "import the module that defines it")
        revision = graph._version  # noqa: SLF001 - the graph's change counter
        if self._plans_of is None or self._plans_of[0] is not graph or self._plans_of[1] != revision:
            self._plans = {}
            self._plans_of = (graph, revision)
        plan = self._plans.get(key)
        if plan is None:
            plan = FeaturePlan.build(graph, key)
            self._plans[key] = plan
        return plan

    # -- writing -------------------------------------------------------------------------

    def write(self, feature: Any, frame: Any) -> int:
        """Append rows for ``feature``; return how many. Nothing is written if any check fails.

        Rows need the id columns and ``strata_dv__<field>`` for every field (a root feature's
        caller supplies them; for other features they come with the increment, and may be
        replaced by a content hash). Non-root rows also carry the increment's
        ``strata_in__*`` columns, which record what they were computed from.

        For an expansion (one parent row makes many), rows replace everything stored for the
        parents they name: children of those parents missing from the rows are deleted (soft).
        A parent that expands into no children is written as one row with every child id null;
        it is kept as a deleted row, so it is never read as a sample but is not computed again
        until its inputs change.
        """
        self._require_writable()
        plan = self.plan(feature)
        written = self._write_in_place(plan, frame)
        if written is not None:
            return written
        table = to_arrow(frame)
        table = table.drop_columns([c for c in table.column_names if c.startswith(CAUSE)])  # an increment's, not data
        check_write(plan, table)
        if table.num_rows == 0:
            return 0
        pending = self._pending.pop(plan.key, None)
        settles = (
            pending is not None
            and pending.state["definition"] == self._definition(plan)
            and self._settle_write(plan, pending, table)
        )
        if not settles:
            self._write(plan, table)
            if pending is not None:
                pending.forget()
            return int(table.num_rows)
        assert pending is not None
        since = pending.state["tables"]
        seq = self._write(plan, table, since=since, fresh=pending.fresh)
        if seq is None:  # something else was written since the resolve: the next resolve compares
            pending.forget()
        else:
            self._settle(plan, pending, {**since, plan.table: seq})
        return int(table.num_rows)

    def _settle_write(self, plan: FeaturePlan, pending: Pending | SqlPending, table: pa.Table) -> bool:
        """Whether ``table`` (rows about to be written) gives only what ``pending`` asked for; tick them off."""
        return isinstance(pending, Pending) and pending.settle_write(plan, table)

    def _settle_delete(self, plan: FeaturePlan, pending: Pending | SqlPending, ids: pa.Table) -> bool:
        """Whether ``ids`` (about to be soft-deleted) were all asked to be removed; tick them off."""
        return isinstance(pending, Pending) and pending.settle_delete(plan, ids)

    def _remember(self, plan: FeaturePlan, state: dict[str, Any], increment: Increment) -> Pending | SqlPending | None:
        """What a resolve asked for, to tell when writes bring the feature in sync (see ``stores/sync.py``).

        Eager increments are kept as Polars frames; a backend may keep lazy ones (the in-memory
        store does not: a lazy resolve there is forgotten, and the next resolve compares).
        """
        if increment.lazy:
            return None
        return Pending.from_increment(plan, state, increment.added, increment.changed, increment.removed)

    def _forget(self, key: FeatureKey) -> None:
        """Drop what the last resolve of ``key`` asked for."""
        pending = self._pending.pop(key, None)
        if pending is not None and self.is_open:
            pending.forget()

    def _forget_all(self) -> None:
        """Drop what every waiting resolve asked for."""
        for key in list(self._pending):
            self._forget(key)

    def _lost_track(self) -> None:
        """A soft delete took rows out of the latest table and left none in their place; forget every sync.

        A tombstone deleted again, or an expansion's "no children" row deleted, leaves no latest
        row numbered since a feature's last sync, so no resolve "since last sync" would look at
        those samples: every sync record goes, as after a hard delete (the next resolve of each
        feature compares in full). Called inside the delete's transaction.
        """
        self._clear_sync()
        self._forget_all()

    def _settle(
        self, plan: FeaturePlan, pending: Pending | SqlPending, tables: dict[str, int | None] | None = None
    ) -> None:
        """After a write or delete that gave what the last resolve asked for; ``tables``: the numbers now, if known."""
        pending.state = self._sync_state(plan) if tables is None else {**pending.state, "tables": tables}
        if pending.done:
            self._set_sync(plan.key, pending.state)
        else:
            self._pending[plan.key] = pending

    def write_changed(self, feature: Any, frame: Any, *, snapshot: bool = False) -> dict[str, int]:
        """Write the rows of a root feature that are new or differ from the live row; skip the rest.

        A row is written when its sample has no live row, or when any data version (or the
        code_version a field was written with) differs. Other columns ride along but do not
        count: a record whose fields hash alike produces no new row. Returns counts of
        ``added``, ``changed`` and ``unchanged`` samples. This is how ``target-strata`` loads.

        ``snapshot=True``: ``frame`` is every sample the feature should have (a full snapshot of
        its source), so live samples missing from it are deleted (soft) as well, and the counts
        include ``removed``. One call brings the root in line with its source.
        """
        plan = self._root_plan(feature)
        table = to_arrow(frame)
        check_write(plan, table, samples=True)
        counts = {"added": 0, "changed": 0, "unchanged": 0}
        if table.num_rows:
            if not self._has_table(plan.table):
                rows, new = table, table.num_rows
            else:
                table = self._fit_ids(plan, table)
                rows, new = self._changed_rows(plan, table)
            if rows.num_rows:
                self.write(feature, rows)
            counts = {"added": new, "changed": rows.num_rows - new, "unchanged": table.num_rows - rows.num_rows}
        if snapshot:
            counts["removed"] = self._remove_missing(plan, table)
        return counts

    def _fit_ids(self, plan: FeaturePlan, table: pa.Table) -> pa.Table:
        """``table`` with its id columns as they are stored (``checks.fit_stored``), before they meet the live rows.

        Ids the stored ones cannot take are refused in one line before anything is written; text
        that is a number is taken as that number, and ids stored as text are compared as text
        (5 as ``"5"``, the text ``write`` stores). Rows typed as stored go on as they are.
        """
        import polars as pl

        stored = self._stored_schema(plan, plan.id_columns)
        ids = pl.from_arrow(table.select(list(plan.id_columns)))
        assert isinstance(ids, pl.DataFrame)
        if stored is None or dict(ids.schema) == stored:
            return table
        fitted = fit_stored(self.describe(), plan.key, ids, stored)
        texts = [pl.col(c).cast(pl.String) for c, t in stored.items() if t == pl.String and fitted.schema[c] != t]
        fitted = fitted.with_columns(texts)
        for name in plan.id_columns:
            table = table.set_column(table.schema.get_field_index(name), name, fitted.get_column(name).to_arrow())
        return table

    def _remove_missing(self, plan: FeaturePlan, table: pa.Table) -> int:
        """Soft-delete the live samples of ``plan`` whose ids are not in ``table``."""
        import polars as pl

        stored = self._read(plan, history=False, include_deleted=False)
        if stored is None:
            return 0
        keys = list(plan.id_columns)
        live = stored.select(keys).collect(backend="polars").to_native()
        present = pl.from_arrow(table.select(keys))
        assert isinstance(present, pl.DataFrame)
        from strata.resolve.polars import zones_like

        present = zones_like(present, live)
        gone = live.join(present, on=keys, how="anti", nulls_equal=True) if len(present) else live
        return self.delete(plan.key, gone) if len(gone) else 0

    def _root_plan(self, feature: Any) -> FeaturePlan:
        """The plan of a root feature, for ``write_changed`` and its variants."""
        self._require_writable()
        plan = self.plan(feature)
        if not plan.is_root:
            raise DefinitionError(
                f"`{plan.key}` has upstreams: write_changed is for root features", "use resolve_update and write"
            )
        return plan

    def _changed_rows(self, plan: FeaturePlan, table: pa.Table) -> tuple[pa.Table, int]:
        """Rows of ``table`` to write and how many of them are new samples (Polars; SQL stores override)."""
        import polars as pl

        stored = self._read(plan, history=False, include_deleted=False)
        assert stored is not None
        versions = [*plan.dv_columns, *plan.cv_columns]
        present = set(stored.columns)  # a field added since the last write has no column yet
        live = stored.select([c for c in (*plan.id_columns, *versions) if c in present]).collect(backend="polars")
        live = live.to_native().with_columns(pl.lit(None, pl.String).alias(c) for c in versions if c not in present)
        live = live.rename({c: f"strata_old__{c}" for c in versions}).with_columns(pl.lit(1).alias("strata_old__"))
        batch = pl.from_arrow(table)
        assert isinstance(batch, pl.DataFrame)
        batch = batch.with_columns(
            pl.lit(f.stored_code_version, pl.String).alias(f"strata_new__{f.cv_column}") for f in plan.fields
        )
        from strata.resolve.polars import zones_like

        joined = batch.join(zones_like(live, batch), on=list(plan.id_columns), how="left", nulls_equal=True)
        new = pl.col("strata_old__").is_null()
        differs = [pl.col(c).ne_missing(pl.col(f"strata_old__{c}")) for c in plan.dv_columns]
        differs += [pl.col(f"strata_new__{c}").ne_missing(pl.col(f"strata_old__{c}")) for c in plan.cv_columns]
        keep = joined.filter(pl.any_horizontal(new, *differs))
        count = int(keep.select(new.sum()).item())
        return keep.select(table.column_names).to_arrow(), count

    def delete(self, feature: Any, ids: Any, *, soft: bool = True) -> int:
        """Delete samples by id (a frame with the id columns). Soft: append tombstones; hard: erase.

        For an expansion, a frame of parent ids (an increment's ``removed``) deletes every child
        of those parents. Returns how many live rows were deleted.
        """
        self._require_writable()
        plan = self.plan(feature)
        table = to_arrow(ids)
        by = plan.id_columns
        missing = [c for c in by if c not in table.column_names]
        if missing and plan.child_ids and all(c in table.column_names for c in plan.resolve_ids):
            by, missing = plan.resolve_ids, []  # parent ids (as an increment's `removed` gives them): all children go
        if missing:
            raise WriteError(
                f"ids to delete from `{plan.key}` lack column(s) {', '.join(missing)}",
                "pass a frame with the id columns",
            )
        table = table.select(list(by))
        if table.num_rows == 0 or not self._has_table(plan.table):
            return 0
        pending = self._pending.pop(plan.key, None)
        settles = (
            soft
            and pending is not None
            and pending.state["definition"] == self._definition(plan)
            and self._settle_delete(plan, pending, table)
        )
        since = pending.state["tables"] if settles and pending is not None else None
        deleted, seq = self._delete(plan, table, soft=soft, since=since)
        if not soft:  # the SQL stores cleared the sync records in the delete's transaction already
            self._clear_sync()
            self._forget_all()  # what resolves asked for may now be wrong
        if pending is not None and since is not None and seq is not None:
            self._settle(plan, pending, {**since, plan.table: seq})
        elif pending is not None:
            pending.forget()
        return deleted

    def delete_preview(self, feature: Any, ids: Any | None = None, *, soft: bool = True) -> int:
        """How many rows :meth:`delete` would take (``ids`` None: every sample); changes nothing.

        Soft: the live rows that would become tombstones. Hard: every row erased, history included.
        """
        import narwhals as nw
        import polars as pl

        self._require_open()
        plan = self.plan(feature)
        stored = self._read(plan, history=not soft, include_deleted=not soft)
        if stored is None:
            return 0
        frame = stored.collect(backend="polars").to_native()
        if ids is not None:
            wanted = nw.from_native(ids, eager_only=True).to_native()
            assert isinstance(wanted, pl.DataFrame)
            by = [c for c in plan.id_columns if c in wanted.columns] or list(plan.resolve_ids)
            frame = frame.join(wanted.select(by).cast(frame.select(by).schema), on=by, how="semi", nulls_equal=True)
        return len(frame)

    def delete_downstream(self, feature: Any, ids: Any, *, soft: bool = True) -> dict[str, int]:
        """Delete the rows downstream features derived from the samples ``ids`` of ``feature``.

        Follows lineage through every downstream feature (transitively) whose id columns include
        those of ``ids``: identity, and each child of a 1:N expansion. A feature keyed by fewer
        ids (an aggregation over the samples) is left alone: its rows summarise other samples
        too, and its next resolve recomputes them. Soft: tombstones; hard: erased with their
        history. Returns the live rows deleted per feature it reached. Without it, each
        downstream feature's next resolve lists the samples as removed (what ``strata build``
        applies).
        """
        import polars as pl

        self._require_writable()
        key = self.plan(feature).key
        wanted = pl.from_arrow(to_arrow(ids))
        assert isinstance(wanted, pl.DataFrame)
        out: dict[str, int] = {}
        for down in self.graph.downstream(key):
            plan = self.plan(down)
            if not set(wanted.columns) <= set(plan.id_columns):
                continue
            stored = self._read(plan, history=not soft, include_deleted=not soft)
            if stored is None:
                out[str(down)] = 0
                continue
            rows = stored.select(list(plan.id_columns)).collect(backend="polars").to_native().unique()
            by = list(wanted.columns)
            picked = rows.join(wanted.cast(rows.select(by).schema), on=by, how="semi", nulls_equal=True)
            out[str(down)] = self.delete(down, picked, soft=soft) if len(picked) else 0
        return out

    # -- store operations ----------------------------------------------------------------

    def copy_from(
        self, source: MetadataStore, features: Sequence[Any] | None = None, *, report: Reporter | None = None
    ) -> dict[str, int]:
        """Copy the rows of ``features`` (default: every feature of the graph) from ``source`` into this store.

        Every row comes with its history and system columns (versions, ``strata_written_at``,
        tombstones); the copied rows take this store's next sequence number, one per feature
        (docs/stores.md). Rows this store holds already are skipped, so a second copy adds
        nothing. Per sample, the row written last (``strata_written_at``), here or there, is
        the latest. Returns the rows added per feature; ``report`` hears of each feature copied
        (:mod:`strata.progress`).
        """
        self._require_writable()
        source._require_open()
        if source.hash_algorithm != self.hash_algorithm:
            raise DefinitionError(
                f"the source store hashes with `{source.hash_algorithm}`, this one with `{self.hash_algorithm}`",
                "copy between stores of one hash algorithm; algorithms are never mixed",
            )
        keys = self._operated(features)
        self._forget_all()
        return self._per_feature("copy", keys, report, lambda key: self._copy_feature(source, self.plan(key)))

    def _operated(self, features: Sequence[Any] | None) -> list[FeatureKey]:
        """The features an operation acts on: those named (checked), else all, upstreams first."""
        if features:
            return [self.plan(f).key for f in features]
        return list(self.graph.topological_order())

    @staticmethod
    def _per_feature(
        task: str, keys: list[FeatureKey], report: Reporter | None, work: Callable[[FeatureKey], int]
    ) -> dict[str, int]:
        """``work`` of each feature in turn (rows), ``report`` told of each as it ends."""
        if report is not None:
            report.start(task, len(keys), unit="feature", items="row")
        out: dict[str, int] = {}
        for key in keys:
            out[str(key)] = work(key)
            if report is not None:
                report.advance(task, items=out[str(key)], note=str(key))
        if report is not None:
            report.finish(task)
        return out

    def _copy_feature(self, source: MetadataStore, plan: FeaturePlan) -> int:
        """Copy one feature's rows from ``source``: those this store lacks, into history or latest as they fall."""
        import polars as pl

        theirs = source._all_rows(plan)
        if theirs is None:
            return 0
        ours = self._all_rows(plan)
        identity = [*plan.id_columns, WRITTEN_AT, DELETED, *plan.dv_columns]
        new = theirs
        if ours is not None:  # the same row may be typed otherwise here (Int32 ids there, Int64 here)
            known = ours.select(identity).cast(theirs.select(identity).schema, strict=False)
            new = theirs.join(known, on=identity, how="anti", nulls_equal=True)
        if not len(new):
            return 0
        # per resolve id (an expansion's parent), the generation written last, here or there, is the latest
        group, is_latest = list(plan.resolve_ids), pl.col("strata$latest")
        newest = pl.col(WRITTEN_AT).max()
        theirs_latest = theirs.filter(is_latest)
        wins = (
            new.filter(is_latest)
            .select(group)
            .unique()
            .join(
                theirs_latest.group_by(group).agg(newest.alias("strata$theirs")), on=group, how="left", nulls_equal=True
            )
        )
        if ours is not None:
            ours_newest = ours.filter(is_latest).group_by(group).agg(newest.alias("strata$ours"))
            wins = wins.join(ours_newest.cast(wins.select(group).schema), on=group, how="left", nulls_equal=True)
            wins = wins.filter(pl.col("strata$ours").is_null() | (pl.col("strata$theirs") >= pl.col("strata$ours")))
        latest = theirs_latest.join(wins.select(group), on=group, how="semi", nulls_equal=True)
        history = new.join(latest.select(identity), on=identity, how="anti", nulls_equal=True)
        self._put(plan, latest.drop("strata$latest").to_arrow(), history.drop("strata$latest").to_arrow())
        return len(new)

    def _all_rows(self, plan: FeaturePlan) -> Any:
        """Every row of a feature as Polars, ``strata$latest`` telling the latest ones; None without a table."""
        import polars as pl

        latest = self._read(plan, history=False, include_deleted=True)
        if latest is None:
            return None
        full = self._read(plan, history=True, include_deleted=True)
        assert full is not None
        now = latest.collect(backend="polars").to_native()
        every = full.collect(backend="polars").to_native()
        row = [*plan.id_columns, SEQ, WRITTEN_AT]
        older = every.join(now.select(row), on=row, how="anti", nulls_equal=True)
        return pl.concat(
            [
                now.with_columns(pl.lit(value=True).alias("strata$latest")),
                older.with_columns(pl.lit(value=False).alias("strata$latest")),
            ],
            how="diagonal_relaxed",
        )

    def compact(
        self,
        features: Sequence[Any] | None = None,
        *,
        keep: int | None = None,
        older_than: dt.timedelta | dt.datetime | None = None,
        dry_run: bool = False,
        report: Reporter | None = None,
    ) -> dict[str, int]:
        """Drop history rows the retention does not ask for; return how many rows go per feature.

        Every latest row stays. ``keep=N``: per sample, the N newest superseded rows stay.
        ``older_than`` (a duration back from now, or a point in time): a superseded row goes when
        the row that replaced it was written before then, so every state since can still be read;
        a tombstone written before then goes too, with its history (an expansion's "no children" row,
        which says its parent was computed, is no tombstone). ``dry_run``: count only.
        Dropping history leaves the sync records as they are; dropping a tombstone forgets them,
        as a hard delete does (the next resolve of each feature compares in full). ``report``
        hears of each feature done (:mod:`strata.progress`).
        """
        if (keep is None) == (older_than is None):
            raise DefinitionError("compact needs one retention", "pass keep=N or older_than=DURATION (not both)")
        if keep is not None and keep < 0:
            raise DefinitionError(f"keep={keep} is negative", "keep the N newest superseded rows per sample, N >= 0")
        if dry_run:
            self._require_open()
        else:
            self._require_writable()
        cutoff = None
        if older_than is not None:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            cutoff = older_than if isinstance(older_than, dt.datetime) else now - older_than
        keys = self._operated(features)
        return self._per_feature(
            "compact", keys, report, lambda key: self._compact_feature(self.plan(key), keep, cutoff, dry_run=dry_run)
        )

    def _compact_feature(self, plan: FeaturePlan, keep: int | None, cutoff: Any, *, dry_run: bool) -> int:
        import polars as pl

        rows = self._all_rows(plan)
        if rows is None:
            return 0
        sample = list(plan.id_columns)
        rows = rows.sort([*sample, WRITTEN_AT, SEQ], descending=True, nulls_last=True)
        latest = pl.col("strata$latest")
        if keep is not None:
            rank = (~latest).cum_sum().over(sample)  # 1 for the newest superseded row of a sample
            gone = rows.filter(~latest & (rank > keep))
            tombs = rows.clear()
        else:
            replaced_at = pl.col(WRITTEN_AT).shift(1).over(sample)  # the next newer row's time
            # an expansion's "no children" row is marked deleted but says the parent was computed: it stays
            children = pl.any_horizontal(pl.col(c).is_not_null() for c in plan.child_ids) if plan.child_ids else True
            tombs = rows.filter(latest & pl.col(DELETED) & children & (pl.col(WRITTEN_AT) < cutoff))
            marked = rows.join(
                tombs.select(sample).with_columns(pl.lit(value=True).alias("strata$dead")),
                on=sample,
                how="left",
                nulls_equal=True,
            )
            dead = pl.col("strata$dead").fill_null(value=False)
            gone = marked.filter(~latest & ((replaced_at < cutoff) | dead))
        count = len(gone) + len(tombs)
        if dry_run or not count:
            return count
        row = [*plan.id_columns, SEQ, WRITTEN_AT]
        self._forget_all()
        self._erase(plan, tombs.select(row).to_arrow(), gone.select(row).to_arrow())
        if len(tombs):
            self._clear_sync()
        return count

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(
        self,
        feature: Any,
        *,
        fields: Sequence[str] | None = None,
        dry_run: bool = False,
        upstream: Iterable[tuple[Any, str]] | None = None,
    ) -> Reconciled:
        """Give the stored samples of ``feature`` the provenance of the store's graph, without computing anything.

        What a migration's *reconcile* operation runs after a refactor that changes no result:
        the store's :attr:`graph` is the new code. A reconcile absorbs the code change of
        ``fields`` (default: every field of the feature) and the new data versions that the
        reconciles of upstream fields gave, nothing else. ``upstream`` names those upstream
        fields, as (feature, field) pairs (a migration's apply: the fields it reconciles, upstream
        first); default: every field of a non-root upstream. A root's reconcile never changes its
        data versions, so a root's input is never taken: new data there (orders re-ingested after
        the last build) is no refactor.

        Every latest row whose sample is stale in one of ``fields`` by its code version, or by an
        input so taken, is written again under a new sequence number, its old row going to
        history as for any write: those fields' code versions become the graph's; each input
        they read becomes what the graph gives when taken (an input the table has no column
        for, of a field that reads one more input than when written, is taken too), else stays
        as stored; their data versions, where stale so, are hashed from those inputs as a resolve
        hashes them (a root's are its caller's and stay); the feature and snapshot version become
        the graph's; every user column, and every other field's versions, stay as stored.
        Computed inside the database (in Polars for the in-memory store); no row leaves it, but
        in the cases below. ``dry_run``: count, write nothing.

        Afterwards a resolve lists those samples for the reconciled fields only where an input
        not taken has changed (cause: that input; ``strata build`` recomputes them); fields left
        out stay stale where they were. A reconciled field's new data versions reach the features
        downstream that read it: they look stale (cause: that upstream field's data) until they
        are reconciled too — the caller reconciles every affected feature in upstream-first
        order (``graph.topological_order()``), as a migration lists them. A field left out that
        reads a taken input whose value changed, and whose own code version did not change, is
        refused (:class:`UsageError`): the stored input column is shared, so rewriting it for one
        field would hide the other's staleness. A chain rewrites the rows of this store only (its
        first), reading upstreams through its fallbacks (then, and for a feature with its own
        ``load_input``, the rows are compared and rewritten in Polars). A field the code added
        has no stored values: named, it is refused in one line; else left out.
        """
        self._require_open()
        if not dry_run:
            self._require_writable()
        plan = self.plan(feature)
        if not self._has_table(plan.table) or self._max_seq(plan.table) is None:
            return Reconciled(plan.key, 0, self._reconciled_fields(plan, fields))
        names = self._written_fields(plan, self._reconciled_fields(plan, fields), named=fields is not None)
        if not names:
            return Reconciled(plan.key, 0, names)
        if not dry_run:
            self._forget(plan.key)  # what a resolve asked for is answered otherwise now
        from strata.features.graph import has_custom_loader

        new = self._new_inputs(plan, names)
        taken = self._taken_inputs(plan, names, upstream) | new
        if (
            has_custom_loader(self.graph.feature(plan.key))  # inputs only Python can give
            or self._fallback_supplies(plan)  # upstream rows elsewhere
            or new  # columns the table lacks: written through `_put`, which adds them
        ):
            return Reconciled(plan.key, MetadataStore._reconcile(self, plan, names, taken, dry_run=dry_run), names)
        return Reconciled(plan.key, self._reconcile(plan, names, taken, dry_run=dry_run), names)

    def _taken_inputs(
        self, plan: FeaturePlan, names: tuple[str, ...], upstream: Iterable[tuple[Any, str]] | None
    ) -> frozenset[str]:
        """Input columns of the fields ``names`` a reconcile takes as the graph gives them (see :meth:`reconcile`).

        Those of a reconciled upstream field (``upstream``, default every field of a non-root
        upstream), never a root's.
        """
        if upstream is None:
            reconciled = {(u.key, f) for u in plan.upstreams for f in u.fields}
        else:
            reconciled = {(feature_key_of(key), name) for key, name in upstream}
        return frozenset(
            input_column(item)
            for f in plan.fields
            if f.name in names
            for item in f.inputs
            if (item.feature, item.field.name) in reconciled and not self.plan(item.feature).is_root
        )

    def _reconciled_fields(self, plan: FeaturePlan, fields: Sequence[str] | None) -> tuple[str, ...]:
        """The fields to reconcile, in the feature's order; a name the feature lacks is one :class:`UsageError`."""
        known = [f.name for f in plan.fields]
        if fields is None:
            return tuple(known)
        for name in fields:
            if name not in known:
                raise UsageError(
                    f"`{plan.key}` has no field `{name}`",
                    f"name its fields: {', '.join(f'`{k}`' for k in known)}",
                )
        return tuple(k for k in known if k in fields)

    def _written_fields(self, plan: FeaturePlan, names: tuple[str, ...], *, named: bool) -> tuple[str, ...]:
        """``names`` but fields never written (the code added them): no values to keep, so a recompute's work.

        Left out when the caller named no fields; a named one is refused in one line. Asked of
        the stored columns (:meth:`_stored_schema`, a catalog lookup in SQL stores), never the rows.
        """
        missing = [f.name for f in plan.fields if f.name in names and self._stored_schema(plan, [f.dv_column]) is None]
        if missing and named:
            raise UsageError(
                f"field `{missing[0]}` of `{plan.key}` was never written, so it has no values to reconcile",
                "recompute it (`strata build`), or leave it out of the fields",
            )
        return tuple(n for n in names if n not in missing)

    def _new_inputs(self, plan: FeaturePlan, names: tuple[str, ...]) -> frozenset[str]:
        """Input columns the fields ``names`` read that the feature's stored rows have none of.

        A field that reads one more upstream field than when it was written (a refactor that
        now passes it, say): its reconciled rows bring the column, which the table gains.
        Asked of the stored columns (a catalog lookup in SQL stores), never the rows.
        """
        inputs = sorted({input_column(i) for f in plan.fields if f.name in names for i in f.inputs})
        if self._stored_schema(plan, inputs) is not None:
            return frozenset()
        return frozenset(c for c in inputs if self._stored_schema(plan, [c]) is None)

    def _shared_input_error(
        self, plan: FeaturePlan, fields: tuple[str, ...], taken: frozenset[str], samples: int
    ) -> UsageError:
        """The refusal of a reconcile rewriting a taken input a field left out also reads (see :meth:`reconcile`)."""
        for ours in (f for f in plan.fields if f.name in fields):
            for other in (f for f in plan.fields if f.name not in fields):
                common = [i for i in ours.inputs if i in other.inputs and input_column(i) in taken]
                if common:
                    return UsageError(
                        f"fields `{ours.name}` and `{other.name}` of `{plan.key}` both read `{common[0].dotted}`, "
                        f"whose data changed for {samples} sample(s); reconciling `{ours.name}` alone would hide "
                        f"that `{other.name}` is stale",
                        "reconcile both fields, or recompute both",
                    )
        raise AssertionError("no shared input")  # pragma: no cover - called only when one is

    def _reconcile(self, plan: FeaturePlan, fields: tuple[str, ...], taken: frozenset[str], *, dry_run: bool) -> int:
        """Rewrite the provenance of the latest rows of ``fields`` stale by code or a ``taken`` input; return how many.

        See :meth:`reconcile`. Here in Polars, through :meth:`_resolve` and :meth:`_put` (the
        in-memory store, and every store for a feature with its own ``load_input``, whose inputs
        only Python can give, or whose upstream rows a fallback holds); a SQL store overrides it
        with the statements of ``resolve/sql.reconcile_select``, so no row leaves the database.
        """
        import polars as pl

        from strata.resolve.polars import code_stale, dv_expr, padded

        stored = self._read(plan, history=False, include_deleted=True)
        assert stored is not None
        latest: pl.DataFrame = stored.collect(backend="polars").to_native()
        keys = list(plan.resolve_ids)
        picked = [f for f in plan.fields if f.name in fields]
        if plan.is_root:
            changed = latest.select(*keys, *(code_stale(f).alias(f.cause_column) for f in picked))
        else:  # columns the table lacks read as null, as a resolve reads them (``resolve.polars.padded``)
            found = self._resolve_custom(plan, lazy=False)
            if found is None:
                chained = self._fallback_supplies(plan)
                found = self._resolve_chained(plan, lazy=False) if chained else self._resolve(plan, None, lazy=False)
            changed = found.changed.to_native()
            changed = changed.with_columns(_absorbs(f, taken).alias(f.cause_column) for f in picked)
        causes = [pl.col(f.cause_column) for f in picked]
        changed = changed.filter(pl.any_horizontal(causes)).rename(lambda c: f"strata$new__{c}" if c not in keys else c)
        children = [pl.col(c).is_null() for c in plan.child_ids]
        inputs = {input_column(i) for f in picked for i in f.inputs}
        columns = [*latest.columns, *sorted(inputs - set(latest.columns))]  # new inputs: columns the write adds
        latest = padded(latest, [*plan.input_columns, *plan.cv_columns, *plan.dv_columns])
        rows = latest.filter(~pl.col(DELETED) | (pl.all_horizontal(children) if children else False))
        rows = rows.join(changed, on=keys, how="inner", nulls_equal=True)
        moved = [
            pl.col(c).ne_missing(pl.col(f"strata$new__{c}")) & ~code_stale(other)
            for c, other in _sharing(plan, fields, taken)
        ]
        conflicts = int(rows.filter(pl.any_horizontal(moved)).height) if moved else 0
        if conflicts:
            raise self._shared_input_error(plan, fields, taken, conflicts)
        if dry_run or not len(rows):
            return len(rows)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = rows.with_columns(pl.col(f"strata$new__{c}").alias(c) for c in sorted(inputs & taken))
        new = [
            pl.lit(plan.feature_version, pl.String).alias(FEATURE_VERSION),
            pl.lit(plan.snapshot_version, pl.String).alias(SNAPSHOT_VERSION),
            pl.lit(now).cast(latest.schema[WRITTEN_AT]).alias(WRITTEN_AT),
        ]
        for field in picked:
            new.append(pl.lit(field.stored_code_version, pl.String).alias(field.cv_column))
            if not plan.is_root:
                hashed = dv_expr(self.hash_algorithm, field)
                new.append(
                    pl.when(pl.col(f"strata$new__{field.cause_column}"))
                    .then(hashed)
                    .otherwise(pl.col(field.dv_column))
                    .alias(field.dv_column)
                )
        rewritten = rows.with_columns(new).select(columns)
        self._put(plan, rewritten.to_arrow(), rewritten.clear().to_arrow())
        return len(rewritten)

    # -- reading -------------------------------------------------------------------------

    def read(
        self,
        feature: Any,
        *,
        filters: Sequence[Any] = (),
        columns: Sequence[str] | None = None,
        feature_version: str | None = None,
        include_deleted: bool = False,
        lazy: bool = False,
    ) -> Any:
        """Rows of ``feature``: the latest live row per sample by default.

        ``feature_version``: ``None`` (latest row whatever its version), ``"current"`` (only rows
        written under the current definition), ``"all"`` (the whole history) or a version hash.
        ``filters`` are Narwhals expressions, run inside the store.
        """
        self._require_open()
        plan = self.plan(feature)
        frame = self._read_through(plan, history=feature_version == "all", include_deleted=include_deleted)
        if frame is None:
            frame = self._empty(plan)
        import narwhals as nw

        if feature_version not in (None, "all"):
            wanted = plan.feature_version if feature_version == "current" else feature_version
            frame = frame.filter(nw.col("strata_feature_version") == wanted)
        for expr in filters:
            frame = frame.filter(expr)
        if columns is not None:
            frame = frame.select(list(columns))
        return frame if lazy else frame.collect(backend="polars")

    def has_feature(self, feature: Any) -> bool:
        """Whether anything was ever written for ``feature`` (a write or delete that committed).

        A table alone does not say so: a DuckDB store makes a feature's tables before the
        transaction of its first write, and a process killed inside it leaves them empty.
        """
        self._require_open()
        table = feature_key_of(feature).table_name
        return any(
            store._has_table(table) and store._max_seq(table) is not None  # noqa: SLF001 - a store of the chain
            for store in self._chain()
        )

    # -- graph snapshots -----------------------------------------------------------------

    def push_graph(self, tags: Mapping[str, str] | None = None) -> Pushed:
        """Record the store's graph (:attr:`graph`) as a snapshot, unless it is the latest one pushed.

        ``tags`` (e.g. ``{"commit": ...}``) go with a new snapshot; an unchanged graph adds
        nothing, whatever its tags. A chain pushes to this store only (its first), never to a
        fallback. See :mod:`strata.stores.snapshots`.
        """
        self._require_open()
        if self.read_only:
            raise WriteError(
                f"{self._called()} is open read-only, so no snapshot can be pushed to it",
                "push to a store opened for writing",
            )
        graph = self.graph
        graph.validate()
        latest = next(iter(self._snapshots(None)), None)
        snapshot = new_snapshot(graph, tags or {}, latest)
        if latest is not None and latest.graph_record == snapshot.graph_record:
            return Pushed(latest, added=False)
        self._add_snapshot(snapshot.version, snapshot.pushed_at.isoformat(), snapshot.to_record())
        return Pushed(snapshot, added=True)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot pushed to this store, newest first (none: an empty list)."""
        self._require_open()
        return self._snapshots(None)

    def snapshot(self, version: str | None = None) -> Snapshot:
        """The latest pushed snapshot, or the latest one of snapshot version ``version``.

        ``version`` may be a unique prefix of one, as git takes a commit's; a prefix of several
        versions is a :class:`UsageError`. ``snapshot(v).graph()`` rebuilds that graph
        (:meth:`Snapshot.graph`).
        """
        self._require_open()
        found = self._snapshots(version)
        if found:
            return found[0]
        if version is None:
            raise SnapshotNotFoundError(f"no graph was pushed to {self._called()}", "push one with `strata graph push`")
        matches = [s for s in self._snapshots(None) if s.version.startswith(version)] if version else []
        versions = sorted({s.version for s in matches})
        if len(versions) > 1:
            shown = versions[:AMBIGUOUS_SHOWN]
            more = f" and {len(versions) - len(shown)} more" if len(versions) > len(shown) else ""
            raise UsageError(
                f"snapshot `{version}` is ambiguous in {self._called()}: {', '.join(shown)}{more}",
                "give more characters of the version",
            )
        if matches:
            return matches[0]
        raise SnapshotNotFoundError(
            f"no snapshot `{version}` in {self._called()}", "see `strata graph history` for the versions"
        )

    def _snapshots(self, version: str | None) -> list[Snapshot]:
        """Pushed snapshots (of ``version``, or all), newest first."""
        records = self._get_snapshots(version)
        return sorted(map(Snapshot.from_record, records), key=lambda s: s.pushed_at, reverse=True)

    # -- migration progress --------------------------------------------------------------

    def record_migration(self, migration: str, record: Mapping[str, Any]) -> None:
        """Append a progress record of ``migration`` (an operation done, the migration applied) to this store.

        Never to a fallback: a chain records in its first store, as it pushes there. See
        :mod:`strata.features.migrations`.
        """
        self._require_open()
        if self.read_only:
            raise WriteError(
                f"{self._called()} is open read-only, so no migration can be applied to it",
                "apply to a store opened for writing",
            )
        now = dt.datetime.now(dt.UTC).isoformat()
        self._add_migration_record(migration, now, json.dumps({**record, "recorded_at": now}, sort_keys=True))

    def migration_records(self) -> list[dict[str, Any]]:
        """Every migration progress record of this store (not its fallbacks'), oldest first."""
        self._require_open()
        return sorted((json.loads(r) for r in self._get_migration_records()), key=lambda r: str(r["recorded_at"]))

    # -- increments ----------------------------------------------------------------------

    def resolve_update(self, feature: Any, *, samples: Any = None, lazy: bool = False) -> Increment:
        """What to add, recompute (per field, with cause) and remove for ``feature``.

        Root features take ``samples``: every sample that should exist, with the id columns and
        ``strata_dv__<field>`` for each field. Other features compute their inputs from their
        upstreams inside the store.
        """
        self._require_open()
        plan = self.plan(feature)
        if plan.is_root:
            if samples is None:
                raise DefinitionError(
                    f"`{plan.key}` is a root feature: resolve_update needs samples=",
                    "pass the current samples with their data versions",
                )
            native = self._resolve_root_native(plan, samples, lazy=lazy)
            if native is not None:
                return native
            table = to_arrow(samples)
            check_write(plan, table, samples=True)
            if self._max_seq(plan.table) is None:  # nothing stored yet: every sample is new
                return self._all_added(plan, table, lazy=lazy)
            return self._resolve_root(plan, table, lazy=lazy)
        if samples is not None:
            raise DefinitionError(f"`{plan.key}` has upstreams; samples= is only for root features", "drop samples=")
        custom = self._resolve_custom(plan, lazy=lazy)
        if custom is not None:
            return custom
        if self._fallback_supplies(plan):  # other stores' numbers: compare in full, record nothing
            self._forget(plan.key)
            return self._resolve_chained(plan, lazy=lazy)
        state = self._sync_state(plan)
        previous = self._get_sync(plan.key)
        candidates: dict[str, int] | None = None
        if previous is not None and previous.get("definition") == state["definition"]:
            if previous["tables"] == state["tables"]:
                return self._empty_increment(plan, lazy=lazy, meta={"mode": "in sync"})
            candidates = {t: s for t, s in previous["tables"].items() if s is not None}
        increment = self._resolve(plan, candidates, lazy=lazy)
        increment.meta["mode"] = "full" if candidates is None else "since last sync"
        self._forget(plan.key)
        if self.read_only:
            return increment
        if not lazy and increment.is_empty:
            self._set_sync(plan.key, state)
        elif plan.resolve_ids == plan.id_columns:
            pending = self._remember(plan, state, increment)
            if pending is not None:
                self._pending[plan.key] = pending
        return increment

    def _resolve_custom(self, plan: FeaturePlan, *, lazy: bool) -> Increment | None:
        """Resolve through the feature's own ``load_input``, when it has one (always a full comparison).

        The loader gets each upstream's live rows with its data-version columns already named
        as this feature's input columns (``strata_in__<upstream>__<field>``), and returns this
        feature's resolve ids with those input columns.
        """
        from strata.features.graph import has_custom_loader

        cls = self.graph.feature(plan.key)
        if not has_custom_loader(cls):
            return None
        import narwhals as nw

        from strata.resolve import polars as engine

        upstream = {}
        for up in plan.upstreams:
            frame = self._read_through(self.plan(up.key), history=False, include_deleted=False)
            if frame is None:
                frame = self._empty(self.plan(up.key))
            renames = {f"strata_dv__{f}": column for f, column in up.input_columns().items()}
            upstream[up.key] = frame.rename({k: v for k, v in renames.items() if k in frame.columns})
        loaded = cls.load_input(upstream)
        if loaded is None:
            return None
        expected = nw.from_native(loaded).lazy().collect(backend="polars").to_native()
        missing = [c for c in (*plan.resolve_ids, *plan.input_columns) if c not in expected.columns]
        if missing:
            raise DefinitionError(
                f"{cls.__name__}.load_input returned no column(s) {', '.join(missing)}",
                "return this feature's ids and one column per input, named as the upstream frames name them",
            )
        stored = self._read(plan, history=False, include_deleted=True)
        current = None if stored is None else stored.collect(backend="polars").to_native()
        parts = engine.increment(
            self.hash_algorithm,
            plan,
            expected.select([*plan.resolve_ids, *plan.input_columns]),
            engine.current_frame(plan, current, None),
        )
        frames = {k: nw.from_native(v.lazy() if lazy else v) for k, v in parts.items()}
        return Increment(
            plan.key, frames["added"], frames["changed"], frames["removed"], lazy=lazy, meta={"mode": "custom loader"}
        )

    def _sync_state(self, plan: FeaturePlan) -> dict[str, Any]:
        tables = [plan.table, *(u.table for u in plan.upstreams)]
        return {"definition": self._definition(plan), "tables": self._max_seqs(tables)}

    def _definition(self, plan: FeaturePlan) -> str:
        """What a sync record holds of the feature's definition: a change of any part means a full comparison."""
        return json.dumps([plan.feature_version, [d.to_json() for d in plan.spec.deps], self.hash_algorithm])

    def lookup(self, feature: Any, ids: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """One sample across the graph, with its status in each feature.

        Covers ``feature`` and every feature upstream and downstream that shares its id
        columns: the live row (or None), a status and, when stale, the cause per field.
        """
        self._require_open()
        key = feature_key_of(feature)
        graph = self.graph
        related = [*reversed(_ancestors(graph, key)), key, *graph.downstream(key)]
        out: dict[str, dict[str, Any]] = {}
        import narwhals as nw
        import polars as pl

        for fkey in dict.fromkeys(related):
            plan = self.plan(fkey)
            if not set(plan.id_columns) <= set(ids):
                continue
            exprs = [nw.col(c) == ids[c] for c in plan.resolve_ids]  # an expansion's increment is per parent
            found = self._holder(plan)._read_matching(plan, {c: ids[c] for c in plan.id_columns}, history=False)  # noqa: SLF001
            rows = [] if found is None else found.filter(~pl.col(DELETED)).rows(named=True)
            status = "missing"
            causes: dict[str, str] = {}
            if not plan.is_root:
                inc = (
                    self._resolve_chained(plan, lazy=False, only=dict(ids))
                    if self._fallback_supplies(plan)
                    else self._resolve(plan, None, lazy=False, only=dict(ids))
                )
                changed = inc.changed.filter(*exprs) if len(inc.changed) else inc.changed
                if len(inc.added.filter(*exprs)):
                    status = "to add"
                elif len(changed):
                    status = "stale"
                    record = changed.rows(named=True)[0]
                    causes = {c.removeprefix(CAUSE): record[c] for c in record if c.startswith(CAUSE) and record[c]}
                elif rows:
                    status = "up to date"
                if rows and len(inc.removed.filter(*exprs)):
                    status = "to remove"
            elif rows:
                status = "present"
            out[str(fkey)] = {"row": rows[0] if rows else None, "status": status, "causes": causes}
        return out

    # -- helpers for backends -----------------------------------------------------------

    def _empty(self, plan: FeaturePlan) -> Any:
        import narwhals as nw
        import polars as pl

        return nw.from_native(pl.DataFrame({c: [] for c in plan.id_columns}).lazy())

    def _all_added(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        import narwhals as nw
        import polars as pl

        frame = pl.from_arrow(samples.select([*plan.id_columns, *plan.dv_columns]))
        assert isinstance(frame, pl.DataFrame)
        empty = self._empty_increment(
            plan, lazy=lazy, meta={"mode": "first"}, ids=frame.select(plan.id_columns).clear()
        )
        empty.added = nw.from_native(frame.lazy() if lazy else frame)
        return empty

    def _empty_increment(self, plan: FeaturePlan, *, lazy: bool, meta: dict[str, Any], ids: Any = None) -> Increment:
        """An increment with nothing in it; id columns keep the stored types."""
        import narwhals as nw
        import polars as pl

        if ids is None:
            ids = pl.DataFrame(schema=self._id_schema(plan, plan.resolve_ids))
        strings = [pl.lit(None, pl.String).alias(c) for c in (*plan.input_columns, *plan.dv_columns)]
        causes = [pl.lit(None, pl.String).alias(f.cause_column) for f in plan.fields]
        added = ids.with_columns(strings)
        frames = [added, added.with_columns(causes), ids]
        parts = [nw.from_native(f.lazy() if lazy else f) for f in frames]
        return Increment(plan.key, parts[0], parts[1], parts[2], lazy=lazy, meta=meta)

    def _id_donors(
        self, plan: FeaturePlan, columns: Sequence[str], *, through: bool = False
    ) -> dict[str, tuple[MetadataStore, FeaturePlan]]:
        """For each id column, the nearest stored feature that has it: ``plan`` itself, else upstream.

        Where a table does not exist yet, its stand-in takes its id types from here, so an
        increment's id types never depend on which tables exist. Columns no stored feature
        has are left out (nothing holds a value of them yet). Each donor comes with the store
        holding its table: this one, or with ``through`` the first of the chain that has it.
        """
        stores = self._chain() if through else [self]
        donors: dict[str, tuple[MetadataStore, FeaturePlan]] = {}
        queue, seen = [plan.key], set()
        while queue and len(donors) < len(columns):
            key = queue.pop(0)
            if key in seen:
                continue
            seen.add(key)
            candidate = self.plan(key)
            holder = next((s for s in stores if s._has_table(candidate.table)), None)  # noqa: SLF001 - a store of the chain
            if holder is not None:
                for column in columns:
                    if column in candidate.id_columns:
                        donors.setdefault(column, (holder, candidate))
            queue.extend(self.graph.upstream(key))
        return donors

    def _id_schema(self, plan: FeaturePlan, columns: Sequence[str], *, through: bool = False) -> dict[str, Any]:
        """Polars types of ``columns`` as stored (see :meth:`_id_donors`); String where nothing holds them.

        The feature's own table answers at once when it exists (the common case: an in-sync
        resolve); otherwise each donor is read once for all the columns it gives. ``through``:
        as the chain's reads find them (a dev store holding none of a feature's rows yet).
        """
        import polars as pl

        for store in self._chain() if through else [self]:
            own = store._stored_schema(plan, columns)  # noqa: SLF001 - a store of the chain
            if own is not None:
                return own
        schema: dict[str, Any] = dict.fromkeys(columns, pl.String)
        by_donor: dict[tuple[int, FeatureKey], list[str]] = {}
        holders: dict[tuple[int, FeatureKey], MetadataStore] = {}
        for column, (holder, donor) in self._id_donors(plan, columns, through=through).items():
            slot = (id(holder), donor.key)
            by_donor.setdefault(slot, []).append(column)
            holders[slot] = holder
        for slot, wanted in by_donor.items():
            stored = holders[slot]._stored_schema(self.plan(slot[1]), wanted)  # noqa: SLF001 - a store of the chain
            assert stored is not None
            schema.update(stored)
        return schema

    def _increment_schema(self, plan: FeaturePlan, ids: dict[str, Any] | None = None) -> dict[str, Any]:
        """The types of the rows of ``sql.increment_query``: ids as stored (or as ``ids``), the rest text."""
        import polars as pl

        from strata.resolve import sql

        id_types = self._id_schema(plan, plan.resolve_ids)
        if ids is not None and self._stored_schema(plan, plan.resolve_ids) is None:
            id_types = {**id_types, **ids}
        schema: dict[str, Any] = {sql.PART: pl.Int64, **id_types}
        schema |= {sql.removed_id(k): id_types[k] for k in plan.resolve_ids}
        return schema | dict.fromkeys(
            (*plan.input_columns, *plan.dv_columns, *(f.cause_column for f in plan.fields)), pl.String
        )

    def _stored_schema(self, plan: FeaturePlan, columns: Sequence[str]) -> dict[str, Any] | None:
        """Polars types of ``columns`` in the feature's latest table; None without the table or one of them.

        Read through :meth:`_read`; a backend may answer more directly.
        """
        stored = self._read(plan, history=False, include_deleted=True)
        if stored is None or not set(columns) <= set(stored.columns):
            return None
        return dict(stored.select(list(columns)).head(0).collect(backend="polars").to_native().schema)


def _absorbs(field: FieldPlan, taken: frozenset[str]) -> Any:
    """Whether a reconcile absorbs ``field``'s staleness (a Polars expression over a resolve's ``changed``).

    True where its cause names its code or an input in ``taken``; other causes stay for a build.
    """
    import polars as pl

    absorbed = [CAUSE_CODE, *(i.dotted for i in field.inputs if input_column(i) in taken)]
    listed = pl.col(field.cause_column).fill_null("").str.split(",")
    return pl.any_horizontal(listed.list.contains(pl.lit(name)) for name in absorbed)


def _sharing(plan: FeaturePlan, fields: tuple[str, ...], taken: frozenset[str]) -> list[tuple[str, FieldPlan]]:
    """(taken input column, field left out reading it): where a reconcile could hide that field's staleness."""
    return [
        (column, other)
        for column in sorted(taken)
        for other in plan.fields
        if other.name not in fields and column in {input_column(i) for i in other.inputs}
    ]


def _names(quoted: Sequence[str]) -> str:
    """```a` and `b``, ```a`, `b` and `c``."""
    return "stores " + (", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else quoted[0])


def _ancestors(graph: FeatureGraph, key: FeatureKey) -> list[FeatureKey]:
    seen: list[FeatureKey] = []
    stack = list(graph.upstream(key))
    while stack:
        item = stack.pop()
        if item not in seen:
            seen.append(item)
            stack.extend(graph.upstream(item))
    return seen


def check_place(path: str | Path, called: str, shown: Callable[[str], str] = str) -> None:
    """Refuse a store file no file can ever be at: the nearest ancestor that exists is no directory.

    Else a read would take the missing file for an empty store, and a write fail on making its
    directory, neither saying why. ``called``: what the message calls the store.
    """
    if str(path) == ":memory:":
        return
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(
                    f"cannot open {called}: {shown(str(parent))} is a file, so nothing can be at {shown(str(path))}",
                    "give the store a path in a directory (strata.yml)",
                )
            return
