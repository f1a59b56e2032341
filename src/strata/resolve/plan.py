"""What a store needs to know to version one feature: its columns and the inputs of its fields.

Stored columns of a feature, next to the id columns and the user's own columns:

    strata_dv__<field>       data version of the field (what downstream features see)
    strata_cv__<field>       code_version the field was computed with (a non-root field's carries
                             a hash of its input list: ``FieldPlan.stored_code_version``)
    strata_in__<input>       data version of each upstream field used, as it was when computed
    strata_feature_version   strata_snapshot_version   strata_seq   strata_written_at   strata_deleted

A field is stale when its code_version (or, for a non-root field, its input list) differs from
the code, or when any input it depends on now has another data version upstream. That comparison
needs no hashing: hashes are computed only for the rows that are added or changed, to give their
new data versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from strata.features.graph import FeatureGraph, FieldInput
from strata.features.keys import FeatureKey, FieldKey
from strata.features.versions import definition_hash, encode

if TYPE_CHECKING:
    from strata.features.spec import FeatureSpec, Lineage

SYSTEM_PREFIX = "strata_"
DV = "strata_dv__"
CV = "strata_cv__"
IN = "strata_in__"
CAUSE = "strata_cause__"
FEATURE_VERSION = "strata_feature_version"
SNAPSHOT_VERSION = "strata_snapshot_version"
SEQ = "strata_seq"
WRITTEN_AT = "strata_written_at"
DELETED = "strata_deleted"

MIXED = "strata:mixed"
"""What a parent's stored column reads as when its children disagree on it (no version looks like this)."""

CAUSE_CODE = "code"
"""Cause of a change: this field's code_version changed."""
CAUSE_DATA = "data"
"""Cause of a change in a root field: the data version the caller supplied changed."""


INPUTS_MARK = "#in:"
"""What joins a non-root field's code version and the hash of its input list in ``strata_cv__<field>``."""
INPUTS_DIGITS = 8
"""Hex digits kept of the hash of an input list."""
_STORED = re.compile(rf"(.*){re.escape(INPUTS_MARK)}[0-9a-f]{{{INPUTS_DIGITS}}}", re.DOTALL)


def stored_code_version(code_version: str, inputs: tuple[FieldInput, ...]) -> str:
    """What ``strata_cv__<field>`` holds for a non-root field: ``<code_version>#in:<hash of its input list>``.

    Input columns are the feature's, shared by its fields: when a field starts reading an input a
    sibling reads already, or stops reading one, no stored input differs, but this value does.
    """
    digest = definition_hash(["inputs", *sorted(i.dotted for i in inputs)])
    return f"{code_version}{INPUTS_MARK}{digest[:INPUTS_DIGITS]}"


def shown_code_version(stored: str | None) -> str | None:
    """The code version a stored ``strata_cv__<field>`` value names, without its input list's hash (for users)."""
    if stored is None:
        return None
    match = _STORED.fullmatch(stored)
    return match.group(1) if match else stored


def input_column(item: FieldInput) -> str:
    """``strata_in__media__video__audio`` for input ``media/video.audio``."""
    return f"{IN}{item.feature.table_name}__{item.field.name}"


@dataclass(frozen=True)
class UpstreamPlan:
    """One upstream feature as this feature reads it."""

    key: FeatureKey
    table: str
    id_columns: tuple[str, ...]
    lineage: Lineage
    optional: bool
    fields: tuple[str, ...]
    """Upstream fields used by any field of this feature."""

    def input_columns(self) -> dict[str, str]:
        """Upstream field -> input column name in this feature."""
        return {f: input_column(FieldInput(self.key, FieldKey(f))) for f in self.fields}


@dataclass(frozen=True)
class FieldPlan:
    """One field: its code version and the inputs it hashes, in hash order.

    ``code_version`` is the user's (what data versions hash); ``stored_code_version`` what the
    store writes to and compares with ``strata_cv__<field>``: for a field of a feature with
    upstreams, the code version with its input list (:func:`stored_code_version`), else the same.
    """

    name: str
    code_version: str
    inputs: tuple[FieldInput, ...]
    stored_code_version: str

    @property
    def current_code_versions(self) -> tuple[str, ...]:
        """Stored code versions that are this field's current code.

        The one written, and for a non-root field the plain code version: rows written before code
        versions carried input lists count as current, and get the input-list check from their next write.
        """
        if self.stored_code_version == self.code_version:
            return (self.code_version,)
        return (self.stored_code_version, self.code_version)

    @property
    def dv_column(self) -> str:
        return f"{DV}{self.name}"

    @property
    def cv_column(self) -> str:
        return f"{CV}{self.name}"

    @property
    def cause_column(self) -> str:
        return f"{CAUSE}{self.name}"

    def hash_parts(self) -> list[tuple[str, str | None]]:
        """Hash input as (constant prefix, input column or None) pairs, in order.

        The hashed string is each constant followed, when a column is named, by that column's
        value encoded as ``<byte length>:<value>`` (``-1:`` when null).
        """
        parts: list[tuple[str, str | None]] = [(encode([self.name, self.code_version]), None)]
        parts.extend((encode([item.dotted]), input_column(item)) for item in self.inputs)
        return parts


@dataclass(frozen=True)
class FeaturePlan:
    """Everything a store needs about one feature under one graph."""

    spec: FeatureSpec
    feature_version: str
    snapshot_version: str
    fields: tuple[FieldPlan, ...]
    upstreams: tuple[UpstreamPlan, ...]

    @classmethod
    def build(cls, graph: FeatureGraph, key: FeatureKey) -> FeaturePlan:
        """The plan of ``key`` under ``graph`` (which must validate)."""
        graph.validate()
        spec = graph.spec(key)
        fields = tuple(cls._field(graph, key, f.key.name, f.code_version, bool(spec.deps)) for f in spec.fields)
        used: dict[FeatureKey, set[str]] = {}
        for fplan in fields:
            for item in fplan.inputs:
                used.setdefault(item.feature, set()).add(item.field.name)
        upstreams = tuple(
            UpstreamPlan(
                dep.feature,
                dep.feature.table_name,
                graph.spec(dep.feature).id_columns,
                dep.lineage,
                dep.optional,
                tuple(sorted(used.get(dep.feature, set()))),
            )
            for dep in spec.deps
        )
        return cls(spec, graph.feature_version(key), graph.snapshot_version, fields, upstreams)

    @staticmethod
    def _field(graph: FeatureGraph, key: FeatureKey, name: str, code_version: str, upstreams: bool) -> FieldPlan:
        inputs = tuple(graph.field_inputs(key, name))
        stored = stored_code_version(code_version, inputs) if upstreams else code_version
        return FieldPlan(name, code_version, inputs, stored)

    @property
    def key(self) -> FeatureKey:
        return self.spec.key

    @property
    def table(self) -> str:
        return self.spec.key.table_name

    @property
    def id_columns(self) -> tuple[str, ...]:
        return self.spec.id_columns

    @property
    def is_root(self) -> bool:
        return not self.upstreams

    @cached_property
    def input_columns(self) -> tuple[str, ...]:
        """Every input column, sorted."""
        return tuple(sorted({input_column(i) for f in self.fields for i in f.inputs}))

    @property
    def dv_columns(self) -> tuple[str, ...]:
        return tuple(f.dv_column for f in self.fields)

    @property
    def cv_columns(self) -> tuple[str, ...]:
        return tuple(f.cv_column for f in self.fields)

    @property
    def resolve_ids(self) -> tuple[str, ...]:
        """Ids increments are keyed by: the parent ids for an expansion, else this feature's ids."""
        for up in self.upstreams:
            if up.lineage.kind == "expansion":
                return up.lineage.on
        return self.id_columns

    @property
    def child_ids(self) -> tuple[str, ...]:
        """For an expansion, the id columns a child adds to its parent's; else nothing.

        A stored row whose child ids are all null says "this parent expanded into no children":
        it is kept as a deleted row (never read as a sample) that records what the parent was
        computed from, so the parent is not computed again until its inputs change.
        """
        return tuple(c for c in self.id_columns if c not in self.resolve_ids)
