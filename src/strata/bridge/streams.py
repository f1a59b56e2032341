"""Singer streams as root features: names, column types, and the definitions ingest recorded.

A stream becomes the root feature ``<key_prefix><stream>`` (characters a key cannot hold become
``_``). When the project's feature modules define that key, the definition stands and is
checked against the stream (id columns = key properties, every field a property). Otherwise
``target-strata`` defines it from the stream's SCHEMA — key properties are the id columns, every
other property whose name can be a field key is a field (``_sdc_*`` columns are kept as plain
columns) — and records the definition in ``.strata/streams.json`` so every later command (and
downstream features naming the key) sees it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from strata.errors import DefinitionError, UsageError
from strata.features.spec import FeatureSpec, FieldSpec
from strata.project.files import write_atomic

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from strata.features.graph import FeatureGraph
    from strata.project.project import Project

STREAMS_FILE = "streams.json"
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEY_CHAR = re.compile(r"[^A-Za-z0-9_/-]")
IMPORT_MODULE = "strata.streams"


def streams_path(project: Project) -> Path:
    """Where ingest records the definitions it made: ``.strata/streams.json``."""
    return project.system_dir / STREAMS_FILE


def recorded_specs(project: Project) -> dict[str, dict[str, Any]]:
    """The stream definitions ingest recorded, by feature key."""
    path = streams_path(project)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})", "delete it; the next ingest writes it again") from None
    return data if isinstance(data, dict) else {}


def record_spec(project: Project, spec: FeatureSpec) -> None:
    """Remember a stream's definition (atomically; other streams' entries are kept)."""
    specs = recorded_specs(project)
    specs[str(spec.key)] = spec.to_json()
    project.system_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(streams_path(project), json.dumps(specs, indent=2, sort_keys=True) + "\n")


def add_stream_features(project: Project, graph: FeatureGraph) -> None:
    """Add the recorded stream features the code does not define itself."""
    for key, data in recorded_specs(project).items():
        if key in graph:
            continue
        spec = FeatureSpec.from_json(data)
        graph.add_spec(spec, import_path=f"{IMPORT_MODULE}:{spec.key.table_name}")


def feature_key(stream: str, prefix: str = "") -> str:
    """``<prefix><stream>`` with characters a feature key cannot hold replaced by ``_``."""
    key = _KEY_CHAR.sub("_", f"{prefix}{stream}").strip("/")
    parts = [p if p[:1].isalnum() else f"s{p}" for p in key.split("/") if p]
    if not parts:
        raise UsageError(f"stream `{stream}` gives no usable feature key", "set key_prefix in target-strata's config")
    return "/".join(parts)


def is_field_name(name: str) -> bool:
    """Whether a property name can be a field key as it is (``_sdc_*``, ``strata_*``, ``a__b`` cannot)."""
    return bool(_FIELD.fullmatch(name)) and not name.startswith("strata_") and "__" not in name


def stream_fields(properties: Iterable[str]) -> dict[str, str]:
    """Field key -> property, for every property that can be a field.

    A field key never holds ``__`` (it separates feature and field in input column names), so a
    property that does (Salesforce's ``Amount__c``) is the field with each run of ``_`` made one
    (``Amount_c``); its values stay in the column ``Amount__c``. When that name is a property of
    its own, or another property gives it too, the property named so as it is keeps it and the
    others stay plain columns.
    """
    names = list(properties)
    fields = {name: name for name in names if is_field_name(name)}
    for name in names:
        if "__" in name and not name.startswith("strata_"):
            field = re.sub("_+", "_", name)
            if is_field_name(field) and field not in fields:
                fields[field] = name
    order = {name: i for i, name in enumerate(names)}
    return dict(sorted(fields.items(), key=lambda item: order[item[1]]))


def spec_for_stream(key: str, stream: str, properties: dict[str, Any], key_properties: list[str]) -> FeatureSpec:
    """A root feature for a stream that no code defines."""
    if not key_properties:
        raise DefinitionError(
            f"stream `{stream}` has no key properties, so its records cannot become samples",
            "set `table-key-properties` in the extractor's metadata, or define the feature in code",
        )
    fields = [FieldSpec(name) for name, prop in stream_fields(properties).items() if prop not in key_properties]
    if not fields:
        raise DefinitionError(
            f"stream `{stream}` has no property besides its keys that can be a field",
            "select more properties, or define the feature in code",
        )
    return FeatureSpec(
        key,
        id_columns=key_properties,
        fields=fields,
        description=f"records of the Singer stream `{stream}`",
        metadata={"singer_stream": stream},
    )


def check_spec(spec: FeatureSpec, stream: str, properties: dict[str, Any], key_properties: list[str]) -> None:
    """A feature defined in code must fit the stream it receives."""
    if spec.deps:
        raise DefinitionError(
            f"stream `{stream}` goes to `{spec.key}`, which has upstreams; target-strata writes root features only",
            "give the stream another key (key_prefix) or make the feature a root",
        )
    if key_properties and sorted(key_properties) != sorted(spec.id_columns):
        raise DefinitionError(
            f"stream `{stream}` has key properties {key_properties}, but `{spec.key}` has id columns "
            f"{list(spec.id_columns)}",
            "make them the same",
        )
    missing = [c for c in spec.id_columns if c not in properties]
    missing += [f.key.name for f in spec.fields if f.key.name not in stream_fields(properties)]
    if missing:
        raise DefinitionError(
            f"stream `{stream}` has no propert{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} "
            f"that `{spec.key}` needs",
            "select them in the extractor, or change the feature's fields",
        )


# -- column types -------------------------------------------------------------------------

_SCALARS = {"integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "string": "VARCHAR"}


def column_type(schema: Any) -> str:
    """The DuckDB type a JSON-schema property is stored as.

    Scalars get their type; an array whose ``items`` are one scalar type is a list of it
    (``VARCHAR[]``: a Polars ``List(String)`` in ``compute``); anything else nested (objects,
    arrays of objects or of untyped items) is JSON text.
    """
    options = _types(schema)
    if options == ["array"]:
        item = _types(schema.get("items"))
        if len(item) == 1 and item[0] in _SCALARS:
            return f"{_SCALARS[item[0]]}[]"
        if set(item) == {"integer", "number"}:
            return "DOUBLE[]"
        return "JSON"
    if len(options) == 1 and options[0] in _SCALARS:
        return _SCALARS[options[0]]
    if set(options) == {"integer", "number"}:
        return "DOUBLE"
    return "JSON"


def _types(schema: Any) -> list[str]:
    """The JSON types a schema allows, ``null`` left out (from ``type``, ``anyOf`` and ``oneOf``)."""
    if not isinstance(schema, dict):
        return []
    kinds = schema.get("type")
    options = list(kinds) if isinstance(kinds, list) else [kinds] if kinds else []
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or []:
            if isinstance(option, dict):
                sub = option.get("type")
                options.extend(sub if isinstance(sub, list) else [sub] if sub else [])
    return [o for o in dict.fromkeys(options) if o != "null"]
