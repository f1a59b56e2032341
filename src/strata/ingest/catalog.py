"""Singer catalogs: discovery with a cache, and the project's select, metadata and schema rules.

``discover`` runs ``<tap> --config … --discover`` and caches the catalog under
``.strata/catalogs/<extractor>.json`` with a key made of the resolved config, the install and
the executable; a changed key (new config, new version) discovers again. The rules from the
project file are applied to a copy of the catalog for every run, never to the cache:

- ``select``: ``stream.property`` globs (``users.*``, ``*.id``), ``!`` to exclude; default
  ``*.*``. A stream is selected when any of its properties is; ``inclusion: automatic``
  properties (keys, bookmarks) always are, ``unsupported`` never.
- ``metadata``: ``{stream glob: {key: value}}`` merged into the stream's metadata
  (``replication-method``, ``replication-key`` …); a nested ``properties`` map sets property
  metadata.
- ``schema``: ``{stream glob: {property: json schema}}`` replaces property schemas.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strata.errors import RuntimeFailure, UsageError
from strata.project.files import write_atomic

if TYPE_CHECKING:
    from pathlib import Path

    from strata.project.project import PluginRef, Project

Catalog = dict[str, Any]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """One select rule: stream and property globs, include or exclude."""

    stream: str
    prop: str
    include: bool

    @classmethod
    def parse(cls, text: str) -> Rule:
        include = not text.startswith("!")
        body = text.lstrip("!")
        stream, dot, prop = body.partition(".")
        if not stream or not dot or not prop:
            raise UsageError(
                f"select rule `{text}` is not `stream.property`", "write e.g. `users.*` or `!users.password`"
            )
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
) -> Catalog:
    """A copy of ``catalog`` with selection, metadata and schema overrides applied."""
    out = copy.deepcopy(catalog)
    chosen = selection(out, select if select is not None else ["*.*"])
    for stream in streams(out):
        sid = stream_id(stream)
        for pattern, overrides in (schema or {}).items():
            if fnmatch.fnmatchcase(sid, pattern):
                props = stream.setdefault("schema", {}).setdefault("properties", {})
                props.update(copy.deepcopy(overrides))
        props_selected = chosen.get(sid, {})
        any_selected = any(
            v
            for p, v in props_selected.items()
            if _metadata_of(stream, ["properties", p]).get("inclusion") != "automatic"
        )
        _metadata(stream, [])["selected"] = any_selected
        for prop, value in props_selected.items():
            _metadata(stream, ["properties", prop])["selected"] = value
        for pattern, overrides in (metadata or {}).items():
            if not fnmatch.fnmatchcase(sid, pattern):
                continue
            for key, value in (overrides or {}).items():
                if key == "properties" and isinstance(value, dict):
                    for prop, prop_meta in value.items():
                        _metadata(stream, ["properties", prop]).update(prop_meta or {})
                else:
                    _metadata(stream, [])[key] = value
                    if key == "replication-method":
                        stream["replication_method"] = value
                    elif key == "replication-key":
                        stream["replication_key"] = value
    return out


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


def rules_of(project: Project, ref: PluginRef) -> tuple[list[str] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The ``select``, ``metadata`` and ``schema`` in force: the environment's, the plugin's, or its parent's."""
    from strata.project.settings import lineage

    override = project.environment_override(ref)
    found: dict[str, Any] = {}
    for key in ("select", "metadata", "schema"):
        if override is not None and getattr(override[0], key) is not None:
            found[key] = getattr(override[0], key)
            continue
        for item in lineage(project, ref):
            value = getattr(item.plugin, key)
            if value is not None:
                found[key] = value
                break
    return found.get("select"), found.get("metadata"), found.get("schema")


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


def run_catalog(
    project: Project,
    ref: PluginRef,
    *,
    refresh: bool,
    given: Catalog | None = None,
    select_filter: tuple[str, ...] = (),
) -> Catalog | None:
    """The catalog a run hands the tap, or None when it takes none (Meltano's rules).

    A catalog ``given`` on the command line (``--catalog FILE``) is used as it is; so is a
    ``catalog:`` file, but a tap without the ``catalog`` or ``properties`` capability gets none (its
    ``catalog:`` is ignored with a warning); a tap without the ``discover`` capability is not
    discovered and gets none; otherwise the discovered catalog (discovered again when ``refresh``)
    with the project's rules applied. ``select_filter`` (``el --select/--exclude``) applies to all.
    """
    catalog = given if given is not None else _project_catalog(project, ref, refresh=refresh)
    if catalog is None or not select_filter:
        return catalog
    return filter_streams(catalog, select_filter)


def read_catalog_file(path: Path) -> Catalog:
    """A catalog given as ``--catalog FILE``: a JSON object with a ``streams`` list, else a usage error."""
    from strata.ingest.runfiles import read_json_file

    catalog = read_json_file(path, "--catalog")
    if not isinstance(catalog.get("streams"), list):
        raise UsageError(f"--catalog {path} has no `streams` list", "give it a Singer catalog file")
    return catalog


def filter_streams(catalog: Catalog, patterns: tuple[str, ...]) -> Catalog:
    """Meltano's select filter (``el --select``/``--exclude``, ``!`` for excluded) on a copy of ``catalog``.

    A stream is deselected when its id matches no selected pattern (if any are given) or any
    excluded one; a pattern's part before the first ``.`` is the stream glob. Nothing is selected
    that was not already.
    """
    included = [p.partition(".")[0] for p in patterns if not p.startswith("!")]
    excluded = [p[1:].partition(".")[0] for p in patterns if p.startswith("!")]
    out = copy.deepcopy(catalog)
    for stream in streams(out):
        sid = stream_id(stream)
        chosen = not included or any(fnmatch.fnmatchcase(sid, glob) for glob in included)
        if not chosen or any(fnmatch.fnmatchcase(sid, glob) for glob in excluded):
            _metadata(stream, [])["selected"] = False
    return out


def _project_catalog(project: Project, ref: PluginRef, *, refresh: bool) -> Catalog | None:
    """The catalog the project's file and rules give the tap (``run_catalog`` without the command line)."""
    if not (has_capability(project, ref, "catalog") or has_capability(project, ref, "properties")):
        if ref.plugin.catalog:
            _log.warning(
                "%s is ignored: `%s` does not advertise the `catalog` or `properties` capability",
                ref.plugin.catalog,
                ref.name,
            )
        return None
    if ref.plugin.catalog:
        return discover(project, ref)
    if not has_capability(project, ref, "discover"):
        return None
    return apply_rules(discover(project, ref, refresh=refresh), *rules_of(project, ref))


def discover(project: Project, ref: PluginRef, *, refresh: bool = False) -> Catalog:
    """The extractor's catalog: its ``catalog:`` file, the cache, or a fresh ``--discover``."""
    from strata.ingest.invoke import prepare, run_captured

    if ref.plugin.catalog:
        path = (project.root / ref.plugin.catalog).resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"`{ref.name}` catalog file {path} cannot be read as JSON: {exc}", "fix `catalog:`"
            ) from exc
        return data  # type: ignore[no-any-return]
    if not has_capability(project, ref, "discover"):
        raise UsageError(
            f"`{ref.name}` does not advertise the `discover` capability, so it cannot be discovered",
            "give it a `catalog:` file, or add `discover` to its `capabilities:` if it has it",
        )
    inv = prepare(project, ref.name, [])
    key = cache_key(inv.config, f"{inv.env.pip_url}|{inv.argv[0]}")
    if not refresh:
        cached = load_cached(project, ref, key)
        if cached is not None:
            return cached
    done = run_captured(project, ref.name, ["--discover"], stdin="")
    if done.returncode != 0:
        tail = " / ".join(line.strip() for line in (done.stderr or "").strip().splitlines()[-3:])
        raise RuntimeFailure(f"discovery failed: `{ref.name}` exited {done.returncode}: {tail}", "check its config")
    try:
        catalog = json.loads(done.stdout)
    except ValueError:
        raise RuntimeFailure(
            f"`{ref.name} --discover` printed no JSON catalog", "check that it is a Singer tap"
        ) from None
    streams(catalog)
    store_cached(project, ref, key, catalog)
    return catalog  # type: ignore[no-any-return]
