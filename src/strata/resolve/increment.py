"""The answer of a resolve: which samples of one feature to add, recompute (which fields, why) or remove."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from strata.resolve.plan import CAUSE

if TYPE_CHECKING:
    from strata.features.keys import FeatureKey

IncrementPart = Literal["added", "changed", "removed"]


@dataclass
class Increment:
    """What must change for one feature.

    - ``added``: samples to compute, with their input data versions and new data versions;
    - ``changed``: samples to recompute, the same columns plus ``strata_cause__<field>`` for
      every field: null when that field is up to date, else why it is stale — ``code`` (its
      code_version changed), ``data`` (a root field's data version changed) or the dotted keys
      of the upstream fields whose data changed, comma-separated;
    - ``removed``: ids of samples that no longer have inputs.

    Frames are Narwhals frames: eager ``DataFrame`` by default, ``LazyFrame`` with ``lazy=True``.
    """

    feature: FeatureKey
    added: Any
    changed: Any
    removed: Any
    lazy: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def collect(self) -> Increment:
        """An eager copy (a no-op for eager increments)."""
        if not self.lazy:
            return self
        parts = {name: getattr(self, name).collect(backend="polars") for name in ("added", "changed", "removed")}
        return Increment(self.feature, lazy=False, meta=self.meta, **parts)

    @property
    def is_empty(self) -> bool:
        return not any(self.counts().values())

    def counts(self) -> dict[str, int]:
        """Samples per part; a lazy increment is counted where it lives, without collecting its rows."""
        if not self.lazy:
            return {"added": len(self.added), "changed": len(self.changed), "removed": len(self.removed)}
        import narwhals as nw

        parts = {"added": self.added, "changed": self.changed, "removed": self.removed}
        return {name: int(part.select(nw.len()).collect().item()) for name, part in parts.items()}

    def stale_fields(self) -> dict[str, int]:
        """Per field: the samples it must be computed for, every added one and each changed one it is stale in."""
        eager = self.collect()
        added = len(eager.added)
        changed = eager.changed
        return {
            column.removeprefix(CAUSE): added + len(changed) - int(changed[column].null_count())
            for column in changed.columns
            if column.startswith(CAUSE)
        }

    def changed_fields(self) -> dict[str, dict[str, int]]:
        """Per field: how many samples changed, by cause (``code``, ``data`` or an upstream field)."""
        eager = self.collect()
        out: dict[str, dict[str, int]] = {}
        for column in eager.changed.columns:
            if not column.startswith(CAUSE):
                continue
            counts: dict[str, int] = {}
            for value in eager.changed[column].to_list():
                for cause in (value or "").split(","):
                    if cause:
                        counts[cause] = counts.get(cause, 0) + 1
            if counts:
                out[column.removeprefix(CAUSE)] = counts
        return out
