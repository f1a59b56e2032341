"""What changed between two feature graphs, feature by feature and field by field.

:func:`diff_graphs` compares an old graph with a new one (either may be rebuilt from a pushed
snapshot, ``Snapshot.graph()``) and returns a :class:`GraphDiff`: one :class:`FeatureDiff` per
feature that was added, removed, changed or *reached*, upstreams first. A change starts somewhere
(*own* changes: a field added or removed, a code version bumped, a field's inputs edited, a
dependency or the class, id columns or tags edited) and reaches downstream through field-level
lineage: a field whose own definition is untouched but reads, directly or through others, a
changed field gets a new field version; it is listed as ``reached``, with the changes that reach
it. Each own change names every downstream feature and field it reaches (:class:`Reach`).

A field version changes exactly when its code version, its inputs or an input's version changes,
so every field present in both graphs with another version appears here, as ``changed`` or
``reached`` (:meth:`GraphDiff.fields_with_new_versions` lists them for a migration to walk).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from strata.features.graph import FeatureGraph, has_custom_loader

if TYPE_CHECKING:
    from collections.abc import Iterable

    from strata.features.keys import FeatureKey
    from strata.features.spec import FeatureDep

FeatureKind = Literal["added", "removed", "changed", "reached"]
FieldKind = Literal["added", "removed", "changed", "reached"]
DepKind = Literal["added", "removed", "changed"]
ORDER: tuple[FeatureKind, ...] = ("added", "removed", "changed", "reached")
"""The kinds, in the order summaries count them."""


@dataclass(frozen=True)
class Reach:
    """The downstream features and fields whose versions follow from a change, upstreams first."""

    features: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    """``feature.field`` keys (the feature key as written, ``media/video.audio``)."""

    def __bool__(self) -> bool:
        return bool(self.features)

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "fields": list(self.fields)}


@dataclass(frozen=True)
class FieldDiff:
    """One field that is new, gone, edited (``changed``) or has a new version through its inputs (``reached``).

    ``changed``: its code version or its inputs differ. ``reached``: neither does, but an upstream
    field it reads changed; ``reached_by`` names the own changes upstream that reach it.
    ``reach``: what this field's own change reaches downstream (empty for a ``reached`` field:
    its origins' reach already holds it).
    """

    feature: str
    field: str
    kind: FieldKind
    old_code_version: str | None
    new_code_version: str | None
    old_version: str | None
    new_version: str | None
    inputs_added: tuple[str, ...] = ()
    inputs_removed: tuple[str, ...] = ()
    reached_by: tuple[str, ...] = ()
    reach: Reach = Reach()

    @property
    def dotted(self) -> str:
        """``feature.field``."""
        return f"{self.feature}.{self.field}"

    @property
    def code_changed(self) -> bool:
        """Whether the code version differs (a field in both graphs)."""
        return self.kind in ("changed", "reached") and self.old_code_version != self.new_code_version

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "kind": self.kind,
            "code_version": {"old": self.old_code_version, "new": self.new_code_version},
            "version": {"old": self.old_version, "new": self.new_version},
            "inputs_added": list(self.inputs_added),
            "inputs_removed": list(self.inputs_removed),
            "reached_by": list(self.reached_by),
            "reach": self.reach.to_json(),
        }


@dataclass(frozen=True)
class DepDiff:
    """An upstream dependency added, removed, or with another lineage or optionality (``changed``)."""

    upstream: str
    kind: DepKind
    old: str | None
    """The old lineage as text (``identity``, ``expansion on sample_uid``, ``…, optional``), None when added."""
    new: str | None

    def to_json(self) -> dict[str, Any]:
        return {"upstream": self.upstream, "kind": self.kind, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class AttributeChange:
    """A definition attribute that changes no version.

    ``class`` (import path), ``id_columns``, ``tags``, ``custom_loader`` (an own ``load_input``).
    """

    name: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class FeatureDiff:
    """One feature that differs between the graphs.

    ``fields`` lists its fields that differ (every field of an added or removed feature);
    ``reach`` is the union of what its own changes reach (for a removed feature: in the old
    graph, what depended on it).
    """

    key: str
    kind: FeatureKind
    old_version: str | None
    new_version: str | None
    fields: tuple[FieldDiff, ...] = ()
    deps: tuple[DepDiff, ...] = ()
    attributes: tuple[AttributeChange, ...] = ()
    reach: Reach = Reach()

    def field_diff(self, name: str) -> FieldDiff:
        """The entry of field ``name`` (KeyError when it did not change)."""
        for item in self.fields:
            if item.field == name:
                return item
        raise KeyError(f"field `{name}` of `{self.key}` did not change")

    def fields_of(self, *kinds: FieldKind) -> list[FieldDiff]:
        """Its field entries of the given kinds."""
        return [f for f in self.fields if f.kind in kinds]

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.key,
            "kind": self.kind,
            "version": {"old": self.old_version, "new": self.new_version},
            "fields": [f.to_json() for f in self.fields],
            "deps": [d.to_json() for d in self.deps],
            "attributes": [a.to_json() for a in self.attributes],
            "reach": self.reach.to_json(),
        }


@dataclass(frozen=True)
class GraphDiff:
    """Every feature that differs from the old graph (``old_version``) to the new one, upstreams first.

    Features follow the new graph's order; a removed feature comes right after the features
    it read (the old graph's order among the removed).
    """

    old_version: str
    new_version: str
    features: tuple[FeatureDiff, ...]

    def __bool__(self) -> bool:
        """Whether anything differs."""
        return bool(self.features)

    def feature(self, key: str) -> FeatureDiff:
        """The entry of feature ``key`` (KeyError when it is the same in both graphs)."""
        for item in self.features:
            if item.key == str(key):
                return item
        raise KeyError(f"feature `{key}` is the same in both graphs")

    def of_kind(self, *kinds: FeatureKind) -> list[FeatureDiff]:
        """The feature entries of the given kinds, in order."""
        return [f for f in self.features if f.kind in kinds]

    def counts(self) -> dict[str, int]:
        """How many features were added, removed, changed and reached."""
        return {kind: len(self.of_kind(kind)) for kind in ORDER}

    def fields_with_new_versions(self) -> list[FieldDiff]:
        """Fields in both graphs with another field version (``changed`` or ``reached``), upstreams first.

        What a migration walks: each needs its stored samples recomputed or its provenance
        reconciled to the new version. (Their samples look stale to an increment only once the
        inputs' data changes: a ``reached`` field follows its upstream's recompute.)
        """
        return [f for feature in self.features for f in feature.fields if f.kind in ("changed", "reached")]

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.old_version,
            "to": self.new_version,
            "differs": bool(self),
            "counts": self.counts(),
            "features": [f.to_json() for f in self.features],
        }


class PushedGraph(Protocol):
    """Anything a graph is rebuilt from, such as a pushed ``Snapshot``."""

    def graph(self) -> FeatureGraph: ...


def diff_graphs(old: FeatureGraph | PushedGraph, new: FeatureGraph | PushedGraph) -> GraphDiff:
    """What changed from ``old`` to ``new``: graphs, or snapshots (rebuilt). Both are validated first."""
    graphs = [_graph_of(side) for side in (old, new)]
    for graph in graphs:
        graph.validate()
    return _Differ(*graphs).run()


def _graph_of(side: FeatureGraph | PushedGraph) -> FeatureGraph:
    return side if isinstance(side, FeatureGraph) else side.graph()


def union_order(old: FeatureGraph, new: FeatureGraph) -> list[str]:
    """Every feature key of both graphs: the new graph's order, a removed one after the last feature it read."""
    order = [str(k) for k in new.topological_order()]
    for key in old.topological_order():
        if key not in new:
            ups = [str(u) for u in old.upstream(key)]
            order.insert(max((order.index(u) for u in ups if u in order), default=-1) + 1, str(key))
    return order


Node = tuple[str, str]
"""``(feature key, field key)``."""


class _Lineage:
    """Field-level lineage of one graph: who reads each field, and the versions."""

    def __init__(self, graph: FeatureGraph) -> None:
        self.graph = graph
        self.order = [str(k) for k in graph.topological_order()]
        self.rank = {key: index for index, key in enumerate(self.order)}
        self.keys: dict[str, FeatureKey] = {str(k): k for k in graph.keys}
        self.inputs: dict[Node, tuple[str, ...]] = {}
        self.readers: dict[Node, list[Node]] = {}
        for key in graph.topological_order():
            for fspec in graph.spec(key).fields:
                node = (str(key), fspec.key.name)
                items = graph.field_inputs(key, fspec.key)
                self.inputs[node] = tuple(f"{i.feature}.{i.field.name}" for i in items)
                for item in items:
                    self.readers.setdefault((str(item.feature), item.field.name), []).append(node)

    def fields(self, key: str) -> list[str]:
        return [f.key.name for f in self.graph.spec(self.keys[key]).fields]

    def code_version(self, node: Node) -> str:
        return self.graph.spec(self.keys[node[0]]).field(node[1]).code_version

    def version(self, node: Node) -> str:
        return self.graph.field_version(self.keys[node[0]], node[1])

    def downstream(self, origins: Iterable[Node]) -> list[Node]:
        """Every field reading one of ``origins``, directly or through others (origins excluded)."""
        seen: set[Node] = set()
        stack = list(origins)
        while stack:
            for reader in self.readers.get(stack.pop(), ()):
                if reader not in seen:
                    seen.add(reader)
                    stack.append(reader)
        return sorted(seen, key=lambda n: (self.rank[n[0]], self.fields(n[0]).index(n[1])))

    def reach(self, origins: Iterable[Node]) -> Reach:
        nodes = self.downstream(origins)
        features = list(dict.fromkeys(n[0] for n in nodes))
        return Reach(tuple(features), tuple(f"{a}.{b}" for a, b in nodes))


class _Differ:
    def __init__(self, old: FeatureGraph, new: FeatureGraph) -> None:
        self.old, self.new = _Lineage(old), _Lineage(new)
        self.origins: dict[Node, Reach] = {}
        """Own changes -> their reach (in the new graph; a removed one: in the old)."""

    def run(self) -> GraphDiff:
        entries: dict[str, FeatureDiff | None] = {}
        for key in self.new.order:
            if key not in self.old.keys:
                entries[key] = self._added(key)
        for key in self.old.order:
            if key not in self.new.keys:
                entries[key] = self._removed(key)
        for key in self.new.order:
            if key in self.old.keys:
                own = self._own(key)
                if own is not None:
                    entries[key] = own
        reached_by = self._reached_by()
        for key in self.new.order:
            if key in self.old.keys:
                entries[key] = self._with_reached(key, entries.get(key), reached_by)
        found = (entries.get(k) for k in union_order(self.old.graph, self.new.graph))
        ordered = tuple(entry for entry in found if entry is not None)
        return GraphDiff(self.old.graph.snapshot_version, self.new.graph.snapshot_version, ordered)

    def _whole(self, key: str, side: _Lineage, kind: Literal["added", "removed"]) -> FeatureDiff:
        """An added feature (``side`` is the new graph) or a removed one (the old): every field and dep."""
        fields = []
        for name in side.fields(key):
            node = (key, name)
            reach = side.reach([node])
            self.origins[node] = reach
            old_code, new_code = _ends(kind, side.code_version(node))
            old_version, new_version = _ends(kind, side.version(node))
            fields.append(FieldDiff(key, name, kind, old_code, new_code, old_version, new_version, reach=reach))
        spec = side.graph.spec(side.keys[key])
        deps = tuple(DepDiff(str(d.feature), kind, *_ends(kind, _lineage(d))) for d in spec.deps)
        old_version, new_version = _ends(kind, side.graph.feature_version(side.keys[key]))
        return FeatureDiff(
            key,
            kind,
            old_version,
            new_version,
            fields=tuple(fields),
            deps=deps,
            reach=side.reach((key, name) for name in side.fields(key)),
        )

    def _added(self, key: str) -> FeatureDiff:
        return self._whole(key, self.new, "added")

    def _removed(self, key: str) -> FeatureDiff:
        return self._whole(key, self.old, "removed")

    def _own(self, key: str) -> FeatureDiff | None:
        """The own changes of a feature in both graphs (its reached fields come later), or None."""
        old_names, new_names = self.old.fields(key), self.new.fields(key)
        fields: list[FieldDiff] = []
        for name in new_names:
            node = (key, name)
            if name not in old_names:
                reach = self.new.reach([node])
                self.origins[node] = reach
                code, version = self.new.code_version(node), self.new.version(node)
                fields.append(FieldDiff(key, name, "added", None, code, None, version, reach=reach))
                continue
            old_inputs, new_inputs = set(self.old.inputs[node]), set(self.new.inputs[node])
            old_code, new_code = self.old.code_version(node), self.new.code_version(node)
            if old_code != new_code or old_inputs != new_inputs:
                reach = self.new.reach([node])
                self.origins[node] = reach
                fields.append(
                    FieldDiff(
                        key,
                        name,
                        "changed",
                        old_code,
                        new_code,
                        self.old.version(node),
                        self.new.version(node),
                        inputs_added=tuple(sorted(new_inputs - old_inputs)),
                        inputs_removed=tuple(sorted(old_inputs - new_inputs)),
                        reach=reach,
                    )
                )
        for name in old_names:
            if name not in new_names:
                node = (key, name)
                reach = self.old.reach([node])
                self.origins[node] = reach
                code, version = self.old.code_version(node), self.old.version(node)
                fields.append(FieldDiff(key, name, "removed", code, None, version, None, reach=reach))
        deps = self._deps(key)
        attributes = self._attributes(key)
        if not (fields or deps or attributes):
            return None
        return FeatureDiff(
            key,
            "changed",
            *self._feature_versions(key),
            fields=tuple(fields),
            deps=deps,
            attributes=attributes,
            reach=_union([f.reach for f in fields], self.new),
        )

    def _feature_versions(self, key: str) -> tuple[str, str]:
        """The old and the new feature version of a feature in both graphs."""
        return self.old.graph.feature_version(self.old.keys[key]), self.new.graph.feature_version(self.new.keys[key])

    def _deps(self, key: str) -> tuple[DepDiff, ...]:
        old = {str(d.feature): _lineage(d) for d in self.old.graph.spec(self.old.keys[key]).deps}
        new = {str(d.feature): _lineage(d) for d in self.new.graph.spec(self.new.keys[key]).deps}
        out = [DepDiff(up, "added", None, text) for up, text in new.items() if up not in old]
        out += [DepDiff(up, "removed", text, None) for up, text in old.items() if up not in new]
        out += [DepDiff(up, "changed", old[up], text) for up, text in new.items() if up in old and old[up] != text]
        return tuple(out)

    def _attributes(self, key: str) -> tuple[AttributeChange, ...]:
        old_cls, new_cls = self.old.graph.feature(self.old.keys[key]), self.new.graph.feature(self.new.keys[key])
        pairs = [
            ("class", old_cls.import_path(), new_cls.import_path()),
            ("id_columns", list(old_cls.spec.id_columns), list(new_cls.spec.id_columns)),
            ("tags", dict(old_cls.spec.metadata), dict(new_cls.spec.metadata)),
            ("custom_loader", has_custom_loader(old_cls), has_custom_loader(new_cls)),
        ]
        return tuple(AttributeChange(name, a, b) for name, a, b in pairs if a != b)

    def _reached_by(self) -> dict[Node, list[str]]:
        """Field (new graph) -> the own changes that reach it, in the order they were found."""
        found: dict[Node, list[str]] = {}
        for origin, reach in self.origins.items():
            for dotted in reach.fields:
                feature, _, name = dotted.rpartition(".")
                found.setdefault((feature, name), []).append(f"{origin[0]}.{origin[1]}")
        return found

    def _with_reached(
        self, key: str, entry: FeatureDiff | None, reached_by: dict[Node, list[str]]
    ) -> FeatureDiff | None:
        """``entry`` with the fields of ``key`` whose versions changed only through their inputs."""
        own = {f.field: f for f in entry.fields} if entry is not None else {}
        fields: list[FieldDiff] = []
        for name in self.new.fields(key):
            node = (key, name)
            if name in own:
                item = own[name]
                origins = tuple(sorted(set(reached_by.get(node, ()))))
                fields.append(replace(item, reached_by=origins) if origins else item)
                continue
            if name not in self.old.fields(key) or self.old.version(node) == self.new.version(node):
                continue
            code = self.new.code_version(node)
            fields.append(
                FieldDiff(
                    key,
                    name,
                    "reached",
                    code,
                    code,
                    self.old.version(node),
                    self.new.version(node),
                    reached_by=tuple(sorted(set(reached_by.get(node, ())))),
                )
            )
        fields += [f for f in own.values() if f.kind == "removed"]
        if entry is None:
            if not fields:
                return None
            return FeatureDiff(key, "reached", *self._feature_versions(key), fields=tuple(fields))
        return replace(entry, fields=tuple(fields))


def _union(reaches: list[Reach], side: _Lineage) -> Reach:
    """One reach holding every feature and field of ``reaches``, upstreams first (removed ones last)."""
    fields = list(dict.fromkeys(f for r in reaches for f in r.fields))
    features = list(dict.fromkeys(k for r in reaches for k in r.features))

    def rank(key: str) -> int:
        return side.rank.get(key, len(side.rank))

    features.sort(key=rank)
    fields.sort(key=lambda dotted: rank(dotted.rpartition(".")[0]))
    return Reach(tuple(features), tuple(fields))


def _ends(kind: Literal["added", "removed"], value: str) -> tuple[str | None, str | None]:
    """``(None, value)`` for something added, ``(value, None)`` for something removed."""
    return (None, value) if kind == "added" else (value, None)


def _lineage(dep: FeatureDep) -> str:
    """``identity``, ``expansion on sample_uid``, with ``, optional`` when it is."""
    text = dep.lineage.kind + (f" on {', '.join(dep.lineage.on)}" if dep.lineage.on else "")
    return text + (", optional" if dep.optional else "")
