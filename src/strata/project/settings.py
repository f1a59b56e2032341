"""Plugin configuration: every value, where it came from, and which ones are secret.

Layers, lowest to highest (Meltano's order):

    default        the setting's ``value:`` in its ``settings:`` declaration
    inherited      the parent's resolved value (``inherit_from``)
    project file   the plugin's ``config:``
    environment    the active environment's ``config.plugins.<type>[name].config``
    .env           ``<PLUGIN>_<SETTING>`` in the project's ``.env``
    process env    ``<PLUGIN>_<SETTING>`` in the process environment
    command line   overrides passed by the caller

A ``config:`` key that starts with ``_`` is an extra (``_select``), not a setting: see
``strata.project.extras``. Nested config is flattened to dotted names (``a.b``) for resolution and nested again when
handed to the plugin. Values from the project file expand ``${VAR}``; values from variables
are cast to the setting's ``kind`` (or to the type of the value they override).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from strata.errors import SettingError, StrataError
from strata.project.expand import env_value, expand
from strata.project.schema import singular
from strata.project.values import OBJECT_KINDS, parse_value

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from strata.project.project import PluginRef, Project
    from strata.project.schema import Setting

REDACTED = "(redacted)"
_SECRET_NOUNS = ("password", "passwd", "passphrase", "secret", "token", "credential")
"""A name whose last word is one of these, or ends in one (``dbpassword``, ``refreshtoken``), is secret."""
_KEY_OWNERS = frozenset(
    {"api", "private", "access", "secret", "ssh", "ssl", "tls", "client", "signing", "encryption", "master"}
    | {"account", "shared", "subscription", "app", "auth", "license", "developer", "hmac"}
)
"""Words that make a following ``key`` a credential (``api_key``, ``privateKey``); ``replication_key`` is not one."""
_SECRET_WORDS = frozenset({"pwd", *(f"{owner}key" for owner in _KEY_OWNERS)})
"""Last words that are secret on their own: ``pwd``, ``apikey``, ``privatekey`` …"""
_SECRET_PHRASES = (("key", "file"), ("access", "key", "id"), ("connection", "string"))
"""Endings of several words that are secret (a key file, an AWS key id, a connection string with its password)."""
_ENCODINGS = frozenset({"json", "b64", "base64"})
"""Trailing words that only say how a secret is written (``credentials_json``)."""
_SECRET_KINDS = {"password", "secret", "hidden", "oauth"}
_PLAIN_KINDS = {"boolean", "integer", "decimal", "date_iso8601", "options"}
"""Kinds whose values cannot be credentials: flags, numbers, dates and choices from a list."""
SINGER_TYPES = frozenset({"extractors", "loaders", "mappers"})
"""Plugin types that speak Singer: they get their config as a file, nested and without nulls."""


def redact_urls(text: str) -> str:
    """Hide credentials written into URLs.

    ``https://user:token@host`` -> ``https://***@host``; a query's ``?password=x`` (libpq takes one) -> ``***``.
    """
    text = re.sub(r"(?<=://)[^/\s]+@", "***@", text)
    return re.sub(r"(?i)(?<=[?&]password=)[^&\s'\"]+", "***", text)


def redact(value: Any, secret: bool = False) -> Any:
    """``value`` as it may be shown: secrets, secret-named keys inside it and URL credentials hidden."""
    if value is None:
        return None
    if secret:
        return REDACTED
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, dict):
        return {k: redact(v, looks_secret(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


_RANKS = {"unset": -1, "default": 0, "inherited": 1, ".env": 4, "env": 5, "command line": 6}


def rank_of(source: str) -> int:
    """Rank of a layer named as in ``SettingValue.source``: the project file is 2, an environment 3."""
    if source.startswith("environment "):
        return 3
    return _RANKS.get(source, 2)


def env_name(*parts: str) -> str:
    """``tap-postgres``, ``password`` -> ``TAP_POSTGRES_PASSWORD``."""
    return re.sub(r"[^A-Za-z0-9]", "_", "_".join(parts)).upper()


def looks_secret(name: str) -> bool:
    """Whether a setting name reads like a credential, by its whole words (camelCase and snake_case split).

    The last word decides, as the noun of the name: ``db_password``, ``clientSecret``,
    ``refresh_token``, ``gcp_credentials_json`` are secret; ``next_page_token_path``,
    ``token_uri`` are not. ``key`` is secret alone or after an owner word (``api_key``,
    ``aws_secret_access_key``), never after others (``primary_key_required``, ``replication_key``,
    ``s3_key_prefix``, ``key_hash``); ``keys`` alone is a list of key columns (tap-csv's
    ``files[].keys``), not a credential. A dotted name is read as one (``ssh.private_key``).
    """
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    while len(words) > 1 and words[-1] in _ENCODINGS:
        words.pop()
    if not words:
        return False
    last = words[-1]
    plural = last.endswith("s") and (last[:-1] == "key" or last[:-1].endswith(_SECRET_NOUNS))
    if plural:
        last = words[-1] = last[:-1]
    if last in _SECRET_WORDS or last.endswith(_SECRET_NOUNS):
        return True
    if last == "key" and ((len(words) == 1 and not plural) or (len(words) > 1 and words[-2] in _KEY_OWNERS)):
        return True
    return any(tuple(words[-len(phrase) :]) == phrase for phrase in _SECRET_PHRASES)


@dataclass(frozen=True)
class SettingValue:
    """One resolved setting."""

    name: str
    value: Any
    source: str
    """``default``, ``inherited``, the project file name, ``environment``, ``.env``, ``env`` or ``command line``."""
    detail: str = ""
    """Where exactly: ``strata.yml:12``, ``TAP_X_PASSWORD``, ``environment dev`` …"""
    secret: bool = False
    problem: StrataError | None = None
    """Set when the value could not be resolved (an unset ``${VAR}``, a variable that does not fit the kind)."""

    @property
    def rank(self) -> int:
        """How high the layer this value came from sits; a higher rank wins."""
        return rank_of(self.source)

    @property
    def shown(self) -> Any:
        """The value as it may be printed: secrets, secret-named keys inside it and URL credentials redacted."""
        return redact(self.value, self.secret)

    def describe(self) -> str:
        """``strata.yml:12``, ``env TAP_X_PASSWORD``, ``environment dev (strata.yml:30)`` …."""
        if not self.detail or self.detail.startswith(self.source):
            return self.detail or self.source
        return f"{self.source} ({self.detail})"


@dataclass
class PluginSettings:
    """The resolved configuration of one plugin."""

    project: Project
    ref: PluginRef
    values: dict[str, SettingValue] = field(default_factory=dict)

    def config(self, *, redacted: bool = False) -> dict[str, Any]:
        """Nested configuration to hand to the plugin (or to show, ``redacted``); raises if any value is unresolved."""
        out: dict[str, Any] = {}
        for item in self.values.values():
            if item.problem is not None:
                raise item.problem
            if item.value is not None:
                _nest(out, item.name, item.shown if redacted else item.value)
        return out

    def printed(self) -> dict[str, Any]:
        """What ``meltano config print`` shows: the plugin type's own processing of the config, secrets redacted.

        A Singer plugin (extractor, loader, mapper) gets its config nested and without null values,
        as in its config file; Airflow nested with every value as text; any other plugin the flat
        dotted names, with null for a setting that has no value.
        """
        if self.ref.plugin_type in SINGER_TYPES:
            return self.config(redacted=True)
        flat: dict[str, Any] = {}
        for item in self.values.values():
            if item.problem is not None:
                raise item.problem
            flat[item.name] = item.shown
        if self.ref.plugin_type != "orchestrators" or namespace(self.project, self.ref) != "airflow":
            return flat
        nested: dict[str, Any] = {}
        for name, value in flat.items():
            _nest(nested, name, str(value))
        return nested

    def as_env(self, *, redacted: bool = False) -> dict[str, str]:
        """The variables Meltano writes each setting to, for the plugin's process (or to show).

        Per setting, in Meltano's order: its declared ``env:``, then ``<PREFIX>_<SETTING>`` for each
        of ``written_prefixes`` (``DBT_DUCKDB_PATH``, ``MELTANO_TRANSFORM_PATH``).
        """
        return exported(self.project, self.ref, self.values.values(), redacted=redacted)


class PluginVariables(NamedTuple):
    """What a plugin sees (see ``plugin_variables``)."""

    seen: dict[str, str]
    """Everything its process and its config's ``${VAR}`` see."""
    layered: dict[str, str]
    """The entries of ``seen`` that the ``env:`` blocks of the plugin and the environment decide."""
    own: dict[str, str]
    """The entries the plugin's ``env:`` blocks (its own and the environment's for it) add."""


def plugin_variables(project: Project, ref: PluginRef) -> PluginVariables:
    """What plugin ``ref``'s process and its config's ``${VAR}`` see.

    As Meltano layers them: its ancestors' ``env:`` (``inherit_from``, the nearest winning) < the
    project's variables (``Project.variables``) < the plugin's ``env:`` < the active environment's
    ``env:`` < that environment's ``env:`` for the plugin.
    The plugin's ``env:`` is expanded against the project's variables, the environment's entry
    for it against those and the plugin's.
    """
    from strata.project.expand import expand_env

    strict = project.strict_env_var_mode
    where = f"{project.line([*ref.path, 'env'])} env"
    inherited: dict[str, str] = {}
    for ancestor in reversed(lineage(project, ref)[1:]):
        inherited.update(ancestor.plugin.env)
    below = expand_env(inherited, project.variables, where, strict=strict) if inherited else {}
    variables = {**below, **project.variables}
    own = {name: value for name, value in below.items() if name not in project.variables}
    own.update(expand_env(ref.plugin.env, variables, where, strict=strict))
    seen = {**variables, **own}
    names = set(own)
    if project.environment is not None:
        names.update(project.environment.env)
        seen.update({name: variables[name] for name in project.environment.env if name in variables})
    override = project.environment_override(ref)
    if override is not None:
        plugin, path = override
        inner = expand_env(plugin.env, seen, f"{project.line([*path, 'env'])} env", strict=strict)
        own.update(inner)
        seen.update(inner)
        names.update(inner)
    return PluginVariables(seen, {name: seen[name] for name in names if name in seen}, own)


def declared_settings(project: Project, ref: PluginRef) -> dict[str, Setting]:
    """Settings declared by the plugin and its ancestors (the nearest declaration wins)."""
    chain = lineage(project, ref)
    out: dict[str, Setting] = {}
    for plugin_ref in reversed(chain):
        for setting in plugin_ref.plugin.settings:
            out[setting.name] = setting
    return out


def lineage(project: Project, ref: PluginRef) -> list[PluginRef]:
    """``ref`` followed by its ancestors through ``inherit_from``."""
    chain = [ref]
    while chain[-1].plugin.inherit_from is not None:
        chain.append(project.plugin(chain[-1].plugin.inherit_from, chain[-1].plugin_type))
    return chain


def namespace(project: Project, ref: PluginRef) -> str:
    """The plugin's namespace: its own, its root ancestor's, or its name with ``_``."""
    chain = lineage(project, ref)
    for plugin_ref in chain:
        if plugin_ref.plugin.namespace:
            return plugin_ref.plugin.namespace
    return chain[-1].name.replace("-", "_")


_VERBS = {
    "extractors": "extract",
    "loaders": "load",
    "mappers": "map",
    "utilities": "utilize",
    "transformers": "transform",
    "transforms": "transform",
    "orchestrators": "orchestrat",
    "files": "fi",
}
"""Meltano's ``PluginType.verb`` (``MELTANO_EXTRACT_*``), its odd forms included."""


def own_namespace(project: Project, ref: PluginRef) -> str:
    """The namespace Meltano gives ``ref`` itself: its own, else an inheriting plugin's name with ``_``.

    (``namespace`` is the one its settings are read under, the root ancestor's.)
    """
    if ref.plugin.namespace:
        return ref.plugin.namespace
    return ref.name.replace("-", "_") if ref.plugin.inherit_from is not None else namespace(project, ref)


def written_prefixes(project: Project, ref: PluginRef) -> list[str]:
    """Meltano's prefixes of the variables a plugin's settings are written to, for its process.

    Its name and namespace, each ancestor's, then ``MELTANO_<VERB>`` (``env_prefixes(for_writing=True)``).
    """
    prefixes = [part for owner in lineage(project, ref) for part in (owner.name, own_namespace(project, owner))]
    prefixes.append(f"meltano_{_VERBS.get(ref.plugin_type, ref.plugin_type)}")
    return list(dict.fromkeys(prefixes))


def plugin_info_env(project: Project, ref: PluginRef) -> dict[str, str]:
    """``MELTANO_<TYPE>_NAME``, ``_NAMESPACE`` and ``_VARIANT`` (``default`` when none is set), as in Meltano."""
    variant = next((owner.plugin.variant for owner in lineage(project, ref) if owner.plugin.variant), "default")
    info = {"name": ref.name, "namespace": own_namespace(project, ref), "variant": variant}
    return {env_name("meltano", singular(ref.plugin_type), key): value for key, value in info.items()}


def exported(
    project: Project, ref: PluginRef, values: Iterable[SettingValue], *, redacted: bool = False
) -> dict[str, str]:
    """``values`` as the variables Meltano hands the plugin, per value in Meltano's order.

    Its declared ``env:`` name, then ``<PREFIX>_<NAME>`` for each of ``written_prefixes``:
    ``TAP_X_USER``, ``<NAMESPACE>_USER``, ``MELTANO_EXTRACT_USER``; extras likewise
    (``TAP_X__SELECT``, ``MELTANO_EXTRACT__LOAD_SCHEMA``). Unset values and values in error are left out.
    """
    prefixes = written_prefixes(project, ref)
    declared = declared_settings(project, ref)
    env: dict[str, str] = {}
    for item in values:
        if item.value is None or item.problem is not None:
            continue
        value = env_value(item.shown if redacted else item.value)
        setting = declared.get(item.name)
        custom = [setting.env] if setting is not None and setting.env else []
        for name in [*custom, *(env_name(prefix, item.name) for prefix in prefixes)]:
            env.setdefault(name, value)
    return env


def is_secret(name: str, declared: Setting | None) -> bool:
    """A declaration decides (``sensitive``, a secret or plain ``kind``); otherwise the name does."""
    if declared is not None:
        if declared.sensitive or declared.kind in _SECRET_KINDS:
            return True
        if declared.sensitive is False or declared.kind in _PLAIN_KINDS:
            return False
    return looks_secret(name)


def variable_names(project: Project, ref: PluginRef, name: str, declared: Setting | None) -> list[str]:
    """Variables that set ``name`` for ``ref``, most specific first.

    As in Meltano 4, a setting's own ``env:`` is not among them: it names the variable the plugin
    gets, it does not set the value (Meltano neither reads it nor writes it with ``config set``).
    An inheriting plugin reads the namespace's variable only when it has a namespace of its own:
    otherwise that variable is its parent's, and reaches it as an inherited value.
    """
    names = [env_name(ref.name, name)]
    if ref.plugin.inherit_from is None or ref.plugin.namespace:
        names.append(env_name(namespace(project, ref), name))
    names.extend(env_name(ref.name, alias) for alias in (declared.aliases if declared is not None else []))
    return list(dict.fromkeys(names))


def own_variable_names(project: Project, ref: PluginRef, name: str, declared: Setting | None) -> list[str]:
    """The variables of ``variable_names`` that belong to ``ref`` itself, not ones it shares with an ancestor.

    An inherited plugin reads its parent's ``env:`` name and namespace variable too; removing
    those would change the parent, so ``config unset`` removes only these.
    """
    own_declaration = any(setting.name == name for setting in ref.plugin.settings)
    names = []
    if declared is not None and declared.env and own_declaration:
        names.append(declared.env)
    names.append(env_name(ref.name, name))
    if ref.plugin.inherit_from is None or ref.plugin.namespace:
        names.append(env_name(namespace(project, ref), name))
    names.extend(env_name(ref.name, alias) for alias in (declared.aliases if declared is not None else []))
    return list(dict.fromkeys(names))


def resolve(
    project: Project,
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    plugin_type: str | None = None,
    context: Mapping[str, str] | None = None,
    heir: PluginRef | None = None,
) -> PluginSettings:
    """Resolve every setting of plugin ``name`` (of ``plugin_type``, see ``Project.plugin``) through all layers.

    ``${VAR}`` in values sees, in Meltano's order: ``Project.variables``, then ``context`` (the
    variables of the plugins before this one in a pipeline, see ``strata.ingest.pipeline_env``),
    then the plugin's own ``MELTANO_<TYPE>_NAME/NAMESPACE/VARIANT`` (``plugin_info_env``), then
    the ``env:`` blocks as ``plugin_variables`` layers them. A value a plugin inherits is expanded
    as its own (Meltano reads the parent's text in the child): ``heir`` is that child.
    """
    ref = project.plugin(name, plugin_type)
    declared = declared_settings(project, ref)
    variables = plugin_variables(project, ref)
    expanding = variables if heir is None else plugin_variables(project, heir)  # an inherited value: as the heir's
    seen = {**project.variables, **(context or {}), **plugin_info_env(project, heir or ref), **expanding.layered}
    layers: list[dict[str, SettingValue]] = []

    defaults = {}
    for key, setting in declared.items():
        if setting.value is not None:
            defaults[key] = from_file(project, seen, key, setting.value, "default", f"declared in {project.file_name}")
    layers.append(defaults)

    if ref.plugin.inherit_from is not None:
        parent = resolve(
            project, ref.plugin.inherit_from, plugin_type=ref.plugin_type, context=context, heir=heir or ref
        )
        layers.append(
            {
                k: SettingValue(k, v.value, "inherited", f"from {parent.ref.name}", problem=v.problem)
                for k, v in parent.values.items()
                if (v.value is not None or v.problem is not None) and v.source != "default"
            }
        )

    config_path = [*ref.path, "config"]
    layers.append(_file_layer(project, seen, ref.plugin.config, config_path, project.file_of(ref.path), declared))
    override = project.environment_override(ref)
    if override is not None:
        env_plugin, env_path = override
        assert project.environment is not None
        layers.append(
            _file_layer(
                project,
                seen,
                env_plugin.config,
                [*env_path, "config"],
                f"environment {project.environment.name}",
                declared,
            )
        )

    names = list(declared)
    for layer in layers:
        names.extend(k for k in layer if k not in names)

    below: dict[str, SettingValue] = {}
    for layer in layers:
        below.update(layer)
    for source, values in ((".env", project.dotenv), ("env", _environment(project, variables))):
        layer = _variable_layer(project, ref, names, declared, below, source, values)
        layers.append(layer)
        below.update(layer)
    if overrides:
        layers.append({k: SettingValue(k, v, "command line") for k, v in overrides.items()})
        names.extend(k for k in overrides if k not in names)

    result = PluginSettings(project, ref)
    for key in names:
        chosen: SettingValue | None = None
        for layer in layers:
            chosen = layer.get(key, chosen)
        secret = is_secret(key, declared.get(key))
        if chosen is None:
            chosen = SettingValue(key, None, "unset")
        result.values[key] = SettingValue(
            chosen.name, chosen.value, chosen.source, chosen.detail, secret, chosen.problem
        )
    return result


def _variable_layer(
    project: Project,
    ref: PluginRef,
    names: list[str],
    declared: Mapping[str, Setting],
    below: Mapping[str, SettingValue],
    source: str,
    variables: Mapping[str, str],
) -> dict[str, SettingValue]:
    """Settings set by ``<PLUGIN>_<SETTING>`` variables; one that does not fit its kind keeps the error."""
    layer = {}
    for key in names:
        var = next((v for v in variable_names(project, ref, key, declared.get(key)) if v in variables), None)
        if var is None:
            continue
        previous = below.get(key)
        try:
            value = _cast(variables[var], declared.get(key), previous.value if previous else None, var)
        except SettingError as exc:
            layer[key] = SettingValue(key, None, source, var, problem=exc)
        else:
            layer[key] = SettingValue(key, value, source, var)
    return layer


def _environment(project: Project, variables: PluginVariables) -> dict[str, str]:
    """The variables a setting reads as ``env``: the process's, and those the ``env:`` blocks set.

    As in Meltano, ``TAP_X_PASSWORD`` in the project's, the plugin's or an environment's ``env:``
    sets the setting just as the process would; where ``.env`` decides a name, it stays ``.env``'s.
    """
    blocks = {name for name in project.model.env if name not in project.dotenv} | set(variables.layered)
    return {name: value for name, value in variables.seen.items() if name in project.environ or name in blocks}


def _file_layer(
    project: Project,
    variables: Mapping[str, str],
    config: dict[str, Any],
    path: list[str | int],
    source: str,
    declared: Mapping[str, Setting],
) -> dict[str, SettingValue]:
    layer = {}
    for key, (value, key_path) in flatten(config, path, declared).items():
        if key.startswith("_"):
            continue  # an extra (``config._select``), as Meltano reads it: see ``strata.project.extras``
        where = project.line(key_path)
        layer[key] = from_file(project, variables, key, value, source, where)
    return layer


def from_file(
    project: Project, variables: Mapping[str, str], key: str, value: Any, source: str, where: str
) -> SettingValue:
    """A value from the project file, its ``${VAR}`` expanded against ``variables`` (``plugin_variables``).

    An expansion that fails is kept as the problem. A text that expands to nothing at all
    (``${MELTANO_EXTRACTOR_NAMESPACE}`` outside a pipeline) is unset, as in Meltano: the setting
    is then left out of the plugin's config.
    """
    try:
        expanded = expand(value, variables, f"{where} `{key}`", strict=project.strict_env_var_mode)
    except StrataError as exc:
        return SettingValue(key, None, source, where, problem=exc)
    if isinstance(value, str) and value and not expanded:
        expanded = None
    return SettingValue(key, expanded, source, where)


def flatten(
    config: Mapping[str, Any],
    path: list[str | int],
    declared: Mapping[str, Setting],
    prefix: str = "",
) -> dict[str, tuple[Any, list[str | int]]]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": (1, path)}``, stopping at object/array settings."""
    out: dict[str, tuple[Any, list[str | int]]] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        setting = declared.get(name)
        is_leaf = not isinstance(value, dict) or not value or (setting is not None and setting.kind in OBJECT_KINDS)
        if is_leaf:
            out[name] = (value, [*path, key])
        else:
            out.update(flatten(value, [*path, key], declared, f"{name}."))
    return out


def _nest(target: dict[str, Any], dotted_name: str, value: Any) -> None:
    *parents, leaf = dotted_name.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    target[leaf] = value


def _cast(raw: str, declared: Setting | None, below: Any, where: str) -> Any:
    """Cast a string from a variable to the setting's kind, or to the type it overrides.

    A declared kind is a promise, so a value that does not fit it is an error; a type merely
    guessed from the overridden value is not, and the text is kept.
    """
    if declared is not None and declared.kind is not None:
        return parse_value(raw, declared.kind, where)
    guessed = _kind_of(below)
    if guessed is None:
        return raw
    try:
        return parse_value(raw, guessed, where)
    except SettingError:
        return raw


def _kind_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return None
