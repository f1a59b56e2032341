"""The feature half of a project: its feature graph and its metadata stores, as ``strata.yml`` says.

    features:
      entrypoints: [features.video]      # modules imported into the graph
      store: local                       # the store commands use unless told otherwise
      executor: ray                      # where build runs compute: local (default) or ray
      ray_address: auto                  # the Ray cluster (default: a local instance strata starts)
    stores:
      local:   {type: duckdb, path: .strata/metadata.duckdb, hash_algorithm: md5, memory_limit: 50%}
      scratch: {type: memory}
      team:    {type: sqlite, path: team.sqlite}   # one file, several processes take turns (WAL)
      big:     {type: clickhouse, host: ch.internal, username: strata, password: ${CH_PASSWORD}}  # or path: a chDB dir
      shared:  {type: postgres, uri: "postgresql://me:${PG_PASSWORD}@db:5432/features", schema: strata}
      dev:     {type: duckdb, path: dev.duckdb, fallbacks: [local]}   # reads what it lacks from local
    environments:
      - name: dev
        features: {store: dev}           # this environment's store
        stores: {local: {path: /data/prod.duckdb}}   # over the root's settings of `local`

Without ``stores:`` the project has one store, ``local``: DuckDB at ``.strata/metadata.duckdb``.
Store names, types and keys are checked before anything is opened; a mistake is one
:class:`~strata.errors.ProjectFileError` naming ``file:line`` and what is allowed. A feature
module that fails to import is one :class:`~strata.errors.DefinitionError` naming the module
and the line that failed.

The glue between ``project/`` (which imports nothing else of strata) and ``features/`` and
``stores/``; store classes are imported only when a store is built.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import DefinitionError, ProjectFileError, RuntimeFailure, StrataError, UsageError
from strata.features.graph import FeatureGraph, load_entrypoints
from strata.features.versions import ALGORITHMS, DEFAULT_ALGORITHM

if TYPE_CHECKING:
    from collections.abc import Callable

    from strata.project.project import Project
    from strata.stores.base import MetadataStore

DEFAULT_STORE = "local"
"""Name of the store a project has when it declares no ``stores:``."""

DEFAULT_STORE_PATH = ".strata/metadata.duckdb"
DEFAULT_SQLITE_PATH = ".strata/metadata.sqlite"

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_STORE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_FEATURES_KEYS = ("entrypoints", "store", "executor", "ray_address")
_RAY_ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9_.\[\]:-]+:[0-9]+")

EXECUTORS = ("local", "ray")
"""Where ``strata build`` runs ``compute``: in-process or a process pool, or Ray tasks."""

_STORE_KEYS: dict[str, tuple[str, ...]] = {
    "duckdb": ("type", "path", "hash_algorithm", "memory_limit", "fallbacks", "read_only"),
    "memory": ("type", "hash_algorithm", "fallbacks", "read_only"),
    "sqlite": ("type", "path", "hash_algorithm", "fallbacks", "read_only"),
    "postgres": ("type", "uri", "schema", "hash_algorithm", "fallbacks", "read_only"),
    "clickhouse": (
        "type",
        "path",
        "host",
        "port",
        "username",
        "password",
        "database",
        "secure",
        "hash_algorithm",
        "fallbacks",
        "read_only",
    ),
}
"""Store types a project can declare, and the keys each accepts."""


@dataclass(frozen=True)
class StoreConfig:
    """One entry of ``stores:``, checked and with ``${VAR}`` expanded."""

    name: str
    type: str
    hash_algorithm: str
    path: Path | None = None
    where: str = ""
    memory_limit: str | None = None
    """DuckDB: how much memory it may use before spilling (None: the store's default)."""
    fallbacks: tuple[str, ...] = ()
    """Stores read through, in order, for a feature this one holds no rows of."""
    server: tuple[tuple[str, Any], ...] = ()
    """ClickHouse on a server: host, port, username, password, database, secure (``${VAR}`` expanded)."""
    uri: str | None = None
    """PostgreSQL: the connection URI (``${VAR}`` expanded: it may hold a password)."""
    schema: str | None = None
    """PostgreSQL: the schema of the store's tables (None: the connection's ``search_path``)."""
    hidden: tuple[tuple[str, str], ...] = ()
    """(value, ``${NAME}``) of every variable the entry uses: messages show the reference, never the value."""
    read_only: bool = False
    """``read_only: true``: the project only reads the store (writes, builds and pushes are refused)."""

    def shown(self, text: str) -> str:
        """``text`` as a message may show it: variables' values as their ``${NAME}``, URL credentials hidden."""
        from strata.project.settings import redact_urls

        for value, reference in self.hidden:
            text = text.replace(value, reference)
        return redact_urls(text)

    def describe(self) -> str:
        """``duckdb at /p/.strata/metadata.duckdb``, ``postgres at postgresql://***@db:5432/features``."""
        if self.path is None and self.server:
            server = dict(self.server)
            port = server.get("port") or (8443 if _is_true(server.get("secure")) else 8123)
            return self.shown(f"{self.type} at {server.get('host')}:{port}")
        where = self.path if self.path is not None else self.uri
        return self.shown(f"{self.type} at {where}") if where is not None else self.type

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "hash_algorithm": self.hash_algorithm,
            "path": None if self.path is None else str(self.path),
            **({"uri": self.shown(self.uri), "schema": self.schema} if self.uri is not None else {}),
        }


# -- the graph ---------------------------------------------------------------------------


def feature_modules(project: Project) -> list[str]:
    """The modules named by ``features.entrypoints``, checked to be plain dotted module names."""
    features = _features_section(project)
    modules = features.get("entrypoints", [])
    where = project.line(["features", "entrypoints"])
    if not isinstance(modules, list):
        raise ProjectFileError(
            f"{where}: features.entrypoints must be a list of module names",
            "write e.g. `entrypoints: [features.video]`",
        )
    for index, name in enumerate(modules):
        if not isinstance(name, str) or not _MODULE.fullmatch(name):
            raise ProjectFileError(
                f"{project.line(['features', 'entrypoints', index])}: `{name}` is not a module name",
                "name a module importable from the project root, e.g. `features.video` (no paths, no leading dots)",
            )
    return list(modules)


def load_graph(project: Project, *, check: bool = True) -> FeatureGraph:
    """Import the project's feature modules into a new graph and check it (unless ``check=False``)."""
    from strata.bridge.streams import add_stream_features

    modules = feature_modules(project)
    graph = FeatureGraph()
    if not modules:
        add_stream_features(project, graph)
        if check:
            graph.validate()
        return graph
    _forget_foreign_modules(modules, project.root)
    root = str(project.root)
    if root in sys.path:  # first on the path, so its modules win over another project's
        sys.path.remove(root)
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    try:
        return load_entrypoints(
            modules, project.root, graph, before_validate=lambda g: add_stream_features(project, g), check=check
        )
    except Exception as exc:
        failed = next((m for m in modules if m not in sys.modules), None)
        if failed is None or isinstance(exc.__cause__, ImportError):
            raise  # a graph-level error (cycle, unknown upstream) or a module that is not there
        raise _import_failure(failed, exc, project.root) from exc


def _features_section(project: Project) -> dict[str, Any]:
    features = project.model.features
    unknown = sorted(set(features) - set(_FEATURES_KEYS))
    if unknown:
        raise ProjectFileError(
            f"{project.line(['features', unknown[0]])}: unknown key `features.{unknown[0]}`",
            f"features takes: {', '.join(_FEATURES_KEYS)}",
        )
    return features


def _forget_foreign_modules(modules: list[str], root: Path) -> None:
    """Drop cached modules of the same names that come from another project.

    A process that loads two projects (tests, notebooks) would otherwise get the first
    project's ``features`` package back from ``sys.modules``. Only names the project itself
    provides (``<root>/features/`` or ``<root>/features.py``) are touched.
    """
    for top in {m.split(".")[0] for m in modules}:
        if not ((root / top).is_dir() or (root / f"{top}.py").is_file()):
            continue
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            if not _module_under(sys.modules[name], root):
                del sys.modules[name]


def _module_under(module: Any, root: Path) -> bool:
    places = [getattr(module, "__file__", None), *list(getattr(module, "__path__", None) or [])]
    return any(p is not None and Path(p).resolve().is_relative_to(root) for p in places)


def _import_failure(module: str, exc: Exception, root: Path) -> DefinitionError:
    """One line for a feature module that raised while being imported: where and what."""
    if isinstance(exc, SyntaxError):
        where = _relative(exc.filename, root) + (f":{exc.lineno}" if exc.lineno else "")
        return DefinitionError(f"feature module `{module}` has a syntax error ({where}): {exc.msg}", "fix the module")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_under(f.filename, root)]
    where = f" ({_relative(frames[-1].filename, root)}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, StrataError):
        return DefinitionError(f"feature module `{module}`{where}: {exc.reason}", exc.instruction)
    detail = " ".join(str(exc).split()) or "(no message)"
    return DefinitionError(
        f"feature module `{module}` failed to import{where}: {type(exc).__name__}: {detail}",
        "fix the module; run with --debug for the traceback",
    )


def _is_under(filename: str | None, root: Path) -> bool:
    return filename is not None and Path(filename).resolve().is_relative_to(root)


def _relative(filename: str | None, root: Path) -> str:
    if filename is None:
        return "?"
    path = Path(filename).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


# -- the build executor ------------------------------------------------------------------


def build_executor(project: Project) -> tuple[str, str | None]:
    """``features.executor`` (``local`` unless told) and ``features.ray_address`` (None: a local instance).

    ``STRATA_FEATURES_EXECUTOR`` and ``STRATA_FEATURES_RAY_ADDRESS`` override the file.
    """
    from strata.project.expand import expand

    _features_section(project)
    executor = project.setting("features.executor")
    if executor is None:
        executor = "local"
    if executor not in EXECUTORS:
        raise ProjectFileError(
            f"{_where(project, 'features.executor')}: unknown features.executor `{executor}`",
            f"use one of: {', '.join(EXECUTORS)}",
        )
    address = project.setting("features.ray_address")
    if address is None:
        return executor, None
    where = _where(project, "features.ray_address")
    if isinstance(address, str):
        address = expand(
            address, project.variables, f"{project.file_name}: features.ray_address", strict=project.strict_env_var_mode
        )
    if not isinstance(address, str) or not _RAY_ADDRESS.fullmatch(address):
        raise ProjectFileError(
            f"{where}: features.ray_address `{address}` is not a Ray address",
            "use `auto`, `HOST:PORT` or `ray://HOST:PORT`, or leave it out to start a local Ray instance",
        )
    return executor, address


def _where(project: Project, name: str) -> str:
    """Where a setting's value came from, for messages: its variable, or ``file:line``."""
    var = "STRATA_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    if var in project.environ:
        return var
    if var in project.dotenv:
        return f".env: {var}"
    path: list[str | int] = [*name.split(".")]
    return project.line(path)


# -- stores ------------------------------------------------------------------------------


def store_configs(project: Project) -> dict[str, StoreConfig]:
    """Every store of the project, checked; the built-in ``local`` store when none is declared.

    The active environment's ``stores:`` entries go over the root's of the same name, key by key.
    """
    declared = _declared_stores(project)
    if not declared:
        return {DEFAULT_STORE: _default_store(project)}
    configs = {name: _store_config(project, name, entry, paths) for name, (entry, paths) in declared.items()}
    for config in configs.values():
        for index, fallback in enumerate(config.fallbacks):
            if fallback not in configs:
                where = project.line([*declared[config.name][1]["fallbacks"], index])
                raise ProjectFileError(
                    f"{where}: store `{config.name}` falls back on `{fallback}`, which is not a store",
                    f"stores in {project.file_name}: {', '.join(configs)}",
                )
    return configs


def _declared_stores(project: Project) -> dict[str, tuple[dict[str, Any], dict[str, list[str | int]]]]:
    """Each store's entry, the active environment's keys over the root's, and where each key is written."""
    out: dict[str, tuple[dict[str, Any], dict[str, list[str | int]]]] = {}
    for name, entry in project.model.stores.items():
        paths: dict[str, list[str | int]] = {"": ["stores", name]}
        if isinstance(entry, dict):
            paths.update({key: ["stores", name, key] for key in entry})
        out[name] = (entry, paths)
    at = _environment_path(project)
    if at is None or project.environment is None:
        return out
    for name, entry in project.environment.stores.items():
        base, paths = out.get(name, ({}, {"": [*at, "stores", name]}))
        paths = {**paths, **{key: [*at, "stores", name, key] for key in entry}}
        out[name] = ({**base, **entry}, paths)
    return out


def _environment_path(project: Project) -> list[str | int] | None:
    """The key path of the active environment's entry (``["environments", 2]``), or None."""
    env = project.environment
    if env is None:
        return None
    index = next(i for i, e in enumerate(project.model.environments) if e.name == env.name)
    return ["environments", index]


def default_store_name(project: Project) -> str:
    """``STRATA_FEATURES_STORE``, the active environment's ``features.store``, the root's.

    Else the only store, else ``local``.
    """
    _features_section(project)
    chosen, where = _chosen_store(project)
    if chosen is not None:
        if not isinstance(chosen, str) or not chosen:
            raise ProjectFileError(f"{where}: features.store must be a store name", "e.g. `store: local`")
        return chosen
    declared = list(_declared_stores(project))
    if len(declared) == 1:
        return declared[0]
    if not declared or DEFAULT_STORE in declared:
        return DEFAULT_STORE
    raise ProjectFileError(
        f"{project.line(['stores'])}: several stores ({', '.join(declared)}) and no features.store",
        "set `features: {store: NAME}` or pass --store NAME",
    )


def _chosen_store(project: Project) -> tuple[Any, str]:
    """``features.store`` as the variable, the active environment or the root says it, and where it is written."""
    variable = project.setting_variable("features.store")
    if variable is not None:
        return variable, "STRATA_FEATURES_STORE"
    at = _environment_path(project)
    if at is not None and project.environment is not None:
        features = project.environment.features
        unknown = sorted(set(features) - {"store"})
        if unknown:
            raise ProjectFileError(
                f"{project.line([*at, 'features', unknown[0]])}: unknown key `features.{unknown[0]}` in an environment",
                "an environment's features take: store",
            )
        if "store" in features:
            return features["store"], project.line([*at, "features", "store"])
    return project.setting("features.store"), project.line(["features", "store"])


def store_config(project: Project, name: str | None = None) -> StoreConfig:
    """The store called ``name`` (default: :func:`default_store_name`), checked."""
    wanted = name if name is not None else default_store_name(project)
    if not _STORE_NAME.fullmatch(wanted):
        raise UsageError(
            f"`{wanted}` is not a valid store name", "use letters, digits, `_` and `-`, starting with a letter or digit"
        )
    configs = store_configs(project)
    if wanted not in configs:
        if not _declared_stores(project):
            hint = (
                f"{project.file_name} declares no stores: only `{DEFAULT_STORE}` exists; declare others under `stores:`"
            )
        else:
            hint = f"stores in {project.file_name}: {', '.join(configs)}"
        said = "" if name is not None else f" (from {_chosen_store(project)[1]})"
        raise UsageError(f"no store named `{wanted}`{said}", hint)
    return configs[wanted]


def make_store(
    project: Project, name: str | None = None, *, graph: FeatureGraph | None = None, read_only: bool = False
) -> MetadataStore:
    """Build (not open) the store called ``name``; use it as ``with store: ...`` or :func:`opened`.

    ``read_only`` for commands that only report (``status``, ``build --dry-run``): they must
    never change a store, not even by recording what they saw. A store declared
    ``read_only: true`` is always opened so.
    """
    config = store_config(project, name)
    configs = store_configs(project)
    built: dict[str, MetadataStore] = {}

    def build(config: StoreConfig, *, read_only: bool) -> MetadataStore:
        store = _BUILDERS[config.type](config, graph, read_only)
        store.hidden = config.hidden
        built[config.name] = store
        for fallback in config.fallbacks:  # a cycle is built as one and refused when the store is opened
            store.fallbacks.append(built.get(fallback) or build(configs[fallback], read_only=True))
        return store

    return build(config, read_only=read_only or config.read_only)


@contextlib.contextmanager
def opened(store: MetadataStore, config: StoreConfig) -> Iterator[MetadataStore]:
    """``with store:``, with a failure to open (a locked or unreadable file) as one clear line."""
    try:
        store.__enter__()
    except StrataError:
        raise
    except Exception as exc:
        from strata.build.lock import holder, running

        who = holder(config)
        if who is not None and who != f"pid {os.getpid()}":  # the store's own lock error would not say who holds it
            raise running(config, who) from exc
        held = _held_by(exc)
        if held is not None:
            raise RuntimeFailure(
                f"cannot open store `{config.name}` ({config.describe()}): "
                f"the file is locked by another process ({held})",
                "wait for it to finish (a `strata ui` page lets go between reads), or stop that process",
            ) from exc
        detail = config.shown(" ".join(str(exc).split()))
        raise RuntimeFailure(
            f"cannot open store `{config.name}` ({config.describe()}): {detail}",
            "check the path, and that no other process holds the database open",
        ) from exc
    try:
        yield store
    finally:
        store.__exit__(None, None, None)


def _held_by(exc: BaseException) -> str | None:
    """``pid 123, /usr/bin/python3``: the process whose lock on a DuckDB file refused ``exc``; None for other errors."""
    from strata.stores.duckdb.store import is_lock_conflict

    if not is_lock_conflict(exc):
        return None
    found = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", str(exc))
    if found is None:
        return "pid unknown"
    return f"pid {found[2]}, {found[1]}"


def _default_store(project: Project) -> StoreConfig:
    return StoreConfig(
        DEFAULT_STORE, "duckdb", DEFAULT_ALGORITHM, project.root / DEFAULT_STORE_PATH, where=project.file_name
    )


def _store_config(project: Project, name: str, entry: Any, paths: dict[str, list[str | int]]) -> StoreConfig:
    """One store's entry, checked; ``paths``: where each key (and the entry, ``""``) is written."""
    from strata.project.expand import expand

    def line(key: str = "") -> str:
        return project.line(paths.get(key, paths[""]))

    where = line()
    if not _STORE_NAME.fullmatch(name):
        raise ProjectFileError(
            f"{where}: `{name}` is not a valid store name",
            "use letters, digits, `_` and `-`, starting with a letter or digit",
        )
    types = ", ".join(_STORE_KEYS)
    if not isinstance(entry, dict) or "type" not in entry:
        raise ProjectFileError(f"{where}: store `{name}` has no type", f"add `type:` (one of: {types})")
    seen = _Seen(project.variables)
    values = expand(entry, seen, f"{project.file_name}: stores.{name}", strict=project.strict_env_var_mode)
    kind = values["type"]
    if kind not in _STORE_KEYS:
        raise ProjectFileError(
            f"{line('type')}: store `{name}` has unknown type `{kind}`",
            f"use one of: {types}",
        )
    allowed = _STORE_KEYS[kind]
    for key in values:
        if key not in allowed:
            raise ProjectFileError(
                f"{line(key)}: unknown key `{key}` for a {kind} store `{name}`",
                f"{kind} stores take: {', '.join(allowed)}",
            )
    algorithm = values.get("hash_algorithm", DEFAULT_ALGORITHM)
    if algorithm not in ALGORITHMS:
        raise ProjectFileError(
            f"{line('hash_algorithm')}: unknown hash_algorithm `{algorithm}`",
            f"use one of: {', '.join(ALGORITHMS)}",
        )
    path = None
    if kind == "duckdb":
        path = _duckdb_path(project, name, values.get("path", DEFAULT_STORE_PATH), line("path"))
    elif kind == "sqlite":
        path = _duckdb_path(project, name, values.get("path", DEFAULT_SQLITE_PATH), line("path"))
    server: tuple[tuple[str, Any], ...] = ()
    if kind == "clickhouse":
        path, server = _clickhouse_place(project, name, values, line)
    from strata.stores.duckdb import is_memory_limit

    limit = values.get("memory_limit")
    if limit is not None and not is_memory_limit(limit):
        raise ProjectFileError(
            f"{line('memory_limit')}: memory_limit `{limit}` is not a size",
            "write a size such as 4GB or 512MiB, or a share of the machine's memory like 50%",
        )
    fallbacks = values.get("fallbacks", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and _STORE_NAME.fullmatch(f) for f in fallbacks):
        raise ProjectFileError(
            f"{line('fallbacks')}: fallbacks of store `{name}` must be a list of store names",
            "e.g. `fallbacks: [prod]`",
        )
    read_only = values.get("read_only", False)
    if str(read_only).lower() not in {"true", "false"}:
        raise ProjectFileError(
            f"{line('read_only')}: read_only `{read_only}` is not true or false",
            "write `read_only: true` or leave it out",
        )
    uri, schema = _postgres_place(name, values, line) if kind == "postgres" else (None, None)
    hidden = tuple(sorted(((v, f"${{{k}}}") for k, v in seen.used.items() if v), key=lambda h: -len(h[0])))
    return StoreConfig(
        name,
        kind,
        algorithm,
        path,
        where=where,
        memory_limit=limit,
        fallbacks=tuple(fallbacks),
        uri=uri,
        schema=schema,
        hidden=hidden,
        server=server,
        read_only=_is_true(read_only),
    )


def _clickhouse_place(
    project: Project, name: str, values: dict[str, Any], line: Callable[[str], str]
) -> tuple[Path | None, tuple[tuple[str, Any], ...]]:
    """A ClickHouse store's ``path`` (embedded chDB) or its server settings; exactly one of the two."""
    if ("path" in values) == ("host" in values):
        raise ProjectFileError(
            f"{line('')}: ClickHouse store `{name}` needs `path:` (embedded chDB) or `host:` (a server), not both",
            "write e.g. `path: .strata/clickhouse`, or `host: ch.internal` with username and password",
        )
    if "path" in values:  # several embedded stores of one process share a directory by taking a database each
        for key in ("port", "username", "password", "secure"):
            if key in values:
                raise ProjectFileError(
                    f"{line(key)}: `{key}` of ClickHouse store `{name}` is for a server (`host:`), not for `path:`",
                    "drop it (embedded chDB takes no connection settings), or give `host:` instead of `path:`",
                )
        database = (("database", values["database"]),) if "database" in values else ()
        return _duckdb_path(project, name, values["path"], line("path")), database
    port = values.get("port")
    if port is not None and (not str(port).isdigit()):
        raise ProjectFileError(f"{line('port')}: port of store `{name}` is not a number", "e.g. `port: 8123`")
    keys = ("host", "port", "username", "password", "database", "secure")
    return None, tuple((k, values[k]) for k in keys if k in values)


class _Seen(Mapping[str, str]):
    """The project's variables, noting the ones an expansion reads (their values are not to be shown)."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._variables = variables
        self.used: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        value = self._variables[name]
        self.used[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._variables)

    def __len__(self) -> int:
        return len(self._variables)


def _postgres_place(name: str, values: dict[str, Any], line: Callable[[str], str]) -> tuple[str, str | None]:
    """A postgres store's ``uri`` and ``schema``, checked."""
    uri, schema = values.get("uri"), values.get("schema")
    if not isinstance(uri, str) or not uri.startswith(("postgresql://", "postgres://")):
        raise ProjectFileError(
            f"{line('uri')}: store `{name}` needs a connection URI",
            'e.g. `uri: "postgresql://user:${PG_PASSWORD}@host:5432/database"` (the password from a variable)',
        )
    if schema is not None and (not isinstance(schema, str) or not schema):
        raise ProjectFileError(f"{line('schema')}: schema of store `{name}` must be a name", "e.g. `schema: strata`")
    return uri, schema


def _duckdb_path(project: Project, name: str, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ProjectFileError(
            f"{where}: store `{name}` needs a file path",
            f"e.g. `path: {DEFAULT_STORE_PATH}` (relative to the project root), or `:memory:`",
        )
    if value == ":memory:":
        return Path(value)
    path = Path(value).expanduser()
    return path if path.is_absolute() else project.root / path


def _build_duckdb(config: StoreConfig, graph: FeatureGraph | None, read_only: bool) -> MetadataStore:
    from strata.stores.duckdb import DEFAULT_MEMORY_LIMIT
    from strata.stores.duckdb.store import DuckDBStore

    assert config.path is not None
    return DuckDBStore(
        config.path,
        hash_algorithm=config.hash_algorithm,
        graph=graph,
        read_only=read_only,
        memory_limit=config.memory_limit or DEFAULT_MEMORY_LIMIT,
        name=config.name,
    )


def _build_memory(config: StoreConfig, graph: FeatureGraph | None, read_only: bool) -> MetadataStore:
    from strata.stores.memory.store import InMemoryStore

    return InMemoryStore(hash_algorithm=config.hash_algorithm, graph=graph, read_only=read_only, name=config.name)


def _build_sqlite(config: StoreConfig, graph: FeatureGraph | None, read_only: bool) -> MetadataStore:
    from strata.stores.sqlite.store import SQLiteStore

    assert config.path is not None
    return SQLiteStore(
        config.path, hash_algorithm=config.hash_algorithm, graph=graph, read_only=read_only, name=config.name
    )


def _is_true(value: Any) -> bool:
    """A setting's yes (``true``, ``1``, ``yes``, any case; YAML's true)."""
    return str(value).lower() in {"true", "1", "yes"}


def _build_clickhouse(config: StoreConfig, graph: FeatureGraph | None, read_only: bool) -> MetadataStore:
    from strata.stores.clickhouse.store import ClickHouseStore

    server = dict(config.server)
    if "port" in server:
        server["port"] = int(server["port"])
    if "secure" in server:
        server["secure"] = _is_true(server["secure"])
    return ClickHouseStore(
        config.path, hash_algorithm=config.hash_algorithm, graph=graph, read_only=read_only, name=config.name, **server
    )


def _build_postgres(config: StoreConfig, graph: FeatureGraph | None, read_only: bool) -> MetadataStore:
    from strata.stores.postgres.store import PostgresStore

    assert config.uri is not None
    return PostgresStore(
        config.uri,
        schema=config.schema,
        hash_algorithm=config.hash_algorithm,
        graph=graph,
        read_only=read_only,
        name=config.name,
    )


_BUILDERS: dict[str, Callable[[StoreConfig, FeatureGraph | None, bool], MetadataStore]] = {
    "duckdb": _build_duckdb,
    "memory": _build_memory,
    "sqlite": _build_sqlite,
    "clickhouse": _build_clickhouse,
    "postgres": _build_postgres,
}
