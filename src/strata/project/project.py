"""The project: where it lives, its file, its ``.env`` and the active environment."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from strata.errors import (
    EnvironmentNotFoundError,
    PluginNotFoundError,
    ProjectFileError,
    ProjectNotFoundError,
    RuntimeFailure,
)
from strata.project.files import decode
from strata.project.keypath import path_key
from strata.project.schema import (
    PLUGIN_TYPES,
    Environment,
    Plugin,
    ProjectFile,
    Setting,
    singular,
    without_custom_keys,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from ruamel.yaml.comments import CommentedMap

    from strata.project.yamlstyle import Style

PROJECT_FILES = ("strata.yml", "meltano.yml")
"""File names that mark a project root, in order of preference."""

SYSTEM_DIR = ".strata"

ENVIRONMENT_VARIABLES = ("STRATA_ENVIRONMENT", "MELTANO_ENVIRONMENT")
"""Variables that pick the active environment (after ``-e``), strata's first."""

MELTANO_SETTINGS = ("default_environment", "database_uri", "state_backend.", "ff.")
"""Project settings (or prefixes) that Meltano also has, so ``MELTANO_<NAME>`` sets them too."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def valid_plugin_name(name: str) -> bool:
    """Plugin names become directory names and variable prefixes: letters, digits, ``-_.``, no ``..``."""
    return _NAME.fullmatch(name) is not None and ".." not in name


PLUGIN_NAME_RULE = "use letters, digits, `-`, `_` and `.`, starting with a letter or digit"
"""The instruction given with every invalid plugin name."""


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding a project file."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if any((directory / name).is_file() for name in PROJECT_FILES):
            return directory
    raise ProjectNotFoundError(
        f"no strata.yml or meltano.yml in {start} or any parent directory",
        "run `strata init DIR` to create a project, or pass -C/--project-dir",
    )


@dataclass(frozen=True)
class PluginRef:
    """A plugin entry and where it sits in the project file."""

    plugin_type: str
    index: int
    plugin: Plugin

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def path(self) -> list[str | int]:
        """Key path of the entry in the project file tree."""
        return ["plugins", self.plugin_type, self.index]


BUILTIN_LOADER = "target-strata"
"""The loader that ships with strata: Singer streams into the metadata store (``strata.bridge``)."""

_BUILTIN_SETTINGS = {"store": "string", "key_prefix": "string", "chunk_bytes": "integer", "flush_seconds": "string"}
"""target-strata's settings and kinds (none is secret)."""


def builtin_loader(declared: Plugin | None) -> Plugin:
    """``target-strata`` as the project declares it (config, env), run from strata's own environment."""
    import shutil
    import sys

    plugin = declared or Plugin(name=BUILTIN_LOADER)
    if plugin.pip_url or plugin.executable or plugin.inherit_from:
        return plugin  # the project runs its own build of it
    beside = Path(sys.executable).parent / BUILTIN_LOADER
    executable = str(beside) if beside.exists() else (shutil.which(BUILTIN_LOADER) or BUILTIN_LOADER)
    known = {s.name for s in plugin.settings}
    settings = [
        *plugin.settings,
        *(Setting(name=n, kind=k, sensitive=False) for n, k in _BUILTIN_SETTINGS.items() if n not in known),
    ]
    return msgspec.structs.replace(
        plugin,
        executable=executable,
        settings=settings,
        description=plugin.description
        or "strata's built-in loader: Singer streams into the metadata store as root features",
    )


class Project:
    """A loaded project. Cheap to build: the file is parsed once, nothing else is touched."""

    def __init__(
        self,
        root: Path,
        *,
        environment: str | None = None,
        no_environment: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``no_environment`` (Meltano's ``--no-environment``) selects none, whatever else says one."""
        self.root = root.resolve()
        self.file = next((self.root / n for n in PROJECT_FILES if (self.root / n).is_file()), None)
        if self.file is None:
            raise ProjectNotFoundError(f"no strata.yml or meltano.yml in {self.root}", "run `strata init DIR` first")
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._lock_definitions: dict[Path, dict[str, Any]] = {}
        self.text = _read(self.file)
        loaded = _load(self.root, self.file, self.text, self.system_dir)
        self.sources, self._plain, self._lines, self.model = loaded.sources, loaded.plain, loaded.lines, loaded.model
        _warn(self.root, loaded.warnings)
        self._check()
        self.environment = None if no_environment else self._select_environment(environment)

    @cached_property
    def tree(self) -> CommentedMap:
        """The round-trip YAML tree of every project file merged (comments and order kept); loaded only to edit.

        Entries are the nodes of the file that holds them, so ``save`` writes each edit back there.
        """
        from strata.project import includes
        from strata.project.roundtrip import style_of

        trees = [_parse(source, main=index == 0) for index, source in enumerate(self.sources)]
        merged, self._owners = includes.merge(trees)
        self._styles = [style_of(source.text) for source in self.sources]
        self._trees, self._shapes = trees, [_dump(tree, style) for tree, style in zip(trees, self._styles, strict=True)]
        return merged

    @classmethod
    def find(
        cls,
        project_dir: Path | None = None,
        *,
        environment: str | None = None,
        no_environment: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> Project:
        """Load the project at ``project_dir``, or the one above the working directory."""
        if project_dir is not None and not project_dir.is_dir():
            raise ProjectNotFoundError(f"{project_dir} is not a directory", "pass an existing project directory to -C")
        root = find_root(project_dir or Path.cwd())
        return cls(root, environment=environment, no_environment=no_environment, environ=environ)

    # -- places -------------------------------------------------------------------------

    @property
    def system_dir(self) -> Path:
        """``.strata/``: plugin venvs, system database, logs, default store."""
        return self.root / SYSTEM_DIR

    @property
    def plugins_dir(self) -> Path:
        return self.system_dir / "plugins"

    @property
    def dotenv_path(self) -> Path:
        return self.root / ".env"

    @property
    def lock_path(self) -> Path:
        return self.root / "strata.lock"

    # -- variables ----------------------------------------------------------------------

    @cached_property
    def dotenv(self) -> dict[str, str]:
        """Values from ``.env``, taken literally (no ``${VAR}`` inside them is expanded)."""
        if not self.dotenv_path.is_file():
            return {}
        import io

        from dotenv import dotenv_values

        text = decode(self.dotenv_path.read_bytes(), self.dotenv_path.name)
        values = dotenv_values(stream=io.StringIO(text), interpolate=False)
        return {k: v for k, v in values.items() if v is not None}

    @cached_property
    def variables(self) -> dict[str, str]:
        """What ``${VAR}`` sees, and what every plugin process starts from; later layers win.

        Project paths < root ``env:`` < ``.env`` < process environment < the active environment's
        ``env:``. The root ``env:`` is expanded against the layers around it; the environment's
        ``env:`` against everything below it.
        """
        from strata.project.expand import expand_env

        base = {
            "STRATA_PROJECT_ROOT": str(self.root),
            "MELTANO_PROJECT_ROOT": str(self.root),
            "STRATA_SYS_DIR_ROOT": str(self.system_dir),
        }
        outside = {**self.dotenv, **self.environ}
        strict = self.strict_env_var_mode
        root_env = expand_env(self.model.env, {**base, **outside}, f"{self.file_name}: env", strict=strict)
        merged = {**base, **root_env, **outside}
        if self.environment is not None and self.environment.env:
            where = f"{self.file_name}: environments.{self.environment.name}.env"
            merged.update(expand_env(self.environment.env, merged, where, strict=strict))
        return merged

    @cached_property
    def strict_env_var_mode(self) -> bool:
        """Meltano's ``ff.strict_env_var_mode``: an unset ``${VAR}`` is an error, not empty.

        Set in the file as ``ff: {strict_env_var_mode: true}`` or by ``STRATA_FF_STRICT_ENV_VAR_MODE``
        or ``MELTANO_FF_STRICT_ENV_VAR_MODE``.
        """
        from strata.project.values import parse_value

        value = self.setting("ff.strict_env_var_mode")
        if value is None or isinstance(value, bool):
            return value is True
        return bool(parse_value(str(value), "boolean", "ff.strict_env_var_mode"))

    def setting(self, name: str) -> Any:
        """A project setting by dotted name: its variable (``setting_variable``) if set, else the file's value."""
        from_variable = self.setting_variable(name)
        if from_variable is not None:
            return from_variable
        node: Any = self._plain
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def setting_variable(self, name: str) -> str | None:
        """The variable that overrides project setting ``name``, taken as it is; None when none is set.

        ``state_backend.uri`` is overridden by ``STRATA_STATE_BACKEND_URI`` and, for the settings
        Meltano also has (``MELTANO_SETTINGS``), by Meltano's ``MELTANO_STATE_BACKEND_URI``. The
        process environment wins over ``.env``; within each, ``STRATA_`` wins over ``MELTANO_``.
        """
        suffix = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        prefixes = ("STRATA_", "MELTANO_") if name.startswith(MELTANO_SETTINGS) else ("STRATA_",)
        for source in (self.environ, self.dotenv):
            for prefix in prefixes:
                if prefix + suffix in source:
                    return source[prefix + suffix]
        return None

    @property
    def file_name(self) -> str:
        assert self.file is not None
        return self.file.name

    # -- plugins ------------------------------------------------------------------------

    def plugins(self, plugin_type: str | None = None) -> Iterator[PluginRef]:
        """Every plugin entry, in file order.

        A hub plugin comes over its lock file's definition, a declared ``target-strata`` made runnable.
        """
        for ptype in PLUGIN_TYPES if plugin_type is None else (plugin_type,):
            entries = getattr(self.model.plugins, ptype)
            for index, plugin in enumerate(entries):
                if ptype == "loaders" and plugin.name == BUILTIN_LOADER:
                    plugin = builtin_loader(plugin)  # noqa: PLW2901 - the declared entry, made runnable
                else:
                    plugin = self._defined(ptype, plugin)  # noqa: PLW2901 - the entry over its definition
                yield PluginRef(ptype, index, plugin)

    def _defined(self, plugin_type: str, plugin: Plugin) -> Plugin:
        """``plugin`` over the definition in its Meltano lock file (``hub_lock``), when it has one."""
        from strata.project import hub_lock

        path = hub_lock.lock_path(self.root, plugin_type, plugin)
        if path is None:
            return plugin
        definition = self._lock_definitions.get(path)
        if definition is None:
            definition = self._lock_definitions[path] = hub_lock.read_definition(self.root, path)
        return hub_lock.with_definition(plugin, definition, str(path.relative_to(self.root)))

    def plugin(self, name: str, plugin_type: str | None = None) -> PluginRef:
        """The plugin called ``name`` (of ``plugin_type``, when names are shared across types).

        Without a type, a name shared across types means the first type in ``PLUGIN_TYPES``.
        An unknown name says which ones exist.
        """
        for ref in self.plugins(plugin_type):
            if ref.name == name:
                return ref
        if name == BUILTIN_LOADER and plugin_type in (None, "loaders"):  # always there, declared or not
            return PluginRef("loaders", len(self.model.plugins.loaders), builtin_loader(None))
        import difflib

        kind = "plugin" if plugin_type is None else singular(plugin_type)
        names = [ref.name for ref in self.plugins(plugin_type)]
        close = difflib.get_close_matches(name, names, n=1)
        other_types = [singular(ref.plugin_type) for ref in self.plugins() if ref.name == name]
        if other_types:
            hint = f"`{name}` is a {' and a '.join(other_types)}; pass that type"
        elif close:
            hint = f"did you mean `{close[0]}`?"
        else:
            hint = f"defined {kind}s: {', '.join(names)}" if names else "add one with `strata add`"
        raise PluginNotFoundError(f"no {kind} named `{name}` in {self.file_name}", hint)

    def environment_override(self, ref: PluginRef) -> tuple[Plugin, list[str | int]] | None:
        """The active environment's entry for ``ref`` and its key path, if any."""
        if self.environment is None:
            return None
        env_index = next(i for i, e in enumerate(self.model.environments) if e.name == self.environment.name)
        for index, plugin in enumerate(getattr(self.environment.config.plugins, ref.plugin_type)):
            if plugin.name == ref.name:
                return plugin, ["environments", env_index, "config", "plugins", ref.plugin_type, index]
        return None

    def entry(self, path: list[str | int]) -> dict[str, Any]:
        """The plain data of the entry at key path ``path`` as the files hold it, custom keys included; {} if none."""
        node: Any = self._plain
        for part in path:
            if isinstance(part, int):
                node = node[part] if isinstance(node, list) and part < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def line(self, path: list[str | int]) -> str:
        """``file:line`` of a key path, for messages; the file is the one that holds it."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(path_key(path[:end]))
            if found is not None:
                return f"{self.sources[found[0]].name}:{found[1]}"
        return self.file_name

    def file_of(self, path: list[str | int]) -> str:
        """The name of the project file that holds the entry at key path ``path`` (the main file for others)."""
        depth = 3 if path[:1] == ["plugins"] else 2
        found = self._lines.get(path_key(path[:depth])) if len(path) >= depth else None
        return self.sources[found[0]].name if found is not None else self.file_name

    # -- editing ------------------------------------------------------------------------

    def save(self) -> None:
        """Write the edited tree back, each entry to its own file; validate first so a bad edit never lands.

        Only files whose text the edit changes are written, each atomically, and in each only
        the lines the edit changes (``roundtrip.rewrite``): indentation, line ends, quoting and
        comments of every other line stay as they were.
        """
        from strata.project import includes
        from strata.project.files import what_to_do, write_atomic
        from strata.project.roundtrip import rewrite
        from strata.project.yamlfile import plain

        tree = self.tree
        includes.split(tree, self._trees, self._owners)
        shapes = [_dump(t, style) for t, style in zip(self._trees, self._styles, strict=True)]
        sources = [
            s if shape == before else msgspec.structs.replace(s, text=rewrite(s.text, before, shape, plain(t)))
            for s, shape, before, t in zip(self.sources, shapes, self._shapes, self._trees, strict=True)
        ]
        loaded = _parse_all(self.root, sources)
        for before, after in zip(self.sources, sources, strict=True):
            if after is before:
                continue
            try:
                write_atomic(after.path, after.text)
            except OSError as exc:
                raise RuntimeFailure(f"cannot write {after.name}: {exc.strerror}", what_to_do(after.path, exc)) from exc
        self._shapes = shapes
        self.sources, self.text, self.model = sources, sources[0].text, loaded.model
        self._plain, self._lines = loaded.plain, loaded.lines

    # -- checks -------------------------------------------------------------------------

    def _select_environment(self, explicit: str | None) -> Environment | None:
        chosen = (source.get(var) for source in (self.environ, self.dotenv) for var in ENVIRONMENT_VARIABLES)
        name = explicit or next((value for value in chosen if value), None) or self.setting("default_environment")
        if not name:
            return None
        for env in self.model.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.model.environments) or "none"
        raise EnvironmentNotFoundError(
            f"environment `{name}` is not defined in {self.file_name} (defined: {known})",
            "pick one of those with -e, or add it under `environments:`",
        )

    def _check(self) -> None:
        """Rules the schema alone cannot express: valid and unique names, valid references."""
        seen: dict[str, PluginRef] = {}
        for ref in sorted(self.plugins(), key=lambda r: self._lines.get(path_key(r.path), [0, 0])):
            if not valid_plugin_name(ref.name):
                raise ProjectFileError(
                    f"{self.line([*ref.path, 'name'])}: `{ref.name}` is not a valid plugin name", PLUGIN_NAME_RULE
                )
            first = seen.setdefault(ref.name, ref)
            if first is not ref:
                self._check_shared_name(first, ref)
        by_name = {(ref.plugin_type, ref.name): ref for ref in self.plugins()}
        for ref in self.plugins():
            parent = ref.plugin.inherit_from
            if parent is not None and (ref.plugin_type, parent) not in by_name:
                raise ProjectFileError(
                    f"{self.line([*ref.path, 'inherit_from'])}: `{ref.name}` inherits from `{parent}`, "
                    f"which is not a plugin in `{ref.plugin_type}`",
                    "name an existing plugin of the same type",
                )
        for ref in self.plugins():
            self._check_inheritance_cycle(ref, by_name)
        self._check_unique("jobs", "job", [j.name for j in self.model.jobs])
        self._check_unique("schedules", "schedule", [s.name for s in self.model.schedules])
        env_names: set[str] = set()
        for i, env in enumerate(self.model.environments):
            if env.name in env_names:
                raise ProjectFileError(
                    f"{self.line(['environments', i, 'name'])}: environment `{env.name}` is defined twice", "remove one"
                )
            env_names.add(env.name)
            for ptype in PLUGIN_TYPES:
                for j, override in enumerate(getattr(env.config.plugins, ptype)):
                    if not any(r.name == override.name for r in self.plugins(ptype)):
                        where = self.line(["environments", i, "config", "plugins", ptype, j, "name"])
                        message = (
                            f"{where}: environment `{env.name}` configures `{override.name}`, "
                            f"which is not a plugin in `{ptype}`"
                        )
                        if not lenient(self.sources[0].path):
                            raise ProjectFileError(message, "add the plugin under `plugins:` or fix the name")
                        _warn(self.root, [f"{message}; its settings there are not used"])
        default = self.model.default_environment
        if default and default not in env_names:
            raise ProjectFileError(
                f"{self.line(['default_environment'])}: default_environment `{default}` is not defined",
                "add it under `environments:` or change default_environment",
            )

    def _check_unique(self, section: str, kind: str, names: list[str]) -> None:
        """A job or schedule name used twice: an error, but a warning in ``meltano.yml`` unless both are included.

        Meltano refuses the same name in two included files and keeps both otherwise; strata uses the first.
        """
        first: dict[str, int] = {}
        for index, name in enumerate(names):
            earlier = first.setdefault(name, index)
            if earlier == index:
                continue
            where, first_at = self.line([section, index]), self.line([section, earlier])
            message = f"{where}: {kind} `{name}` is defined twice (first at {first_at})"
            files = (self._lines[path_key([section, earlier])][0], self._lines[path_key([section, index])][0])
            if not lenient(self.sources[0].path) or min(files) > 0:
                raise ProjectFileError(message, "rename or remove one of them")
            _warn(self.root, [f"{message}; the first one is used"])

    def _check_shared_name(self, first: PluginRef, again: PluginRef) -> None:
        """Two plugins with one name: an error, but a warning across types in ``meltano.yml``.

        Meltano allows one name across types (``dbt`` as a transformer and a file bundle). The
        name then means the plugin whose type comes first in ``PLUGIN_TYPES`` (the one Meltano's
        ``config`` and ``invoke`` find); the others are still listed and installed.
        """
        where, first_at = self.line([*again.path, "name"]), self.line([*first.path, "name"])
        if first.plugin_type == again.plugin_type or not lenient(self.sources[0].path):
            raise ProjectFileError(
                f"{where}: plugin `{again.name}` is defined twice (first at {first_at})", "rename or remove one of them"
            )
        meant = min(first, again, key=lambda r: PLUGIN_TYPES.index(r.plugin_type))
        message = (
            f"{where}: plugin name `{again.name}` is used in {first.plugin_type} ({first_at}) and in "
            f"{again.plugin_type}; `{again.name}` means the one in {meant.plugin_type}"
        )
        _warn(self.root, [message])

    def _check_inheritance_cycle(self, ref: PluginRef, by_name: Mapping[tuple[str, str], PluginRef]) -> None:
        """Every parent is known to exist (checked first), so the walk ends in a root or a cycle."""
        chain = [ref.name]
        current = ref.plugin
        while current.inherit_from is not None:
            if current.inherit_from in chain:
                raise ProjectFileError(
                    f"{self.line([*ref.path, 'inherit_from'])}: inherit_from forms a cycle: "
                    + " -> ".join([*chain, current.inherit_from]),
                    "break the cycle",
                )
            chain.append(current.inherit_from)
            current = by_name[ref.plugin_type, current.inherit_from].plugin


_CACHE_VERSION = "3"

_log = logging.getLogger("strata.project")
_warned: set[tuple[Path, str]] = set()


def _warn(root: Path, messages: list[str]) -> None:
    """Log each warning about a project's files once per process (a command may load them twice)."""
    for message in messages:
        if (root, message) not in _warned and _log.isEnabledFor(logging.WARNING):
            _warned.add((root, message))
            _log.warning(message)


class Source(msgspec.Struct, frozen=True):
    """One project file: the main one first, then each one ``include_paths`` names."""

    path: Path
    name: str
    """As messages show it: the main file by its name, an included one relative to the root."""
    text: str


class _Loaded(msgspec.Struct):
    sources: list[Source]
    plain: dict[str, Any]
    lines: dict[str, list[int]]
    model: ProjectFile
    warnings: list[str]


def _read(path: Path, name: str | None = None) -> str:
    try:
        return decode(path.read_bytes(), name or path.name)
    except OSError as exc:
        raise ProjectFileError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions") from exc


def _included(root: Path, main: Path, patterns: list[str], where: Callable[[int], str]) -> list[Source]:
    """The files ``include_paths`` names, read."""
    from strata.project import includes

    sources = []
    for path in includes.resolve(root, main, patterns, where):
        name = path.relative_to(root).as_posix()
        sources.append(Source(path, name, _read(path, name)))
    return sources


def _load(root: Path, path: Path, text: str, system_dir: Path) -> _Loaded:
    """Sources, plain data, line map and model of the project files, from the parse cache when unchanged.

    Parsing with ruamel.yaml costs more than the rest of a read-only command; the cache under
    ``.strata/cache/`` holds the validated plain data, the file and line of every key and the
    warnings, keyed by the strata version and the exact text of every file (the main one and
    those its ``include_paths`` name now), so ``config list`` and friends never import the YAML
    library. A cache that cannot be read or no longer fits the schema is ignored.
    """
    from strata import __version__

    main = Source(path, path.name, text)
    key: list[Any] = [_CACHE_VERSION, __version__, str(path), text]
    cache = system_dir / "cache" / "project.json"
    try:
        cached = json.loads(cache.read_bytes())
        if cached["key"][:4] == key:
            plain, lines = cached["plain"], cached["lines"]

            def where(index: int) -> str:
                found = lines.get(path_key(["include_paths", index]))
                return f"{path.name}:{found[1]}" if found else path.name

            sources = [main, *_included(root, path, plain.get("include_paths") or [], where)]
            if cached["key"] == _cache_key(key, sources) and isinstance(plain, dict) and isinstance(lines, dict):
                model = _model(plain, path)
                return _Loaded(sources, plain, lines, model, [str(w) for w in cached["warnings"]])
    except ProjectFileError:
        raise
    except Exception:  # noqa: BLE001, S110 - any damage to derived data means: parse the files again
        pass
    loaded = _parse_all(root, [main])
    with contextlib.suppress(OSError):
        from strata.project.files import write_atomic

        cache.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "key": _cache_key(key, loaded.sources),
            "plain": loaded.plain,
            "lines": loaded.lines,
            "warnings": loaded.warnings,
        }
        write_atomic(cache, json.dumps(entry), mode=0o600)
    return loaded


def _cache_key(key: list[Any], sources: list[Source]) -> list[Any]:
    return [*key, [[s.name, s.text] for s in sources[1:]]]


def _parse(source: Source, *, main: bool) -> CommentedMap:
    """The round-trip tree of one file; an empty included file holds nothing."""
    from ruamel.yaml.comments import CommentedMap

    from strata.project import yamlfile

    if main:
        return yamlfile.load_tree_from_text(source.text, source.path)
    tree = yamlfile.load_text(source.text, source.name)
    if tree is None:
        return CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise ProjectFileError(
            f"{source.name}:1: an included file must be a mapping of keys to values", "see meltano.yml"
        )
    return tree


def _parse_all(root: Path, sources: list[Source]) -> _Loaded:
    """Parse and validate the main file, then the files it includes (read now unless given), and merge them."""
    from strata.project import includes, yamlfile
    from strata.project.schema import IncludedFile

    main = sources[0]
    main_tree = _parse(main, main=True)
    prepare = without_custom_keys if lenient(main.path) else None
    model = yamlfile.convert(main_tree, ProjectFile, main.path, prepare)
    if len(sources) == 1:

        def where(index: int) -> str:
            line = yamlfile.line_of(main_tree, ["include_paths", index])
            return f"{main.name}:{line}" if line else main.name

        sources = [main, *_included(root, main.path, model.include_paths, where)]
    trees, warnings = [main_tree], _unknown_keys(main, main_tree)
    for source in sources[1:]:
        tree = _parse(source, main=False)
        yamlfile.convert(tree, IncludedFile, Path(source.name), prepare)
        trees.append(tree)
        for key in includes.extra_keys(tree):
            line = yamlfile.line_of(tree, [key])
            message = (
                f"{source.name}:{line}: `{key}` is not read from an included file (only {', '.join(includes.SECTIONS)})"
            )
            if not lenient(main.path):
                raise ProjectFileError(message, f"move it to {main.name}")
            warnings.append(f"{message}; move it to {main.name}")
    merged, _ = includes.merge(trees)
    plain = yamlfile.plain(merged)
    if len(trees) > 1:
        model = _model(plain, main.path)
    return _Loaded(sources, plain, includes.line_map(merged, trees), model, warnings)


def _model(plain: dict[str, Any], main: Path) -> ProjectFile:
    """The model of validated plain data; in ``meltano.yml`` unknown plugin keys (custom extras) are left out of it."""
    return msgspec.convert(without_custom_keys(plain) if lenient(main) else plain, ProjectFile)


def lenient(path: Path) -> bool:
    """Whether the project file is read with Meltano's leniency (``meltano.yml``) or strictly (``strata.yml``).

    Meltano accepts unknown top-level keys, one name for plugins of different types and
    environments that configure undefined plugins: in ``meltano.yml`` those are warnings, in
    strata's own file errors. It also keeps an unknown key of a plugin entry as a custom extra:
    accepted silently in ``meltano.yml``, an error in strata's own file.
    """
    return path.name == "meltano.yml"


def _unknown_keys(main: Source, tree: CommentedMap) -> list[str]:
    """A warning for each top-level key the schema does not know; an error in a strict file."""
    import difflib

    from strata.project import yamlfile

    known = ProjectFile.__struct_fields__
    warnings = []
    for key in (str(k) for k in tree if k not in known):
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else "remove it or check the spelling"
        where = f"{main.name}:{yamlfile.line_of(tree, [key])}"
        if not lenient(main.path):
            raise ProjectFileError(f"{where}: unknown key `{key}`", hint)
        warnings.append(f"{where}: unknown key `{key}` is not read; {hint}")
    return warnings


def _dump(tree: CommentedMap, style: Style) -> str:
    from strata.project import yamlfile

    return yamlfile.dump(tree, style)
