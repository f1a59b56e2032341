"""Pushed graph snapshots: what a store's snapshots table holds, and how a graph comes back from one.

A push records the graph a store versions by (``FeatureGraph.to_snapshot``: every feature's key,
import path, spec, feature version, fields with code and field versions, upstream fields used,
tags) with the time of the push and the user's tags, as one JSON record per row of the system
table ``strata$snapshots`` (columns ``version``, ``pushed_at``, ``record``). A push adds a row
only when the graph differs from the latest pushed one, so history lists each change once, in
the order it reached the store (a graph pushed again after another is a new row).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from strata.features.graph import FeatureGraph

SNAPSHOTS = "strata$snapshots"
"""The system table of pushed snapshots (created by a store's first push)."""

MIGRATIONS = "strata$migrations"
"""The system table of migration progress (``strata.features.migrations``; created by the first apply)."""

FORMAT = 1
"""The record's layout; a reader refuses a record of a later one."""

AMBIGUOUS_SHOWN = 3
"""How many of the versions an ambiguous prefix matches its error names."""


@dataclass(frozen=True)
class Snapshot:
    """One pushed graph: its snapshot version, when it was pushed, the user's tags, the graph's record."""

    version: str
    pushed_at: dt.datetime
    tags: dict[str, str]
    graph_record: dict[str, Any]
    """``FeatureGraph.to_snapshot()`` of the pushed graph (after a JSON round trip)."""

    @property
    def features(self) -> dict[str, Any]:
        """Feature key -> its entry (import path, spec, versions, fields, deps, tags), upstreams first."""
        features: dict[str, Any] = self.graph_record["features"]
        return features

    @property
    def feature_count(self) -> int:
        """How many features the graph had."""
        return len(self.features)

    def graph(self, *, import_classes: bool = False) -> FeatureGraph:
        """The pushed graph, rebuilt from its specs: the same feature versions, field versions and deps.

        Its classes stand in for the pushed ones (no ``compute``) unless ``import_classes`` finds
        the class at its import path with an unchanged spec.
        """
        from strata.features.graph import FeatureGraph

        return FeatureGraph.from_snapshot(self.graph_record, import_classes=import_classes)

    def to_record(self) -> str:
        """The JSON text stored in the ``record`` column."""
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "pushed_at": self.pushed_at.isoformat(),
                "tags": self.tags,
                "graph": self.graph_record,
            },
            sort_keys=True,
        )

    @classmethod
    def from_record(cls, text: str) -> Snapshot:
        """Read back :meth:`to_record`."""
        from strata.errors import RuntimeFailure

        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise RuntimeFailure(
                f"a pushed snapshot has record format {data.get('format')!r}, not {FORMAT}",
                "upgrade strata to read it",
            )
        return cls(data["version"], dt.datetime.fromisoformat(data["pushed_at"]), data["tags"], data["graph"])

    def summary(self) -> dict[str, Any]:
        """What ``strata graph history`` shows of it."""
        return {
            "version": self.version,
            "pushed_at": self.pushed_at.isoformat(),
            "features": self.feature_count,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class Pushed:
    """What a push did: the snapshot now latest, and whether the push added it (else it was there)."""

    snapshot: Snapshot
    added: bool


def new_snapshot(graph: FeatureGraph, tags: Mapping[str, str], after: Snapshot | None) -> Snapshot:
    """A snapshot of ``graph`` pushed now: later than ``after`` (the latest pushed), even on a coarse clock."""
    record = json.loads(json.dumps(graph.to_snapshot(), sort_keys=True, default=str))
    now = dt.datetime.now(dt.UTC)
    if after is not None and now <= after.pushed_at:
        now = after.pushed_at + dt.timedelta(microseconds=1)
    return Snapshot(record["snapshot_version"], now, dict(tags), record)
