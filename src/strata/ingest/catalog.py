"""Singer catalogs: discovery with a cache, and the extractor's select, metadata and schema rules.

``discover`` runs ``<tap> --config … --discover`` and caches the catalog under
``.strata/catalogs/<extractor>.json`` with a key made of the resolved config, the install and
the executable; a changed key (new config, new version) discovers again. The rules come from
the extractor's extras (``strata.project.extras``: ``select:`` in the file, ``_select`` in
``config set``, ``TAP_X__SELECT`` …) and are applied to a copy of the catalog for every run,
never to the cache, in Meltano's order:

- ``_schema``: ``{stream glob: {property glob: json schema}}`` replaces (or adds) property schemas.
- ``_select``: ``stream.property`` globs (``users.*``, ``*.id``; a bare ``users`` is ``users.*``),
  ``!`` to exclude; default ``*.*``. A stream is selected when any of its properties is; ``inclusion: automatic``
  properties (keys, bookmarks) always are, ``unsupported`` never.
- ``_metadata``: ``{stream glob: {key: value, property: {key: value}}}`` as Meltano reads it
  (``replication-method``, ``replication-key`` on the stream, also written underscored on the
  stream itself; ``selected`` … on a property); ``properties: {prop: {key: value}}`` is read too.
- ``_select_filter``: stream patterns (``users``, ``!orders``) that deselect the streams they
  leave out, also over a ``catalog:`` file.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from strata.errors import RuntimeFailure, UsageError
from strata.project.files import write_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from strata.project.project import PluginRef, Project

Catalog = dict[str, Any]

_log = logging.getLogger(__name__)


_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")
"""The dot between stream and property; an escaped ``\\.`` belongs to the stream name."""


@dataclass(frozen=True)
class Rule:
    """One select rule: stream and property globs, include or exclude."""

    stream: str
    prop: str
    include: bool

    @classmethod
    def parse(cls, text: str) -> Rule:
        r"""``stream.property``, or a bare ``stream`` meaning ``stream.*`` (as in Meltano).

        ``\.`` is a dot inside a stream name.
        """
        include = not text.startswith("!")
        stream, *rest = _UNESCAPED_DOT.split(text.lstrip("!"), maxsplit=1)
        prop = rest[0] if rest else "*"
        if not stream or not prop:
            raise UsageError(
                f"select rule `{text}` is not `stream` or `stream.property`",
                "write e.g. `users.*` or `!users.password`",
            )
        stream = stream.replace("\\.", ".")
        return cls(stream, prop, include)

    def matches(self, stream: str, prop: str) -> bool:
        return fnmatch.fnmatchcase(stream, self.stream) and fnmatch.fnmatchcase(prop, self.prop)


def streams(catalog: Catalog) -> list[dict[str, Any]]:
    """The catalog's streams (``streams`` list)."""
    found = catalog.get("streams")
    if not isinstance(found, list):
        raise RuntimeFailure("the catalog has no `streams` list", "check the tap's --discover output")
    return found


def stream_id(stream: dict[str, Any]) -> str:
    """A stream's id (``tap_stream_id``, else ``stream``)."""
    return str(stream.get("tap_stream_id") or stream.get("stream"))


def _metadata_of(stream: dict[str, Any], breadcrumb: list[str]) -> dict[str, Any]:
    """The metadata at ``breadcrumb``, read only (empty when there is none)."""
    for entry in stream.get("metadata") or []:
        if entry.get("breadcrumb") == breadcrumb:
            return entry.get("metadata") or {}
    return {}


def _metadata(stream: dict[str, Any], breadcrumb: list[str]) -> dict[str, Any]:
    entries = stream.setdefault("metadata", [])
    for entry in entries:
        if entry.get("breadcrumb") == breadcrumb:
            return entry.setdefault("metadata", {})  # type: ignore[no-any-return]
    entry = {"breadcrumb": breadcrumb, "metadata": {}}
    entries.append(entry)
    return entry["metadata"]  # type: ignore[no-any-return]


def properties(stream: dict[str, Any]) -> list[str]:
    """Top-level property names of a stream's schema."""
    schema = stream.get("schema") or {}
    return list((schema.get("properties") or {}).keys())


def selection(catalog: Catalog, rules: list[str]) -> dict[str, dict[str, bool]]:
    """Stream -> property -> selected, as the rules decide (before metadata is written)."""
    parsed = [Rule.parse(r) for r in rules]
    out: dict[str, dict[str, bool]] = {}
    for stream in streams(catalog):
        sid = stream_id(stream)
        chosen = {}
        for prop in properties(stream):
            meta = _metadata_of(stream, ["properties", prop])
            inclusion = meta.get("inclusion")
            if inclusion == "automatic":
                chosen[prop] = True
            elif inclusion == "unsupported":
                chosen[prop] = False
            else:
                included = any(r.include and r.matches(sid, prop) for r in parsed)
                excluded = any(not r.include and r.matches(sid, prop) for r in parsed)
                chosen[prop] = included and not excluded
        out[sid] = chosen
    return out


def apply_rules(
    catalog: Catalog,
    select: list[str] | None,
    metadata: dict[str, Any] | None,
    schema: dict[str, Any] | None,
    select_filter: list[str] | None = None,
) -> Catalog:
    """A copy of ``catalog`` with the rules applied in Meltano's order: schema, selection, metadata, filter."""
    out = copy.deepcopy(catalog)
    for stream in streams(out):
        _apply_schema(stream, schema or {})
    chosen = selection(out, select if select is not None else ["*.*"])
    for stream in streams(out):
        props_selected = chosen.get(stream_id(stream), {})
        any_selected = any(
            v
            for p, v in props_selected.items()
            if _metadata_of(stream, ["properties", p]).get("inclusion") != "automatic"
        )
        _set_stream_metadata(stream, "selected", value=any_selected)
        for prop, value in props_selected.items():
            _metadata(stream, ["properties", prop])["selected"] = value
        for pattern, entries in (metadata or {}).items():
            if fnmatch.fnmatchcase(stream_id(stream), pattern):
                for props, key, value in _metadata_leaves(entries or {}, []):
                    _apply_metadata(stream, props, key, value)
    return filter_streams(out, select_filter or [])


def _apply_schema(stream: dict[str, Any], rules: dict[str, Any]) -> None:
    """Replace (or add) the schema of each property a rule names; property names may be globs, as in Meltano."""
    for pattern, overrides in rules.items():
        if not fnmatch.fnmatchcase(stream_id(stream), pattern):
            continue
        props = stream.setdefault("schema", {}).setdefault("properties", {})
        for prop, payload in (overrides or {}).items():
            for name in fnmatch.filter(props, prop) if _GLOB.search(prop) else [prop]:
                props[name] = copy.deepcopy(payload)


_GLOB = re.compile(r"[*?\[\]]")


def _metadata_leaves(entries: dict[str, Any], props: list[str]) -> list[tuple[list[str], str, Any]]:
    """``{key: v, prop: {key: v}}`` -> ``(property path, key, value)``, as Meltano reads ``_metadata``.

    A mapping under a key is a property (nested mappings are sub-properties); anything else is a
    metadata value. strata's earlier form ``properties: {prop: {key: v}}`` is read too.
    """
    out: list[tuple[list[str], str, Any]] = []
    for key, value in entries.items():
        if not isinstance(value, dict):
            out.append((props, key, value))
        elif key == "properties" and not props:
            for prop, prop_entries in value.items():
                out.extend(_metadata_leaves(prop_entries or {}, [prop]))
        else:
            out.extend(_metadata_leaves(value, [*props, key]))
    return out


def _apply_metadata(stream: dict[str, Any], props: list[str], key: str, value: Any) -> None:
    """Set ``key`` on the stream (and, underscored, on the stream itself) or on every property ``props`` matches."""
    if not props:
        _set_stream_metadata(stream, key, value=value)
        return
    pattern = ".".join(part for prop in props for part in ("properties", prop))
    for breadcrumb in _breadcrumbs(stream):
        if fnmatch.fnmatchcase(".".join(breadcrumb), pattern):
            node = _metadata(stream, breadcrumb)
            if not (key == "selected" and value is True and node.get("inclusion") == "unsupported"):
                node[key] = value


def _breadcrumbs(stream: dict[str, Any]) -> list[list[str]]:
    """The breadcrumb of every property of the stream's schema, nested ones included."""
    found: list[list[str]] = []

    def walk(schema: dict[str, Any], path: list[str]) -> None:
        for name, child in (schema.get("properties") or {}).items():
            found.append([*path, "properties", name])
            if isinstance(child, dict):
                walk(child, [*path, "properties", name])

    walk(stream.get("schema") or {}, [])
    return found


def _set_stream_metadata(stream: dict[str, Any], key: str, *, value: Any) -> None:
    """Stream metadata ``key``, also written underscored on the stream (``replication_key``) as Meltano does."""
    _metadata(stream, [])[key] = value
    stream[key.replace("-", "_")] = value


def filter_streams(catalog: Catalog, patterns: list[str]) -> Catalog:
    """Deselect the streams ``patterns`` leave out (Meltano's ``_select_filter``): ``users``, ``!orders``, globs.

    A stream is left out when include patterns are given and it matches none, or when it
    matches a ``!`` pattern; a ``stream.property`` pattern counts for its stream.
    """
    include = [p.partition(".")[0] for p in patterns if not p.startswith("!")]
    exclude = [p[1:].partition(".")[0] for p in patterns if p.startswith("!")]
    for stream in streams(catalog):
        sid = stream_id(stream)
        matched = any(fnmatch.fnmatchcase(sid, p) for p in include)
        if (include and not matched) or any(fnmatch.fnmatchcase(sid, p) for p in exclude):
            _set_stream_metadata(stream, "selected", value=False)
    return catalog


def cache_key(config: dict[str, Any], install: str) -> str:
    """What a cached catalog depends on."""
    payload = json.dumps([config, install], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_path(project: Project, ref: PluginRef) -> Path:
    """Where an extractor's discovered catalog is cached."""
    return project.system_dir / "catalogs" / f"{ref.name}.json"


def load_cached(project: Project, ref: PluginRef, key: str) -> Catalog | None:
    """The cached catalog if it was made under ``key``."""
    path = cache_path(project, ref)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("catalog"), dict):
        return None
    return data["catalog"]  # type: ignore[no-any-return]


def store_cached(project: Project, ref: PluginRef, key: str, catalog: Catalog) -> None:
    """Cache a discovered catalog (0600, atomic)."""
    path = cache_path(project, ref)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps({"key": key, "catalog": catalog}), mode=0o600)


class Rules(NamedTuple):
    """The catalog rules in force for an extractor, from its extras."""

    select: list[str] | None
    """None when ``_select`` is at its default (every property)."""
    metadata: dict[str, Any]
    schema: dict[str, Any]
    select_filter: list[str]
    catalog: str | None
    """A ``catalog:`` file used as it is instead of discovery."""
    use_cached_catalog: bool


def rules_of(project: Project, ref: PluginRef) -> Rules:
    """The rules from the extractor's extras, however they are set (file, environment, variables, parent)."""
    from strata.project.extras import resolve_extras

    values = resolve_extras(project, ref)
    for value in values.values():
        if value.problem is not None:
            raise value.problem
    select = values["_select"]
    return Rules(
        select.value if select.source != "default" else None,
        values["_metadata"].value,
        values["_schema"].value,
        values["_select_filter"].value,
        values["_catalog"].value,
        values["_use_cached_catalog"].value,
    )


def capabilities(project: Project, ref: PluginRef) -> frozenset[str] | None:
    """The ``capabilities`` the plugin declares, or its nearest ancestor's; None when none declares any."""
    from strata.project.settings import lineage

    for item in lineage(project, ref):
        if item.plugin.capabilities:
            return frozenset(item.plugin.capabilities)
    return None


def has_capability(project: Project, ref: PluginRef, name: str) -> bool:
    """Whether the plugin advertises ``name``; a plugin that declares no capabilities is taken to have them all."""
    declared = capabilities(project, ref)
    return declared is None or name in declared


def tap_args(project: Project, ref: PluginRef, catalog_path: Path | None, state_path: Path | None) -> list[str]:
    """The arguments that hand a tap its catalog and state files, as its capabilities allow.

    ``--catalog`` when it has ``catalog`` (or declares neither that nor ``properties``),
    ``--properties`` when it has only ``properties``; ``--state`` only with ``state``.
    """
    args: list[str] = []
    if catalog_path is not None:
        catalog = has_capability(project, ref, "catalog") or not has_capability(project, ref, "properties")
        args += ["--catalog" if catalog else "--properties", str(catalog_path)]
    if state_path is not None and has_capability(project, ref, "state"):
        args += ["--state", str(state_path)]
    return args


def read_catalog_file(path: Path) -> Catalog:
    """A catalog given as ``--catalog FILE``: a JSON object with a ``streams`` list, else a usage error."""
    from strata.ingest.runfiles import read_json_file

    catalog = read_json_file(path, "--catalog")
    if not isinstance(catalog.get("streams"), list):
        raise UsageError(f"--catalog {path} has no `streams` list", "give it a Singer catalog file")
    return catalog
