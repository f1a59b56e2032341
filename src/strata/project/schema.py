"""The schema of ``strata.yml`` and ``meltano.yml``.

strata reads both files with one schema: every key Meltano defines is accepted (so a Meltano
project loads unchanged), strata adds ``features`` and ``stores`` (at the top and in an
environment). Any other key inside a
section is an error that names the file, the line and the key; an unknown top-level key is
not read and gets a warning (Meltano accepts it). In ``meltano.yml`` an unknown key of a
plugin entry is a custom extra (``without_custom_keys``), as in Meltano. Free-form mappings (plugin ``config``,
``metadata``, ``schema``, ``env``) are kept as plain dictionaries.
"""

from typing import Any

import msgspec

PLUGIN_TYPES: tuple[str, ...] = (
    "extractors",
    "loaders",
    "mappers",
    "utilities",
    "transformers",
    "orchestrators",
    "files",
    "transforms",
)
"""Plugin sections of the project file, in the order strata lists them."""

ADDABLE_TYPES: dict[str, str] = {
    "extractor": "extractors",
    "loader": "loaders",
    "mapper": "mappers",
    "utility": "utilities",
    "transformer": "transformers",
    "orchestrator": "orchestrators",
    "file": "files",
}
"""Singular names accepted by ``strata add`` (the plural works too, as in Meltano), mapped to their section.

Meltano's ``transform`` (a dbt package) and ``mapping`` (an entry of a mapper) are not plugins strata adds.
"""


def singular(plugin_type: str) -> str:
    """``utilities`` -> ``utility``, ``extractors`` -> ``extractor``."""
    return next((one for one, many in ADDABLE_TYPES.items() if many == plugin_type), plugin_type.removesuffix("s"))


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every schema node: unknown keys are errors."""


class Setting(_Strict):
    """A declared plugin setting (``settings:`` entry)."""

    name: str
    aliases: list[str] = []
    label: str | None = None
    value: Any = None
    placeholder: str | None = None
    kind: str | None = None
    description: str | None = None
    tooltip: str | None = None
    documentation: str | None = None
    hidden: bool = False
    sensitive: bool | None = None
    env: str | None = None
    value_processor: str | None = None
    value_post_processor: str | None = None
    oauth: dict[str, Any] | None = None
    options: list[dict[str, Any]] = []
    annotations: dict[str, Any] = {}


class Command(_Strict):
    """A ``commands:`` entry in its object form (Meltano's; a plain string is its ``args``)."""

    args: str = ""
    description: str | None = None
    executable: str | None = None
    container_spec: dict[str, Any] | None = None
    annotations: dict[str, Any] = {}


class Plugin(_Strict):
    """One plugin entry; environments reuse it for their per-plugin overrides."""

    name: str
    inherit_from: str | None = None
    variant: str | None = None
    pip_url: str | None = None
    namespace: str | None = None
    executable: str | None = None
    python: str | None = None
    capabilities: list[str] = []
    settings: list[Setting] = []
    settings_group_validation: list[list[str]] = []
    config: dict[str, Any] = {}
    env: dict[str, Any] = {}
    commands: dict[str, Any] = {}
    """Name -> a string (the args) or a ``Command`` object; checked when used (``ingest/commands.py``)."""
    requires: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    description: str | None = None
    label: str | None = None
    logo_url: str | None = None
    docs: str | None = None
    repo: str | None = None
    ext_repo: str | None = None
    plugin_type: str | None = None
    requires_meltano: str | None = None
    hidden: bool | None = None
    # extractor extras (``strata.project.extras`` resolves every extra)
    select: list[str] | None = None
    metadata: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None
    catalog: str | None = None
    state: str | None = None
    load_schema: str | None = None
    select_filter: list[str] | None = None
    use_cached_catalog: bool | None = None
    log_parser: str | None = None
    # loader, mapper and transform extras
    dialect: str | None = None
    mappings: list[dict[str, Any]] = []
    mapping_name: str | None = None
    vars: dict[str, Any] = {}
    package_name: str | None = None
    # file bundle extra: paths to rewrite on Meltano's `upgrade files` (read, not acted on)
    update: dict[str, Any] = {}


PLUGIN_KEYS = frozenset(Plugin.__struct_fields__)
"""The keys of a plugin entry the schema knows; in ``meltano.yml`` any other key is a custom extra."""


def without_custom_keys(data: Any) -> Any:
    """A project file's plain data without the unknown keys of its plugin entries, for validation.

    Meltano keeps such a key (``x-owner:``) as a custom extra ``_x-owner``. The entries under
    ``plugins.<type>`` and ``environments[].config.plugins.<type>`` are copied without them;
    anything not shaped as those sections is left for the schema to report.
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if "plugins" in data:
        out["plugins"] = _known_entries(data["plugins"])
    environments = data.get("environments")
    if isinstance(environments, list):
        out["environments"] = [_environment_known(env) for env in environments]
    return out


def _environment_known(env: Any) -> Any:
    config = env.get("config") if isinstance(env, dict) else None
    if not isinstance(config, dict) or "plugins" not in config:
        return env
    return {**env, "config": {**config, "plugins": _known_entries(config["plugins"])}}


def _known_entries(plugins: Any) -> Any:
    if not isinstance(plugins, dict):
        return plugins
    return {
        plugin_type: [
            {k: v for k, v in entry.items() if k in PLUGIN_KEYS} if isinstance(entry, dict) else entry
            for entry in entries
        ]
        if isinstance(entries, list)
        else entries
        for plugin_type, entries in plugins.items()
    }


class Plugins(_Strict):
    """The ``plugins:`` section, one list per plugin type."""

    extractors: list[Plugin] = []
    loaders: list[Plugin] = []
    mappers: list[Plugin] = []
    utilities: list[Plugin] = []
    transformers: list[Plugin] = []
    orchestrators: list[Plugin] = []
    files: list[Plugin] = []
    transforms: list[Plugin] = []


class EnvironmentConfig(_Strict):
    """An environment's ``config:`` block."""

    plugins: Plugins = msgspec.field(default_factory=Plugins)


class Environment(_Strict):
    """One entry of ``environments:``."""

    name: str
    config: EnvironmentConfig = msgspec.field(default_factory=EnvironmentConfig)
    env: dict[str, Any] = {}
    features: dict[str, Any] = {}
    """strata: ``store``, the feature store this environment uses (over the root ``features.store``)."""
    stores: dict[str, dict[str, Any]] = {}
    """strata: settings over the root ``stores:`` entries of the same names (or stores of its own)."""
    state_id_suffix: str | None = None
    annotations: dict[str, Any] = {}


Task = str | list[str | list[str]]


class Job(_Strict):
    """One entry of ``jobs:``."""

    name: str
    tasks: Task
    annotations: dict[str, Any] = {}


class Schedule(_Strict):
    """One entry of ``schedules:``; either ``job`` or ``extractor`` + ``loader``."""

    name: str
    interval: str
    job: str | None = None
    extractor: str | None = None
    loader: str | None = None
    transform: str | None = None
    start_date: str | None = None
    env: dict[str, Any] = {}
    annotations: dict[str, Any] = {}


class ProjectFile(msgspec.Struct, omit_defaults=True):
    """The whole project file. An unknown top-level key is not read, with a warning, as Meltano accepts it."""

    version: int | None = None
    project_id: str | None = None
    default_environment: str | None = None
    send_anonymous_usage_stats: bool | None = None
    requires_meltano: str | None = None
    database_uri: str | None = None
    python: str | None = None
    state_backend: dict[str, Any] = {}
    venv: dict[str, Any] = {}
    environments: list[Environment] = []
    include_paths: list[str] = []
    plugins: Plugins = msgspec.field(default_factory=Plugins)
    schedules: list[Schedule] = []
    env: dict[str, Any] = {}
    jobs: list[Job] = []
    features: dict[str, Any] = {}
    stores: dict[str, dict[str, Any]] = {}
    annotations: dict[str, Any] = {}
    database_max_retries: int | None = None
    database_retry_timeout: int | None = None
    project_readonly: bool | None = None
    cli: dict[str, Any] = {}
    elt: dict[str, Any] = {}
    experimental: bool | None = None
    ff: dict[str, Any] = {}
    hub_api_root: str | None = None
    hub_url: str | None = None
    hub_url_auth: str | bool | None = None
    snowplow: dict[str, Any] = {}
    auto_install: bool | None = None


class IncludedFile(msgspec.Struct, omit_defaults=True):
    """A file named by ``include_paths``: only these sections are read (other keys get a warning)."""

    plugins: Plugins = msgspec.field(default_factory=Plugins)
    schedules: list[Schedule] = []
    environments: list[Environment] = []
    jobs: list[Job] = []
