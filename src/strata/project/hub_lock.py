"""Hub plugin definitions from Meltano's lock files (``plugins/<type>/<name>--<variant>.lock``).

``meltano add`` writes the hub's definition of a plugin (its settings with their kinds and
defaults, namespace, executable, capabilities, commands) into a lock file that the project
commits; ``meltano.yml`` then names only the plugin, its variant and its config. Meltano reads
that definition beneath the project's entry, and so does strata: a plugin without a
``namespace`` and without ``inherit_from`` (a hub plugin, not a custom one) gets what its lock
file defines, and the project file wins wherever it says something itself. Nothing is fetched:
a plugin without a lock file is defined by the project file alone.
"""

from __future__ import annotations

import glob
from typing import TYPE_CHECKING, Any

import msgspec

from strata.errors import ProjectFileError
from strata.project.schema import Plugin, Setting

if TYPE_CHECKING:
    from pathlib import Path

LOCK_DIR = "plugins"
"""Meltano's directory of lock files, beside the project file."""

_INHERITED_FIELDS = ("namespace", "executable", "docs", "repo", "label", "description", "logo_url")
"""Single values the project entry takes from the definition when it does not set them."""


def lock_path(root: Path, plugin_type: str, plugin: Plugin) -> Path | None:
    """The lock file that defines ``plugin``, if it is a hub plugin and has one.

    With a ``variant`` the file is ``<name>--<variant>.lock``; without one, the only lock file of
    the name (Meltano would ask the hub for the default variant, strata works offline).
    """
    if plugin.namespace or plugin.inherit_from:
        return None
    directory = root / LOCK_DIR / plugin_type
    if plugin.variant:
        path = directory / f"{plugin.name}--{plugin.variant}.lock"
        return path if path.is_file() else None
    found = sorted(directory.glob(f"{glob.escape(plugin.name)}--*.lock"))
    return found[0] if len(found) == 1 else None


def read_definition(root: Path, path: Path) -> dict[str, Any]:
    """The definition in lock file ``path``; one that does not parse is a one-line error naming it."""
    where = path.relative_to(root)
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise ProjectFileError(
            f"{where}: not a Meltano plugin lock file ({exc})", "fix it, run `meltano lock --update`, or remove it"
        ) from None
    if not isinstance(data, dict):
        raise ProjectFileError(
            f"{where}: not a Meltano plugin lock file (not a JSON object)",
            "fix it, run `meltano lock --update`, or remove it",
        )
    return data


def with_definition(plugin: Plugin, definition: dict[str, Any], where: str) -> Plugin:
    """``plugin`` over ``definition``: the project entry wins, settings are merged by name.

    As in Meltano, the definition's settings come first and the entry's own settings (new ones,
    or ones that replace a definition's setting of the same name) after them; commands merge by
    name; a list or value the entry leaves empty comes from the definition.
    """
    own = {setting.name for setting in plugin.settings}
    settings = [s for s in _settings(definition.get("settings"), where) if s.name not in own]
    commands = definition.get("commands")
    changes: dict[str, Any] = {
        "settings": [*settings, *plugin.settings],
        "commands": {**(commands if isinstance(commands, dict) else {}), **plugin.commands},
        "pip_url": plugin.pip_url or _text(definition.get("pip_url")),
        "capabilities": plugin.capabilities or _texts(definition.get("capabilities")),
        "settings_group_validation": plugin.settings_group_validation
        or [g for g in definition.get("settings_group_validation") or [] if isinstance(g, list)],
    }
    for name in _INHERITED_FIELDS:
        changes[name] = getattr(plugin, name) or _text(definition.get(name))
    return msgspec.structs.replace(plugin, **changes)


def _settings(raw: Any, where: str) -> list[Setting]:
    """The definition's settings; keys strata's schema does not know (``protected`` …) are left out."""
    known = set(Setting.__struct_fields__)
    out = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        try:
            out.append(msgspec.convert({k: v for k, v in entry.items() if k in known}, Setting))
        except msgspec.ValidationError as exc:
            raise ProjectFileError(
                f"{where}: setting `{entry['name']}` does not fit Meltano's schema ({exc})",
                "fix it, run `meltano lock --update`, or remove it",
            ) from None
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
