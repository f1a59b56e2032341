"""Declarations: what a feature is made of and what it depends on.

    FeatureSpec(key, id_columns, deps=[FeatureDep | Feature | key], fields=[FieldSpec | name])
    FieldSpec(key, code_version, deps=None | [FieldDep(feature, [field, ...])])
    FeatureDep(feature, lineage=Lineage.identity(), optional=False)

A field without declared deps depends on every field of every upstream feature, so nothing is
ever missed; explicit deps narrow it. Specs are plain frozen values: they serialise to JSON for
snapshots and compare by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from strata.errors import DefinitionError
from strata.features.keys import FeatureKey, FieldKey, feature_key_of

if TYPE_CHECKING:
    from collections.abc import Sequence

ALL = "*"
"""``FieldDep(feature, ALL)``: every field of that feature."""


@dataclass(frozen=True)
class FieldDep:
    """A field's dependency on fields of one upstream feature."""

    feature: FeatureKey
    fields: tuple[FieldKey, ...] | Literal["*"]

    def __init__(self, feature: Any, fields: Sequence[str | FieldKey] | Literal["*"] = ALL) -> None:
        object.__setattr__(self, "feature", feature_key_of(feature))
        if fields == ALL:
            object.__setattr__(self, "fields", ALL)
        else:
            if isinstance(fields, str):
                raise DefinitionError(
                    f"FieldDep({self.feature}, {fields!r}): fields must be a list",
                    f"write FieldDep(..., [{fields!r}])",
                )
            object.__setattr__(self, "fields", tuple(FieldKey(f) for f in fields))

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": str(self.feature),
            "fields": ALL if isinstance(self.fields, str) else [f.name for f in self.fields],
        }


@dataclass(frozen=True)
class FieldSpec:
    """One field of a feature: its key, the version of the code that makes it, its inputs."""

    key: FieldKey
    code_version: str
    deps: tuple[FieldDep, ...] | None

    def __init__(
        self, key: str | FieldKey, code_version: str | int = "1", deps: Sequence[FieldDep] | None = None
    ) -> None:
        object.__setattr__(self, "key", FieldKey(key))
        object.__setattr__(self, "code_version", str(code_version))
        object.__setattr__(self, "deps", None if deps is None else tuple(deps))

    def to_json(self) -> dict[str, Any]:
        deps = None if self.deps is None else [d.to_json() for d in self.deps]
        return {"key": self.key.name, "code_version": self.code_version, "deps": deps}


@dataclass(frozen=True)
class Lineage:
    """How rows of an upstream feature map onto rows of this one.

    - ``identity()``: one to one on the shared id columns (the default);
    - ``expansion(on)``: one upstream row makes many (video -> frames); ``on`` are the upstream's
      id columns, and this feature's id columns extend them;
    - ``aggregation(on)``: many upstream rows make one (frames -> video); ``on`` are this
      feature's id columns, a subset of the upstream's.
    """

    kind: Literal["identity", "expansion", "aggregation"]
    on: tuple[str, ...] = ()

    @classmethod
    def identity(cls) -> Lineage:
        return cls("identity")

    @classmethod
    def expansion(cls, on: Sequence[str]) -> Lineage:
        return cls("expansion", tuple(on))

    @classmethod
    def aggregation(cls, on: Sequence[str]) -> Lineage:
        return cls("aggregation", tuple(on))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "on": list(self.on)}


@dataclass(frozen=True)
class FeatureDep:
    """A dependency on an upstream feature."""

    feature: FeatureKey
    lineage: Lineage = field(default_factory=Lineage.identity)
    optional: bool = False

    def __init__(self, feature: Any, lineage: Lineage | None = None, *, optional: bool = False) -> None:
        object.__setattr__(self, "feature", feature_key_of(feature))
        object.__setattr__(self, "lineage", lineage or Lineage.identity())
        object.__setattr__(self, "optional", optional)

    def to_json(self) -> dict[str, Any]:
        return {"feature": str(self.feature), "lineage": self.lineage.to_json(), "optional": self.optional}


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that defines a feature, apart from the code that computes it."""

    key: FeatureKey
    id_columns: tuple[str, ...]
    deps: tuple[FeatureDep, ...]
    fields: tuple[FieldSpec, ...]
    description: str | None
    metadata: dict[str, Any]

    def __init__(
        self,
        key: str | Sequence[str] | FeatureKey,
        *,
        id_columns: Sequence[str] = ("sample_uid",),
        deps: Sequence[Any] = (),
        fields: Sequence[FieldSpec | str] = ("default",),
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        fkey = FeatureKey(key if isinstance(key, str | FeatureKey) else tuple(key))
        object.__setattr__(self, "key", fkey)
        ids = tuple(id_columns)
        if not ids or len(set(ids)) != len(ids):
            raise DefinitionError(
                f"feature `{fkey}` needs distinct, non-empty id_columns", "e.g. id_columns=['sample_uid']"
            )
        for column in ids:
            _check_column(column, fkey)
        object.__setattr__(self, "id_columns", ids)
        object.__setattr__(self, "deps", tuple(d if isinstance(d, FeatureDep) else FeatureDep(d) for d in deps))
        specs = tuple(f if isinstance(f, FieldSpec) else FieldSpec(f) for f in fields)
        if not specs:
            raise DefinitionError(f"feature `{fkey}` has no fields", "declare at least one FieldSpec")
        names = [f.key.name for f in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DefinitionError(
                f"feature `{fkey}` declares field `{duplicates[0]}` twice", "give each field its own key"
            )
        upstreams = [d.feature for d in self.deps]
        if len(set(upstreams)) != len(upstreams):
            raise DefinitionError(f"feature `{fkey}` depends on the same upstream twice", "list each upstream once")
        if fkey in upstreams:
            raise DefinitionError(f"feature `{fkey}` depends on itself", "remove the self-dependency")
        for spec in specs:
            for dep in spec.deps or ():
                if dep.feature not in upstreams:
                    raise DefinitionError(
                        f"field `{fkey}.{spec.key}` depends on `{dep.feature}`, which is not an upstream of `{fkey}`",
                        f"add {dep.feature} to deps=[...] of `{fkey}`",
                    )
        object.__setattr__(self, "fields", specs)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "metadata", dict(metadata or {}))

    def field(self, key: str | FieldKey) -> FieldSpec:
        """The field called ``key``."""
        name = FieldKey(key).name
        for spec in self.fields:
            if spec.key.name == name:
                return spec
        known = ", ".join(f.key.name for f in self.fields)
        raise DefinitionError(f"feature `{self.key}` has no field `{name}` (fields: {known})", "check the field key")

    def dep(self, key: FeatureKey) -> FeatureDep:
        """The dependency on upstream ``key``."""
        return next(d for d in self.deps if d.feature == key)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "id_columns": list(self.id_columns),
            "deps": [d.to_json() for d in self.deps],
            "fields": [f.to_json() for f in self.fields],
            "description": self.description,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        """Rebuild a spec from :meth:`to_json` output."""
        deps = [
            FeatureDep(d["feature"], Lineage(d["lineage"]["kind"], tuple(d["lineage"]["on"])), optional=d["optional"])
            for d in data["deps"]
        ]
        fields = [
            FieldSpec(
                f["key"],
                f["code_version"],
                None if f["deps"] is None else [FieldDep(d["feature"], d["fields"]) for d in f["deps"]],
            )
            for f in data["fields"]
        ]
        return cls(
            data["key"],
            id_columns=data["id_columns"],
            deps=deps,
            fields=fields,
            description=data.get("description"),
            metadata=data.get("metadata") or {},
        )


def _check_column(column: str, key: FeatureKey) -> None:
    """Refuse an id column no row could carry: empty, or one of strata's own ``strata_`` names.

    Anything else (quotes, spaces, semicolons, SQL keywords) is a name every store quotes.
    """
    if not isinstance(column, str) or not column or column.startswith("strata_"):
        raise DefinitionError(
            f"feature `{key}`: `{column}` cannot be an id column",
            "use a non-empty column name not starting with `strata_`",
        )
