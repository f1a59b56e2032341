"""Plugin tests: which ``commands:`` ``strata test`` runs, chosen as ``meltano test`` chooses them.

A plugin's tests are its commands whose names start with ``test`` (its ancestors' included).
``--all`` selects every test of every plugin (file bundles have none); ``PLUGIN`` selects all of
that plugin's tests; ``PLUGIN:TEST`` selects one command, which, as in Meltano, may be any
command of the plugin. With no argument and no ``--all`` nothing is selected. They run plugin by
plugin in Meltano's type order (extractors, loaders, transforms, orchestrators, transformers,
utilities, mappers) and file order, each plugin's tests in its ``commands:`` order, then the
commands named that are not tests. Unlike Meltano, every argument is checked before anything runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from strata.errors import UsageError
from strata.ingest import commands

if TYPE_CHECKING:
    from strata.ingest.commands import PluginCommand
    from strata.project.project import Project

ORDER = ("extractors", "loaders", "transforms", "orchestrators", "transformers", "utilities", "mappers")
"""Meltano's plugin type order, file bundles left out."""
_log = logging.getLogger("strata.ingest")


def is_test(name: str) -> bool:
    """Whether a command is a test: its name starts with ``test`` (Meltano's rule)."""
    return name.startswith("test")


def select(project: Project, names: list[str], *, all_tests: bool) -> list[PluginCommand]:
    """The commands to run for ``strata test NAMES [--all]``, in the order they run."""
    plan: dict[str, dict[str, PluginCommand | None]] = {}
    for ref in (ref for plugin_type in ORDER for ref in project.plugins(plugin_type)):
        tests = {n: c for n, c in commands.plugin_commands(project, ref).items() if is_test(n)}
        plan.setdefault(ref.name, {n: c if all_tests else None for n, c in tests.items()})
    for name in names:
        if name.count(":") > 1 or name.startswith(":") or name.endswith(":"):
            raise UsageError(
                f"`{name}` is not PLUGIN or PLUGIN:TEST", "name a plugin, or a plugin and one of its tests"
            )
        if ":" in name:
            command = commands.find(project, name)
            plan.setdefault(command.plugin.name, {})[command.name] = command
        else:
            _select_all(project, plan, name)
    return [command for chosen in plan.values() for command in chosen.values() if command is not None]


def _select_all(project: Project, plan: dict[str, dict[str, PluginCommand | None]], name: str) -> None:
    ref = project.plugin(name)
    tests = {n: c for n, c in commands.plugin_commands(project, ref).items() if is_test(n)}
    if not tests:
        _log.warning("`%s` has no tests (commands whose name starts with `test`); nothing of it runs", name)
    plan.setdefault(name, {}).update(tests)
