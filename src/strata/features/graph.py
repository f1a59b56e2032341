"""Features and the graph that holds them.

``class Video(st.Feature, spec=st.FeatureSpec(...))`` registers ``Video`` in the active graph,
which lives in a context variable: ``with graph.use(): ...`` makes another graph active, so tests
and migrations can hold several graphs at once. A graph checks itself (unknown upstreams,
cycles, field deps on missing fields, lineage columns) before it is used.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from strata.errors import DefinitionError, FeatureNotFoundError
from strata.features.keys import FeatureKey, FieldKey, feature_key_of
from strata.features.spec import FeatureSpec
from strata.features.versions import definition_hash

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

    import narwhals as nw


class Feature:
    """Base class of every feature. Subclass with ``spec=FeatureSpec(...)``.

    Optional hooks:

    - ``compute(self, inputs)``: make this feature's values for a batch (used by ``strata build``);
    - ``load_input(cls, upstream)``: a custom input loader replacing the lineage joins (see
      :mod:`strata.resolve`).
    """

    spec: ClassVar[FeatureSpec]

    def __init_subclass__(cls, spec: FeatureSpec | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if spec is None:
            return
        if spec.description is None and cls.__doc__:
            object.__setattr__(spec, "description", cls.__doc__.strip().splitlines()[0])
        cls.spec = spec
        current_graph().add(cls)

    @classmethod
    def key(cls) -> FeatureKey:
        """This feature's key."""
        return cls.spec.key

    @classmethod
    def import_path(cls) -> str:
        """``module:QualName``, how snapshots find the class again."""
        return f"{cls.__module__}:{cls.__qualname__}"

    @classmethod
    def load_input(cls, upstream: Mapping[FeatureKey, nw.LazyFrame[Any]]) -> nw.LazyFrame[Any] | None:
        """Override to build the input rows yourself; ``None`` uses the declared lineage."""
        del upstream
        return None


@dataclass(frozen=True)
class FieldInput:
    """One upstream field a field depends on."""

    feature: FeatureKey
    field: FieldKey

    @property
    def dotted(self) -> str:
        """``media.video.audio``: the fully qualified field key used in hashes and causes."""
        return f"{self.feature.dotted}.{self.field.name}"


class FeatureGraph:
    """A set of features and what follows from them: order, versions, snapshots."""

    def __init__(self) -> None:
        self._classes: dict[FeatureKey, type[Feature]] = {}
        self._version = 0

    # -- membership ----------------------------------------------------------------------

    def add(self, cls: type[Feature]) -> None:
        """Register a feature class; a second feature with the same key is an error."""
        key = cls.spec.key
        existing = self._classes.get(key)
        if existing is not None and existing.import_path() != cls.import_path():
            raise DefinitionError(
                f"feature key `{key}` is defined twice: {existing.import_path()} and {cls.import_path()}",
                "give one of them another key",
            )
        for dep in cls.spec.deps:
            upstream = self._classes.get(dep.feature)
            if upstream is not None:
                _check_field_deps(cls.spec, dep.feature, upstream.spec)
        self._classes[key] = cls
        self._changed()

    def add_spec(
        self, spec: FeatureSpec, import_path: str | None = None, *, custom_loader: bool = False
    ) -> type[Feature]:
        """Register a definition without code (rebuilt from a snapshot); return its class.

        ``custom_loader``: the feature had its own ``load_input`` (so its lineages are not
        checked); the stand-in's refuses to load, since the loader is in the code.
        """
        path = import_path or f"strata.snapshot:{spec.key.table_name}"
        module, _, name = path.partition(":")
        namespace: dict[str, Any] = {"__module__": module, "__qualname__": name}
        if custom_loader:
            namespace["load_input"] = classmethod(_stand_in_loader(spec.key, path))
        cls: type[Feature] = type(name.rsplit(".", 1)[-1], (Feature,), namespace)
        cls.spec = spec
        self.add(cls)
        return cls

    def remove(self, key: Any) -> None:
        """Drop a feature (tests and migrations)."""
        del self._classes[feature_key_of(key)]
        self._changed()

    def _changed(self) -> None:
        self._version += 1
        for name in ("_order", "_field_versions"):
            self.__dict__.pop(name, None)

    def __contains__(self, key: object) -> bool:
        try:
            return feature_key_of(key) in self._classes
        except DefinitionError:
            return False

    def __iter__(self) -> Iterator[FeatureKey]:
        return iter(self.topological_order())

    def __len__(self) -> int:
        return len(self._classes)

    def feature(self, key: Any) -> type[Feature]:
        """The class registered under ``key``."""
        fkey = feature_key_of(key)
        try:
            return self._classes[fkey]
        except KeyError:
            known = ", ".join(sorted(map(str, self._classes))) or "none"
            raise FeatureNotFoundError(
                f"no feature `{fkey}` in the graph (features: {known})", "check the key"
            ) from None

    def spec(self, key: Any) -> FeatureSpec:
        """The spec of feature ``key``."""
        return self.feature(key).spec

    @property
    def keys(self) -> list[FeatureKey]:
        """Every feature key, sorted."""
        return sorted(self._classes)

    # -- structure -----------------------------------------------------------------------

    def validate(self) -> None:
        """Raise on unknown upstreams, cycles, missing fields and bad lineage columns."""
        _ = self._order

    def roots(self) -> FeatureGraph:
        """A graph of this one's features that have no upstreams (valid even when others are not)."""
        out = FeatureGraph()
        for cls in self._classes.values():
            if not cls.spec.deps:
                out.add(cls)
        return out

    @cached_property
    def _order(self) -> list[FeatureKey]:
        for key, cls in self._classes.items():
            for dep in cls.spec.deps:
                if dep.feature not in self._classes:
                    raise DefinitionError(
                        f"feature `{key}` depends on `{dep.feature}`, which is not defined",
                        "define it, import the module that does, or fix the key",
                    )
                upstream = self._classes[dep.feature].spec
                _check_field_deps(cls.spec, dep.feature, upstream)
                if not has_custom_loader(cls):
                    _check_lineage(cls.spec, upstream)
        order: list[FeatureKey] = []
        visiting, done = 1, 2
        state: dict[FeatureKey, int] = {}

        def visit(key: FeatureKey, path: list[FeatureKey]) -> None:
            if state.get(key) == done:
                return
            if state.get(key) == visiting:
                cycle = [*path[path.index(key) :], key]
                raise DefinitionError(
                    "dependency cycle: " + " -> ".join(map(str, cycle)), "remove one of these dependencies"
                )
            state[key] = visiting
            for dep in sorted(self._classes[key].spec.deps, key=lambda d: d.feature):
                visit(dep.feature, [*path, key])
            state[key] = done
            order.append(key)

        for key in sorted(self._classes):
            visit(key, [])
        return order

    def topological_order(self) -> list[FeatureKey]:
        """Features with every upstream before its downstreams (ties by key)."""
        return list(self._order)

    def upstream(self, key: Any) -> list[FeatureKey]:
        """Direct upstreams of ``key``."""
        return [d.feature for d in self.spec(key).deps]

    def downstream(self, key: Any, *, transitive: bool = True) -> list[FeatureKey]:
        """Features that depend on ``key`` (directly, or through others), in topological order."""
        target = feature_key_of(key)
        found: set[FeatureKey] = set()
        for fkey in self._order:
            ups = set(self.upstream(fkey))
            if target in ups or (transitive and ups & found):
                found.add(fkey)
        return [k for k in self._order if k in found]

    def field_inputs(self, key: Any, field: str | FieldKey) -> list[FieldInput]:
        """The upstream fields ``key.field`` depends on, sorted by dotted key."""
        spec = self.spec(key)
        fspec = spec.field(field)
        inputs: list[FieldInput] = []
        deps = fspec.deps
        if deps is None:
            for dep in spec.deps:
                upstream = self.spec(dep.feature)
                inputs.extend(FieldInput(dep.feature, f.key) for f in upstream.fields)
        else:
            for fdep in deps:
                upstream = self.spec(fdep.feature)
                names = [f.key for f in upstream.fields] if isinstance(fdep.fields, str) else list(fdep.fields)
                inputs.extend(FieldInput(fdep.feature, name) for name in names)
        unique = {i.dotted: i for i in inputs}
        return [unique[k] for k in sorted(unique)]

    # -- versions ------------------------------------------------------------------------

    @cached_property
    def _field_versions(self) -> dict[tuple[FeatureKey, str], str]:
        versions: dict[tuple[FeatureKey, str], str] = {}
        for key in self._order:
            spec = self.spec(key)
            for fspec in spec.fields:
                parts = ["field", str(key), fspec.key.name, fspec.code_version]
                for item in self.field_inputs(key, fspec.key):
                    parts += [item.dotted, versions[(item.feature, item.field.name)]]
                versions[(key, fspec.key.name)] = definition_hash(parts)
        return versions

    def field_version(self, key: Any, field: str | FieldKey) -> str:
        """Version of one field: its code and, recursively, its inputs' code."""
        return self._field_versions[(feature_key_of(key), FieldKey(field).name)]

    def field_versions(self, key: Any) -> dict[str, str]:
        """Field key -> field version, for one feature."""
        spec = self.spec(key)
        return {f.key.name: self.field_version(spec.key, f.key) for f in spec.fields}

    def feature_version(self, key: Any) -> str:
        """Version of a feature: its field versions, sorted by field key."""
        parts = ["feature"]
        for name, version in sorted(self.field_versions(key).items()):
            parts += [name, version]
        return definition_hash(parts)

    @property
    def snapshot_version(self) -> str:
        """Version of the whole graph: every (feature key, feature version), sorted."""
        parts = ["snapshot"]
        for key in sorted(self._classes):
            parts += [str(key), self.feature_version(key)]
        return definition_hash(parts)

    # -- snapshots -----------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-able record of the graph: specs, import paths and versions, upstreams first.

        Per feature: ``import_path``, ``spec`` (what :meth:`from_snapshot` rebuilds from),
        ``feature_version``, ``fields`` (field key -> ``code_version``, field ``version`` and the
        dotted upstream fields it reads, ``inputs``), ``deps`` (upstream key -> the fields of it
        that some field reads), ``tags`` (the spec's ``metadata``) and ``custom_loader`` (whether
        the class has its own ``load_input``, whose lineages are then not checked). The derived entries are
        there for readers that compare snapshots (diffs, migrations) without rebuilding a graph.
        """
        features = {}
        for key in self.topological_order():
            cls = self._classes[key]
            fields = {}
            used: dict[str, set[str]] = {str(dep.feature): set() for dep in cls.spec.deps}
            for fspec in cls.spec.fields:
                inputs = self.field_inputs(key, fspec.key)
                fields[fspec.key.name] = {
                    "code_version": fspec.code_version,
                    "version": self.field_version(key, fspec.key),
                    "inputs": [item.dotted for item in inputs],
                }
                for item in inputs:
                    used[str(item.feature)].add(item.field.name)
            features[str(key)] = {
                "import_path": cls.import_path(),
                "spec": cls.spec.to_json(),
                "feature_version": self.feature_version(key),
                "fields": fields,
                "deps": {upstream: sorted(names) for upstream, names in sorted(used.items())},
                "tags": cls.spec.metadata,
                "custom_loader": has_custom_loader(cls),
            }
        return {"version": 1, "snapshot_version": self.snapshot_version, "features": features}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], *, import_classes: bool = True) -> FeatureGraph:
        """Rebuild a graph from :meth:`to_snapshot` output.

        Classes are imported by path when their spec is unchanged; otherwise (or with
        ``import_classes=False``) a definition-only class stands in.
        """
        graph = cls()
        for entry in snapshot["features"].values():
            spec = FeatureSpec.from_json(entry["spec"])
            found = _import_feature(entry["import_path"]) if import_classes else None
            if found is not None and found.spec.to_json() == spec.to_json():
                graph.add(found)
            else:
                graph.add_spec(spec, entry["import_path"], custom_loader=entry.get("custom_loader", False))
        return graph

    # -- activation ----------------------------------------------------------------------

    @contextlib.contextmanager
    def use(self) -> Iterator[FeatureGraph]:
        """Make this graph the active one inside the ``with`` block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


_DEFAULT = FeatureGraph()
_ACTIVE: contextvars.ContextVar[FeatureGraph] = contextvars.ContextVar("strata_active_graph", default=_DEFAULT)


def current_graph() -> FeatureGraph:
    """The active graph (the process-wide default unless inside ``graph.use()``)."""
    return _ACTIVE.get()


def has_custom_loader(cls: type[Feature]) -> bool:
    """Whether ``cls`` overrides :meth:`Feature.load_input` (then its lineages are its own business)."""
    return cls.load_input.__func__ is not Feature.load_input.__func__  # type: ignore[attr-defined]


def _stand_in_loader(key: FeatureKey, import_path: str) -> Callable[..., nw.LazyFrame[Any] | None]:
    """``load_input`` of a feature rebuilt from a snapshot whose class had its own loader."""

    def load_input(cls: type[Feature], upstream: Mapping[FeatureKey, nw.LazyFrame[Any]]) -> nw.LazyFrame[Any] | None:
        del cls, upstream
        raise DefinitionError(
            f"`{key}` was rebuilt from a snapshot without its code, and its input loader is in the code",
            f"import its class ({import_path}) to load its inputs",
        )

    return load_input


def _check_field_deps(spec: FeatureSpec, upstream_key: FeatureKey, upstream: FeatureSpec) -> None:
    names = {f.key.name for f in upstream.fields}
    for fspec in spec.fields:
        for fdep in fspec.deps or ():
            if fdep.feature != upstream_key or isinstance(fdep.fields, str):
                continue
            for name in fdep.fields:
                if name.name not in names:
                    raise DefinitionError(
                        f"field `{spec.key}.{fspec.key}` depends on `{upstream_key}.{name}`, "
                        f"but `{upstream_key}` has no such field (fields: {', '.join(sorted(names))})",
                        "fix the field key",
                    )


def _check_lineage(spec: FeatureSpec, upstream: FeatureSpec) -> None:
    dep = spec.dep(upstream.key)
    ids, up_ids = set(spec.id_columns), set(upstream.id_columns)
    kind, on = dep.lineage.kind, set(dep.lineage.on)
    problem = None
    if kind == "identity" and ids != up_ids:
        problem = f"identity lineage needs the same id columns ({sorted(ids)} vs {sorted(up_ids)})"
    elif kind == "expansion" and not (on and on == up_ids and on < ids):
        problem = (
            f"expansion on {sorted(on)} needs on == upstream ids {sorted(up_ids)} and a strict subset of {sorted(ids)}"
        )
    elif kind == "aggregation" and not (on and on == ids and on < up_ids):
        problem = (
            f"aggregation on {sorted(on)} needs on == this feature's ids {sorted(ids)} "
            f"and a strict subset of {sorted(up_ids)}"
        )
    if problem:
        raise DefinitionError(f"`{spec.key}` <- `{upstream.key}`: {problem}", "fix id_columns or the lineage")


def _import_feature(path: str) -> type[Feature] | None:
    module_name, _, qualname = path.partition(":")
    scratch = FeatureGraph()
    try:
        with scratch.use():
            module = importlib.import_module(module_name)
    except ImportError:
        return None
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target if isinstance(target, type) and issubclass(target, Feature) else None


def load_entrypoints(
    modules: list[str],
    root: Path,
    graph: FeatureGraph,
    *,
    before_validate: Callable[[FeatureGraph], None] | None = None,
    check: bool = True,
) -> FeatureGraph:
    """Import the project's feature modules (``features.entrypoints``) into ``graph``.

    ``before_validate`` may add features the modules refer to by key (ingested streams).
    """
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    with graph.use():
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise DefinitionError(
                    f"cannot import feature module `{name}`: {exc}", "check features.entrypoints"
                ) from exc
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Feature)
                    and hasattr(value, "spec")
                    and value.spec.key not in graph
                ):
                    graph.add(value)
    if before_validate is not None:
        before_validate(graph)
    if check:
        graph.validate()
    return graph
