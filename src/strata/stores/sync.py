"""Telling when writes have brought a feature back in sync, without comparing everything again.

After a resolve, the store remembers what it asked for: the samples to add or recompute with the
input data versions they must be computed from, and the samples to remove, together with the
sequence numbers it saw. A write that gives exactly such rows (ids asked for, inputs as expected)
and a delete of ids asked to be removed tick them off, as long as nothing else was written in
between. When nothing is left, the feature is in sync and the store records it, so the next
resolve (in this process or any other) returns at once. Anything unexpected simply forgets the
record; the next resolve then compares as usual. Correctness never depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from strata.resolve.plan import FeaturePlan

_PRESENT = "__strata_pending"


@dataclass
class Pending:
    """What the last resolve of one feature asked for."""

    state: dict[str, Any]
    rows: pl.DataFrame
    """Resolve ids and expected input columns of the added and changed samples."""
    removed: pl.DataFrame

    @classmethod
    def from_increment(
        cls, plan: FeaturePlan, state: dict[str, Any], added: Any, changed: Any, removed: Any
    ) -> Pending:
        """Remember an eager increment's asks."""
        import polars as pl

        keys = [*plan.resolve_ids, *plan.input_columns]
        rows = pl.concat([added.to_native().select(keys), changed.to_native().select(keys)], how="vertical_relaxed")
        return cls(state, rows.with_columns(pl.lit(value=True).alias(_PRESENT)), removed.to_native())

    @property
    def done(self) -> bool:
        return len(self.rows) == 0 and len(self.removed) == 0

    def settle_write(self, plan: FeaturePlan, batch: pa.Table) -> bool:
        """Tick off written rows; False when the batch holds anything that was not asked for."""
        import polars as pl

        keys = list(plan.resolve_ids)
        frame = pl.from_arrow(batch.select([*keys, *plan.input_columns]))
        assert isinstance(frame, pl.DataFrame)
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

    def settle_delete(self, plan: FeaturePlan, ids: pa.Table) -> bool:
        """Tick off deleted ids; False when an id was not asked to be removed."""
        import polars as pl

        keys = list(plan.resolve_ids)
        frame = pl.from_arrow(ids.select(keys))
        assert isinstance(frame, pl.DataFrame)
        asked = self.removed.with_columns(pl.lit(value=True).alias(_PRESENT))
        if frame.join(asked, on=keys, how="left", nulls_equal=True)[_PRESENT].null_count():
            return False
        self.removed = self.removed.join(frame, on=keys, how="anti", nulls_equal=True)
        return True
