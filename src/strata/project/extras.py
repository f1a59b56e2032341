"""Plugin extras: Meltano's underscore settings (``_select``, ``_metadata``, ``_schema`` …).

An extra is a setting whose name starts with ``_``. The project file holds it as a key of the
plugin entry without the underscore (``select:``), or, as Meltano also reads it, as ``_select``
inside ``config:``; either way it is never part of the config handed to the plugin. Each
plugin type has the extras of Meltano 4.4's ``EXTRA_SETTINGS``:

    extractors   _catalog _load_schema _log_parser _metadata _schema _select _select_filter
                 _state _use_cached_catalog
    loaders      _dialect _log_parser
    mappers      _log_parser _mapping_name _mappings
    transforms   _package_name _vars
    files        _update

Layers, lowest to highest, as in Meltano: the default; the parent's value (``inherit_from``);
``config._x`` then ``x:`` on the plugin; the active environment's entry; ``.env``; the process
environment (``TAP_X__SELECT``; ``TAP_X_METADATA`` through an alias). An object extra from a
file layer is merged key by key over the value below it (a ``schema:`` in an environment adds
to the plugin's); a variable replaces it whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strata.errors import SettingError, UsageError
from strata.project.schema import PLUGIN_KEYS
from strata.project.settings import (
    SettingValue,
    env_name,
    exported,
    from_file,
    own_namespace,
    plugin_info_env,
    plugin_variables,
    resolve,
)
from strata.project.values import parse_value

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from strata.project.project import PluginRef, Project
    from strata.project.schema import Plugin

NAMESPACE = object()
"""A default that is the plugin's own namespace (Meltano's ``$MELTANO_EXTRACTOR_NAMESPACE``)."""


@dataclass(frozen=True)
class Extra:
    """One extra: its name, kind, default and the other names its variables may use."""

    name: str
    kind: str = "string"
    """``string``, ``array``, ``object``, ``boolean``, or ``custom`` (a key Meltano keeps: any value)."""
    default: Any = None
    aliases: tuple[str, ...] = ()
    path: tuple[str, ...] = ()
    """Where a leaf extra (kind ``custom``) sits in a plugin entry: ``("metadata", "users", "replication-key")``."""

    @property
    def key(self) -> str:
        """The key in the plugin entry (``select`` for ``_select``)."""
        return self.name[1:]


_LOG_PARSER = Extra("_log_parser", default="singer-sdk")
EXTRAS: dict[str, tuple[Extra, ...]] = {
    "extractors": (
        Extra("_catalog"),
        Extra("_load_schema", default=NAMESPACE),
        _LOG_PARSER,
        Extra("_metadata", "object", {}, ("metadata",)),
        Extra("_schema", "object", {}),
        Extra("_select", "array", ["*.*"]),
        Extra("_select_filter", "array", []),
        Extra("_state"),
        Extra("_use_cached_catalog", "boolean", default=True),
    ),
    "loaders": (Extra("_dialect", default=NAMESPACE), _LOG_PARSER),
    "mappers": (
        _LOG_PARSER,
        Extra("_mapping_name", aliases=("mapping_name",)),
        Extra("_mappings", "array", {}, ("mappings",)),
    ),
    "transforms": (Extra("_package_name", default=NAMESPACE), Extra("_vars", "object", {})),
    "files": (Extra("_update", "object", {}, ("update",)),),
}
"""The extras of each plugin type, as Meltano 4.4.1 defines them; other types have none."""

_TYPES = {"string": str, "array": list, "object": dict, "boolean": bool}

_BASE_KEYS = PLUGIN_KEYS - {extra.key for extras in EXTRAS.values() for extra in extras}
"""The keys of a plugin entry that are not extras of any plugin type."""


def extras_of(plugin_type: str) -> dict[str, Extra]:
    """The extras of ``plugin_type`` by name."""
    return {extra.name: extra for extra in EXTRAS.get(plugin_type, ())}


def find(plugin_type: str, key: str, custom: Collection[str] = ()) -> tuple[Extra, list[str]]:
    """The extra ``key`` names (``_metadata.users.replication-key``) and the path inside it.

    ``custom`` holds the custom extras the plugin has (``custom_roots``): those can be set too.
    Any other unknown extra (a typo, or one Meltano would write as a new key), or a path into an
    extra that is not an object, is a usage error.
    """
    root, *path = key.split(".")
    known = extras_of(plugin_type)
    extra = known.get(root)
    if extra is None and root in custom:
        return Extra(root, "custom"), path
    if extra is None:
        listed = ", ".join(sorted(known)) or "none"
        raise UsageError(f"`{root}` is not an extra of {plugin_type}", f"the extras of {plugin_type} are {listed}")
    if path and extra.kind not in ("object", "custom"):
        raise UsageError(f"`{root}` is not an object, so `{key}` cannot be set", f"set `{root}` as a whole")
    return extra, path


def parse(extra: Extra, path: list[str], raw: str) -> Any:
    """The value ``raw`` sets: of the extra's kind, or any JSON value (else text) inside an object."""
    if path:
        return parse_value(raw, None, f"`{extra.name}.{'.'.join(path)}`")
    value = parse_value(raw, None if extra.kind == "custom" else extra.kind, f"`{extra.name}`")
    if extra.kind == "array" and extra.name.startswith("_select") and not all(isinstance(v, str) for v in value):
        raise SettingError(f"`{extra.name}` must be a list of strings", "give e.g. '[\"users.*\"]'")
    return value


def variable_names(project: Project, ref: PluginRef, extra: Extra) -> list[str]:
    """``TAP_X__SELECT`` (plugin name, then namespace), then the same for each alias (``TAP_X_METADATA``)."""
    prefixes = (ref.name, own_namespace(project, ref))
    names = [env_name(prefix, extra.name) for prefix in prefixes]
    names.extend(env_name(prefix, alias) for alias in extra.aliases for prefix in prefixes)
    return list(dict.fromkeys(names))


def custom_roots(project: Project, ref: PluginRef) -> set[str]:
    """The custom extras ``ref`` has by their key in the entry (``_ui_hints`` for ``_ui_hints.category``)."""
    known = extras_of(ref.plugin_type)
    roots = {f"_{extra.path[0]}" for extra, _ in _resolve(project, ref).values() if extra.kind == "custom"}
    return roots - set(known)


def resolve_extras(
    project: Project, ref: PluginRef, context: Mapping[str, str] | None = None, heir: PluginRef | None = None
) -> dict[str, SettingValue]:
    """Every extra of ``ref`` through all layers (see the module docstring), leaf extras after the others.

    ``${VAR}`` in an extra sees what the plugin's settings see (``context``, ``heir`` and the
    ``env:`` blocks, see ``settings.resolve``) and, as in Meltano, the plugin's own settings as
    variables (``load_schema: $MELTANO_EXTRACT_DATABASE``).
    """
    return {name: value for name, (_, value) in _resolve(project, ref, context, heir).items()}


def _resolve(
    project: Project, ref: PluginRef, context: Mapping[str, str] | None = None, heir: PluginRef | None = None
) -> dict[str, tuple[Extra, SettingValue]]:
    me = heir or ref
    parent = None
    if ref.plugin.inherit_from is not None:
        parent = _resolve(project, project.plugin(ref.plugin.inherit_from, ref.plugin_type), context, me)
    settings = resolve(project, me.name, plugin_type=me.plugin_type, context=context)
    seen = {
        **project.variables,
        **(context or {}),
        **plugin_info_env(project, me),
        **exported(project, me, settings.values.values()),
        **plugin_variables(project, me).layered,
    }
    override = project.environment_override(ref)
    result = {}
    for extra in (*EXTRAS.get(ref.plugin_type, ()), *_leaf_extras(project, ref, parent, override)):
        default = own_namespace(project, ref) if extra.default is NAMESPACE else extra.default
        value = SettingValue(extra.name, default, "default")
        inherited = parent[extra.name][1] if parent is not None and extra.name in parent else None
        if inherited is not None and inherited.source != "default":
            from_parent = SettingValue(
                extra.name, inherited.value, "inherited", f"from {ref.plugin.inherit_from}", problem=inherited.problem
            )
            value = _over(extra, value, from_parent)
        for layer in _file_values(project, seen, ref, extra, override):
            value = _over(extra, value, layer)
        for source, layer_vars in ((".env", project.dotenv), ("env", project.environ)):
            var = next((v for v in variable_names(project, ref, extra) if v in layer_vars), None)
            if var is not None:
                value = _from_variable(extra, layer_vars[var], source, var)
        result[extra.name] = (extra, value)
    return result


def _entries(
    project: Project, ref: PluginRef, override: tuple[Plugin, list[str | int]] | None
) -> list[tuple[Plugin, list[str | int], str]]:
    """The plugin's entry and the active environment's entry for it, lowest first, each with its path and source."""
    entries: list[tuple[Plugin, list[str | int], str]] = [(ref.plugin, ref.path, project.file_of(ref.path))]
    if override is not None:
        assert project.environment is not None
        entries.append((override[0], override[1], f"environment {project.environment.name}"))
    return entries


def _leaf_extras(
    project: Project,
    ref: PluginRef,
    parent: Mapping[str, tuple[Extra, SettingValue]] | None,
    override: tuple[Plugin, list[str | int]] | None,
) -> list[Extra]:
    """The extras Meltano lists as "Custom": its parent's, then those the entries of ``ref`` set.

    A key of an entry that is neither one of ``PLUGIN_KEYS`` outside the extras nor an extra of
    the plugin's type (``x-owner:``, ``load_schema:`` on a loader) is a custom extra ``_x-owner``.
    A custom key holding an object is one extra per leaf (``_ui_hints.category``), and so is
    each leaf of an object extra (``_metadata.users.replication-key``): each is resolved through
    the layers on its own, as Meltano does.
    """
    known = extras_of(ref.plugin_type)
    found = {name: extra for name, (extra, _) in (parent or {}).items() if name not in known}
    for _, path, _ in _entries(project, ref, override):
        for key, value in project.entry(path).items():
            extra = known.get(f"_{key}")
            if key in _BASE_KEYS or (extra is not None and extra.kind != "object"):
                continue
            for parts, _ in _leaves((key,), value):
                if extra is None or len(parts) > 1:
                    name = "_" + ".".join(parts)
                    found.setdefault(name, Extra(name, "custom", path=parts))
    return list(found.values())


def _leaves(path: tuple[str, ...], value: Any) -> list[tuple[tuple[str, ...], Any]]:
    """``(("m",), {"a": {"b": 1}})`` -> ``[(("m", "a", "b"), 1)]``; a list or an empty object is a leaf."""
    if not isinstance(value, dict) or not value:
        return [(path, value)]
    return [leaf for key, item in value.items() for leaf in _leaves((*path, str(key)), item)]


def _file_values(
    project: Project,
    seen: Mapping[str, str],
    ref: PluginRef,
    extra: Extra,
    override: tuple[Plugin, list[str | int]] | None,
) -> list[SettingValue]:
    """The extra as the plugin's entry and the environment's entry set it (``${VAR}`` from ``seen``), lowest first."""
    found = []
    for plugin, path, source in _entries(project, ref, override):
        if extra.kind == "custom":
            found.extend(_custom_value(project, seen, extra, path, source))
            continue
        for key_path, value in (
            ([*path, "config", extra.name], plugin.config.get(extra.name)),
            ([*path, extra.key], _field(plugin, extra.key)),
        ):
            if value is not None:
                item = from_file(project, seen, extra.name, value, source, project.line(key_path))
                found.append(_checked(extra, item))
    return found


def _custom_value(
    project: Project, seen: Mapping[str, str], extra: Extra, path: list[str | int], source: str
) -> list[SettingValue]:
    """The custom extra (a leaf: ``_ui_hints.category``) as the entry at ``path`` sets it: one value or none."""
    node: Any = project.entry(path)
    for part in extra.path:
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    return [from_file(project, seen, extra.name, node, source, project.line([*path, *extra.path]))]


def _field(plugin: Plugin, key: str) -> Any:
    """The plugin entry's ``key``; an empty list or mapping is the same as none (the schema's default)."""
    value = getattr(plugin, key, None)
    return value if value or value is False else None


def _checked(extra: Extra, item: SettingValue) -> SettingValue:
    """``item``, or one carrying the error when its value is not of the extra's kind."""
    expected = _TYPES[extra.kind]
    if item.problem is not None or isinstance(item.value, expected):
        return item
    article = "an" if extra.kind[0] in "aeiou" else "a"
    problem = SettingError(
        f"{item.detail} `{extra.name}` is not {article} {extra.kind}", f"give {article} {extra.kind}"
    )
    return SettingValue(extra.name, None, item.source, item.detail, problem=problem)


def _over(extra: Extra, below: SettingValue, above: SettingValue) -> SettingValue:
    """``above`` in place of ``below``; an object from a file layer is merged into the one below it."""
    if extra.kind == "object" and isinstance(below.value, dict) and isinstance(above.value, dict):
        merged = _merge(below.value, above.value)
        return SettingValue(above.name, merged, above.source, above.detail, problem=above.problem)
    return above


def _merge(below: Mapping[str, Any], above: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(below)
    for key, value in above.items():
        current = out.get(key)
        out[key] = _merge(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return out


def _from_variable(extra: Extra, raw: str, source: str, var: str) -> SettingValue:
    try:
        value = parse_value(raw, None if extra.kind == "custom" else extra.kind, var)
    except SettingError as exc:
        return SettingValue(extra.name, None, source, var, problem=exc)
    return SettingValue(extra.name, value, source, var)
