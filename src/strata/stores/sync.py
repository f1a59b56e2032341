"""Telling when writes have brought a feature back in sync, without comparing everything again.

After a resolve, the store remembers what it asked for: the samples to add or recompute with the
input data versions they must be computed from, and the samples to remove, together with the
sequence numbers it saw. A write that gives exactly such rows (ids asked for, inputs as expected)
and a delete of ids asked to be removed tick them off, as long as nothing else was written in
between. When nothing is left, the feature is in sync and the store records it, so the next
resolve (in this process or any other) returns at once. Anything unexpected simply forgets the
record; the next resolve then compares as usual. Correctness never depends on it.

:class:`Pending` keeps the asks of an eager increment as Polars frames; :class:`SqlPending` keeps
those of a lazy increment in the database: the queries of its parts, evaluated only when a
write needs them (a write of a part itself, as ``resolve_update`` returned it, ticks it off whole),
and then a temp table of the asks not yet written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strata.resolve.sql import ident, ids_list

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl
    import pyarrow as pa

    from strata.resolve.plan import FeaturePlan

_PRESENT = "__strata_pending"
_names = itertools.count()


def is_fresh(plan: FeaturePlan, state: dict[str, Any]) -> bool:
    """Whether the feature had no rows when the resolve that saw ``state`` ran.

    Then, as long as nothing but the writes this record ticks off has been written since (the
    tables' numbers are as the record last saw them), no row it ticks off has a stored row to
    supersede: each sample is asked for once and ticked off once. A store may skip looking.
    """
    return state["tables"].get(plan.table) is None


@dataclass
class Pending:
    """What the last resolve of one feature asked for."""

    state: dict[str, Any]
    rows: pl.DataFrame
    """Resolve ids and expected input columns of the added and changed samples."""
    removed: pl.DataFrame
    fresh: bool = False
    """The feature had no rows when the resolve ran (see :func:`is_fresh`)."""

    @classmethod
    def from_increment(
        cls, plan: FeaturePlan, state: dict[str, Any], added: Any, changed: Any, removed: Any
    ) -> Pending:
        """Remember an eager increment's asks."""
        import polars as pl

        keys = [*plan.resolve_ids, *plan.input_columns]
        rows = pl.concat([added.to_native().select(keys), changed.to_native().select(keys)], how="vertical_relaxed")
        asks = rows.with_columns(pl.lit(value=True).alias(_PRESENT))
        return cls(state, asks, removed.to_native(), fresh=is_fresh(plan, state))

    @property
    def done(self) -> bool:
        return len(self.rows) == 0 and len(self.removed) == 0

    def forget(self) -> None:
        """Nothing to let go of: the frames go with the object."""

    def asks(self) -> pl.DataFrame:
        """The resolve ids and input columns of the samples still to write."""
        return self.rows.drop(_PRESENT)

    def settle_write(self, plan: FeaturePlan, batch: pa.Table) -> bool:
        """Tick off written rows; False when the batch holds anything that was not asked for."""
        import polars as pl

        keys = list(plan.resolve_ids)
        frame = pl.from_arrow(batch.select([*keys, *plan.input_columns]))
        assert isinstance(frame, pl.DataFrame)
        from strata.resolve.polars import zones_like

        frame = zones_like(frame, self.rows)
        if self._is_next(frame):  # the asks in the order they were given: no join needed
            self.rows = self.rows.slice(len(frame))
            return True
        joined = frame.join(self.rows, on=keys, how="left", suffix="__asked", nulls_equal=True)
        unexpected = [pl.col(_PRESENT).is_null()]
        unexpected += [pl.col(c).ne_missing(pl.col(f"{c}__asked")) for c in plan.input_columns]
        if joined.select(pl.any_horizontal(unexpected).any()).item():
            return False
        if len(frame) == len(self.rows):  # ids are unique and all asked for: everything is written
            self.rows = self.rows.clear()
        else:
            self.rows = self.rows.join(frame.select(keys), on=keys, how="anti", nulls_equal=True)
        return True

    def _is_next(self, frame: pl.DataFrame) -> bool:
        """Whether ``frame`` holds exactly the next asks, in order (how a writer of the increment gives them)."""
        if len(frame) > len(self.rows):
            return False
        head = self.rows.slice(0, len(frame)).select(frame.columns)
        try:
            return head.equals(frame, null_equal=True)
        except Exception:  # noqa: BLE001 - types that do not compare: take the join
            return False

    def settle_delete(self, plan: FeaturePlan, ids: pa.Table) -> bool:
        """Tick off deleted ids; False when an id was not asked to be removed."""
        import polars as pl

        keys = list(plan.resolve_ids)
        frame = pl.from_arrow(ids.select(keys))
        assert isinstance(frame, pl.DataFrame)
        from strata.resolve.polars import zones_like

        frame = zones_like(frame, self.removed)
        asked = self.removed.with_columns(pl.lit(value=True).alias(_PRESENT))
        if frame.join(asked, on=keys, how="left", nulls_equal=True)[_PRESENT].null_count():
            return False
        self.removed = self.removed.join(frame, on=keys, how="anti", nulls_equal=True)
        return True


class SqlPending:
    """What the last resolve of one feature asked for, kept in the database.

    ``run`` executes SQL on the store's connection and returns the rows. ``parts`` are SELECTs of
    the increment's added and changed rows (resolve ids and input columns among their columns),
    ``removed`` a SELECT of the removed ids (None: there can be none, nothing is stored yet).
    They are valid while nothing else is written, which is all the time they are used (``state``
    must still match).
    """

    def __init__(
        self,
        run: Callable[[str], list[tuple[Any, ...]]],
        plan: FeaturePlan,
        state: dict[str, Any],
        parts: list[str],
        removed: str | None,
    ) -> None:
        self.state = state
        self.fresh = is_fresh(plan, state)
        """The feature had no rows when the resolve ran (see :func:`is_fresh`)."""
        self._run = run
        self._keys = plan.resolve_ids
        self._inputs = plan.input_columns
        self._parts = list(parts)
        """Parts no write has touched yet: still only queries."""
        self._removed: str | None = removed
        number = next(_names)
        self._asked = ident(f"strata$asked_{number}")
        self._gone = ident(f"strata$gone_{number}")
        self._asked_left: int | None = None
        self._gone_left: int | None = None

    @property
    def done(self) -> bool:
        """Nothing left to write or remove.

        A part no write has touched counts as left, unevaluated (writing it, even empty, ticks it
        off); the removed ids are counted once the rest is done.
        """
        if self._parts or self._asked_left:
            return False
        if self._removed is not None and not self._count(self._removed):
            self._removed = None
        return self._removed is None and not self._gone_left

    def _count(self, query: str) -> int:
        return int(self._run(f"SELECT count(*) FROM ({query}) AS q")[0][0])

    def is_part(self, query: str) -> bool:
        """Whether ``query`` is one of the parts no write has touched yet (its rows are the store's own)."""
        return query in self._parts

    def before_write(self, query: str | None) -> None:
        """Before rows are written in place: evaluate the asks while they still describe what the resolve saw.

        A write of a whole part (``query`` is one of them) leaves the other parts as they were;
        any other write may change what they select, so they become a table first.
        """
        if self._parts and query not in self._parts:
            self._fold_parts()

    def settle_write(self, rows: str | None, query: str | None = None) -> bool:
        """Tick off the written ``rows`` (a relation of the connection; None: there were none); ``query``: their SQL."""
        if query is not None and query in self._parts:  # a part written whole, as it was returned
            self._parts.remove(query)
            return True
        if rows is None:  # nothing written, nothing ticked off: what was asked still holds
            return True
        if self._parts:  # the first write that is not a whole part: fold what is left into one table of asks
            self._fold_parts()
        elif self._asked_left is None:
            return False  # everything asked is written: this write was not asked for
        same = " AND ".join(f"a.{ident(c)} IS NOT DISTINCT FROM b.{ident(c)}" for c in (*self._keys, *self._inputs))
        unexpected = f"SELECT count(*) FROM {rows} b WHERE NOT EXISTS (SELECT 1 FROM {self._asked} a WHERE {same})"
        if int(self._run(unexpected)[0][0]):
            return False
        self._asked_left = self._tick_off(self._asked, rows)
        return True

    def settle_delete(self, ids: str) -> bool:
        """Tick off deleted ``ids`` (a relation of the connection); False when one was not asked to be removed."""
        if self._removed is not None:
            self._fold_removed()
        elif self._gone_left is None:
            return False
        same = " AND ".join(f"a.{ident(c)} IS NOT DISTINCT FROM b.{ident(c)}" for c in self._keys)
        unexpected = f"SELECT count(*) FROM {ids} b WHERE NOT EXISTS (SELECT 1 FROM {self._gone} a WHERE {same})"
        if int(self._run(unexpected)[0][0]):
            return False
        self._gone_left = self._tick_off(self._gone, ids)
        return True

    def materialize(self) -> None:
        """Evaluate every query now, into temp tables (for parts that read frames about to go)."""
        if self._parts:
            self._fold_parts()
        if self._removed is not None:
            self._fold_removed()

    def _fold_parts(self) -> None:
        columns = ids_list((*self._keys, *self._inputs))
        union = " UNION ALL ".join(f"SELECT {columns} FROM ({p}) AS p" for p in self._parts)
        self._run(f"CREATE TEMP TABLE {self._asked} AS {union}")
        self._parts = []
        self._asked_left = int(self._run(f"SELECT count(*) FROM {self._asked}")[0][0])

    def _fold_removed(self) -> None:
        assert self._removed is not None
        self._run(f"CREATE TEMP TABLE {self._gone} AS SELECT {ids_list(self._keys)} FROM ({self._removed}) AS r")
        self._removed = None
        self._gone_left = int(self._run(f"SELECT count(*) FROM {self._gone}")[0][0])

    def _tick_off(self, table: str, rows: str) -> int:
        """Delete from ``table`` the ids ``rows`` holds; return how many rows ``table`` has left."""
        same = " AND ".join(f"{table}.{ident(c)} IS NOT DISTINCT FROM b.{ident(c)}" for c in self._keys)
        self._run(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {rows} b WHERE {same})")
        return int(self._run(f"SELECT count(*) FROM {table}")[0][0])

    def forget(self) -> None:
        """Drop the temp tables (the record is no longer needed)."""
        for table in (self._asked, self._gone):
            self._run(f"DROP TABLE IF EXISTS {table}")
