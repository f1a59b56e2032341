"""Edits to the project file: plugins and their config. Each edit validates, then saves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from strata.errors import EnvironmentNotFoundError, PluginExistsError, SettingError, UsageError
from strata.project.project import PLUGIN_NAME_RULE, lenient, valid_plugin_name
from strata.project.yamlfile import delete

if TYPE_CHECKING:
    from strata.project.project import PluginRef, Project


def check_plugin_name(name: str) -> None:
    """Plugin names become directory names and variable prefixes: keep them plain."""
    if not valid_plugin_name(name):
        raise UsageError(f"`{name}` is not a valid plugin name", PLUGIN_NAME_RULE)


def add_plugin(
    project: Project,
    plugin_type: str,
    name: str,
    *,
    pip_url: str | None = None,
    executable: str | None = None,
    inherit_from: str | None = None,
    namespace: str | None = None,
    variant: str | None = None,
) -> None:
    """Append a plugin entry to the project file and save it (reload the project to see it).

    Its keys come in the order Meltano writes them.
    """
    check_plugin_name(name)
    shared = lenient(project.sources[0].path)  # Meltano allows one name across types (`dbt` and `dbt` files)
    if any(ref.name == name and (ref.plugin_type == plugin_type or not shared) for ref in project.plugins()):
        raise PluginExistsError(
            f"a plugin named `{name}` already exists", "choose another name or `strata remove` it first"
        )
    if inherit_from is not None:
        same_type = [ref for ref in project.plugins(plugin_type) if ref.name == inherit_from]
        parent = same_type[0] if same_type else project.plugin(inherit_from)
        if parent.plugin_type != plugin_type:
            raise UsageError(
                f"`{inherit_from}` is in `{parent.plugin_type}`, not `{plugin_type}`",
                "inherit from a plugin of the same type",
            )
    elif pip_url is None and executable is None:
        raise UsageError(f"`{name}` needs --pip-url, --executable or --inherit-from", "say how to install or find it")
    entry = CommentedMap()
    entry["name"] = name
    for key, value in (
        ("inherit_from", inherit_from),
        ("namespace", namespace),
        ("variant", variant),
        ("pip_url", pip_url),
        ("executable", executable),
    ):
        if value is not None:
            entry[key] = value
    plugins = ensure_mapping(project.tree, "plugins")
    section = plugins.get(plugin_type)
    if not isinstance(section, CommentedSeq):
        section = CommentedSeq()
        plugins[plugin_type] = section
    section.append(entry)
    project.save()


def remove_plugins(project: Project, names: list[str]) -> list[PluginRef]:
    """Remove plugins and their environment overrides from the project file, in one save.

    Every name is checked first (it exists, and no plugin that stays inherits from it), so
    either all of them go or nothing changes.
    """
    refs = [project.plugin(name) for name in names]
    going = set(names)
    for ref in refs:
        children = [r.name for r in project.plugins() if r.plugin.inherit_from == ref.name and r.name not in going]
        if children:
            raise UsageError(f"{', '.join(children)} inherit from `{ref.name}`", "remove those plugins first")
    for ref in sorted(refs, key=lambda r: r.index, reverse=True):
        del project.tree["plugins"][ref.plugin_type][ref.index]
    for env in project.tree.get("environments") or []:
        for plugin_type in {ref.plugin_type for ref in refs}:
            section = _get(env, "config", "plugins", plugin_type)
            if isinstance(section, CommentedSeq):
                for position in reversed(range(len(section))):
                    if isinstance(section[position], dict) and section[position].get("name") in going:
                        delete(section, position)
    project.save()
    return refs


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def set_config(project: Project, name: str, key: str, value: Any, *, in_environment: bool) -> str:
    """Write ``key: value`` into the plugin's config (or the active environment's); return where."""
    entry, where = _entry_to_edit(project, name, in_environment=in_environment)
    config = ensure_mapping(entry, "config")
    if key in config:
        config[key] = value
    else:
        _put(config, key.split("."), value, key)
    project.save()
    return where


def _put(node: CommentedMap, parts: list[str], value: Any, key: str) -> None:
    """``node[a][b]… = value`` for ``parts``, creating the mappings between (``key`` names it in errors)."""
    *parents, leaf = parts
    _check_parents(node, parents, key)
    for part in parents:
        node = ensure_mapping(node, part)
    node[leaf] = value


def _entry_to_edit(project: Project, name: str, *, in_environment: bool) -> tuple[CommentedMap, str]:
    """The plugin's entry (or the active environment's entry for it, created if missing) and where it is."""
    ref = project.plugin(name)
    if not in_environment:
        return _plugin_entry(project, ref.plugin_type, ref.index, name), project.file_of(ref.path)
    env = project.environment
    if env is None:
        raise UsageError("no environment is active", "pass -e NAME, or drop it to write the plugin's own config")
    env_node = next(e for e in project.tree["environments"] if e.get("name") == env.name)
    plugins = ensure_mapping(ensure_mapping(env_node, "config"), "plugins")
    section = plugins.get(ref.plugin_type)
    if not isinstance(section, CommentedSeq):
        section = CommentedSeq()
        plugins[ref.plugin_type] = section
    entry = next((p for p in section if p.get("name") == name), None)
    if entry is None:
        entry = CommentedMap(name=name)
        section.append(entry)
    env_index = next(i for i, e in enumerate(project.model.environments) if e.name == env.name)
    return entry, f"{project.file_of(['environments', env_index])} (environment {env.name})"


def set_extra(project: Project, name: str, key: str, value: Any, *, in_environment: bool) -> str:
    """Write extra ``key`` (``_select``, ``_metadata.users.replication-key``) as Meltano does; return where.

    ``_select`` goes to the entry's ``select:``; a dotted name goes inside the extra's mapping.
    Extras the entry keeps in ``config:`` (``config._select``) move out to their keys first, as
    Meltano moves them on every edit.
    """
    from strata.project.extras import extras_of

    entry, where = _entry_to_edit(project, name, in_environment=in_environment)
    _move_config_extras(entry, set(extras_of(project.plugin(name).plugin_type)))
    root, *path = key.split(".")
    if not path:
        entry[root[1:]] = value
    else:
        _put(ensure_mapping(entry, root[1:]), path, value, key)
    project.save()
    return where


def unset_extra(project: Project, name: str, key: str, *, in_environment: bool) -> str | None:
    """Remove extra ``key`` (or one leaf of it) from the plugin's entry or the environment's; where, if found."""
    entry, where = _existing_entry(project, name, in_environment=in_environment)
    if not isinstance(entry, dict):
        return None
    root, *path = key.split(".")
    removed = _remove(entry, [root[1:], *path])
    config = entry.get("config")
    if isinstance(config, dict):
        removed = _remove(config, [root, *path]) or removed
        if not config:
            delete(entry, "config")
    if not removed:
        return None
    project.save()
    return where


def _move_config_extras(entry: CommentedMap, known: set[str]) -> None:
    """``config: {_select: …}`` -> ``select: …`` for the known extras (a key already out there wins)."""
    config = entry.get("config")
    if not isinstance(config, dict):
        return
    for key in [k for k in config if k in known]:
        value = config.pop(key)
        entry.setdefault(key[1:], value)
    if not config:
        delete(entry, "config")


def _remove(node: Any, parts: list[str]) -> bool:
    """Delete the key at ``parts`` under ``node`` and the mappings it leaves empty; whether it was there."""
    chain = [node]
    for part in parts[:-1]:
        nxt = chain[-1].get(part)
        if not isinstance(nxt, dict):
            return False
        chain.append(nxt)
    if parts[-1] not in chain[-1]:
        return False
    delete(chain[-1], parts[-1])
    for parent, part in reversed(list(zip(chain[:-1], parts[:-1], strict=True))):
        if not parent[part]:
            delete(parent, part)
    return True


def _plugin_entry(project: Project, plugin_type: str, index: int, name: str) -> Any:
    """The plugin's entry in the file; the built-in ``target-strata`` gets one on its first edit."""
    plugins = ensure_mapping(project.tree, "plugins")
    section = plugins.get(plugin_type)
    if not isinstance(section, CommentedSeq):
        section = CommentedSeq()
        plugins[plugin_type] = section
    if index >= len(section):
        section.append(CommentedMap(name=name))
    return section[index]


def _check_parents(config: Any, parents: list[str], key: str) -> None:
    """Refuse to put ``key`` inside a parent that already holds a scalar or a list (it would be lost)."""
    node = config
    for depth, part in enumerate(parents, start=1):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
        if not isinstance(node, dict):
            parent = ".".join(parents[:depth])
            raise SettingError(
                f"`{parent}` is set to a value that is not a mapping, so `{key}` cannot go inside it",
                f"unset `{parent}` first, or set `{parent}` as a whole",
            )


def unset_config(project: Project, name: str, key: str, *, in_environment: bool) -> str | None:
    """Remove ``key`` from the plugin's config (or the active environment's); the file it was in, if found."""
    entry, where = _existing_entry(project, name, in_environment=in_environment)
    config = entry.get("config") if isinstance(entry, dict) else None
    if not isinstance(config, dict):
        return None
    if not _delete_setting(config, key):
        return None
    if not config:
        delete(entry, "config")  # as Meltano does: no `config: {}` left behind
    project.save()
    return where


def _delete_setting(config: Any, key: str) -> bool:
    """Delete ``key`` (a name, or a dotted path into nested mappings) and the mappings it empties."""
    if key in config:
        delete(config, key)
        return True
    return _remove(config, key.split("."))


def _existing_entry(project: Project, name: str, *, in_environment: bool) -> tuple[Any, str]:
    """The plugin's entry (or the active environment's entry for it) if there is one, and the file it is in."""
    ref = project.plugin(name)
    if in_environment:
        override = project.environment_override(ref)
        if override is None:
            return None, project.file_name
        return _node(project, override[1]), project.file_of(override[1])
    section = project.tree.get("plugins", {}).get(ref.plugin_type) or []
    entry = section[ref.index] if ref.index < len(section) else None  # an undeclared built-in has none
    return entry, project.file_of(ref.path)


def _node(project: Project, path: list[str | int]) -> Any:
    node: Any = project.tree
    for part in path:
        node = node[part]
    return node


def declare_secret(project: Project, name: str, key: str) -> None:
    """Declare ``key`` as a sensitive setting of plugin ``name`` (no value is written)."""
    ref = project.plugin(name)
    entry = project.tree["plugins"][ref.plugin_type][ref.index]
    settings = entry.get("settings")
    if not isinstance(settings, CommentedSeq):
        settings = CommentedSeq()
        entry["settings"] = settings
    if not any(isinstance(s, dict) and s.get("name") == key for s in settings):
        settings.append(CommentedMap(name=key, sensitive=True))
        project.save()


def ensure_mapping(parent: Any, key: str | int) -> CommentedMap:
    """``parent[key]`` as a mapping, created empty when missing or null."""
    value = parent[key] if (isinstance(parent, dict) and key in parent) or isinstance(key, int) else None
    if not isinstance(value, CommentedMap):
        value = CommentedMap()
        parent[key] = value
    return value


def add_select_rule(project: Project, name: str, rule: str) -> None:
    """Append ``rule`` to the plugin's ``select:`` (created if missing; ``config._select`` moves there) and save."""
    from strata.project.extras import extras_of

    ref = project.plugin(name)
    entry = project.tree["plugins"][ref.plugin_type][ref.index]
    _move_config_extras(entry, set(extras_of(ref.plugin_type)))
    rules = entry.get("select")
    if not isinstance(rules, CommentedSeq):
        rules = CommentedSeq()
        entry["select"] = rules
    if rule not in rules:
        rules.append(rule)
        project.save()


def add_environment(project: Project, name: str) -> None:
    """Append ``- name: NAME`` to ``environments:`` and save, as ``meltano environment add`` does."""
    if not name.strip() or name != name.strip() or ":" in name:
        raise UsageError(
            f"`{name}` is not a valid environment name",
            "use a name without `:` or surrounding spaces; it starts state ids (`ENV:tap-x-to-target-y`)",
        )
    if any(env.name == name for env in project.model.environments):
        raise UsageError(
            f"an environment named `{name}` already exists", "choose another name or `strata environment remove` it"
        )
    section = project.tree.get("environments")
    if not isinstance(section, CommentedSeq):
        section = CommentedSeq()
        project.tree["environments"] = section
    section.append(CommentedMap(name=name))
    project.save()


def remove_environment(project: Project, name: str) -> None:
    """Remove environment ``name`` (with its config) and save; the default environment stays."""
    known = [env.name for env in project.model.environments]
    if name not in known:
        raise EnvironmentNotFoundError(
            f"environment `{name}` is not defined in {project.file_name} (defined: {', '.join(known) or 'none'})",
            "see `strata environment list`",
        )
    if project.setting("default_environment") == name:
        raise UsageError(f"`{name}` is the default_environment", "set default_environment to another environment first")
    section = project.tree["environments"]
    section[:] = [env for env in section if not (isinstance(env, dict) and env.get("name") == name)]
    project.save()
