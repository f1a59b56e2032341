r"""Plugin commands: the ``commands:`` of a plugin, run as ``PLUGIN:COMMAND``.

Meltano's semantics: an entry is a string (its ``args``) or an object with ``args``,
``executable`` (instead of the plugin's own, looked up in its environment first) and
``description``; ``container_spec`` is read and ignored with a warning (strata runs no
containers). A plugin has its ancestors' commands (``inherit_from``), its own winning. ``args``
is split as a shell would (``shlex``), then ``$VAR`` and ``${VAR}`` in each part are expanded
from the plugin's process environment (its resolved settings as ``<PLUGIN>_<SETTING>``, its
``env:``, the project's variables) by Meltano's rules: ``$NAME`` in upper case or ``${name}``,
``\\$`` for a literal ``$``, an unset variable stands for nothing (with a warning), and a part
that comes out empty is an error.
"""

from __future__ import annotations

import difflib
import logging
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from strata.errors import ProjectFileError, UsageError, VariableNotSetError
from strata.project.schema import Command

if TYPE_CHECKING:
    from strata.project.project import PluginRef, Project

_VARIABLE = re.compile(r"(?P<escape>\\)?\$(?:\{(?P<curly>\w+)\}|(?P<normal>[A-Z][A-Z0-9_]*))")
"""Meltano's ``ENV_VAR_PATTERN``: what a command's args may reference."""
_log = logging.getLogger("strata.ingest")
_SHAPE = "write a string of arguments, or an object with `args`, `executable`, `description`"


@dataclass(frozen=True)
class PluginCommand:
    """One command of one plugin, checked."""

    plugin: PluginRef
    name: str
    command: Command
    where: str
    """``file:line`` of its entry, for messages."""
    strict: bool = False
    """``ff.strict_env_var_mode``: an unset variable in ``args`` is an error, as everywhere else."""

    @property
    def block(self) -> str:
        """``PLUGIN:COMMAND``."""
        return f"{self.plugin.name}:{self.name}"

    def argv(self, executable: str, environ: dict[str, str]) -> list[str]:
        """``executable`` and the expanded ``args``."""
        return [executable, *expanded_args(self, environ)]


def is_command_block(name: str) -> bool:
    """Whether a block name has the ``PLUGIN:COMMAND`` form (``features:build`` aside)."""
    plugin, sep, command = name.partition(":")
    return bool(sep and plugin and command) and plugin != "features"


def plugin_commands(project: Project, ref: PluginRef) -> dict[str, PluginCommand]:
    """Every command of ``ref``, its ancestors' first; a malformed entry is a project file error."""
    from strata.project.settings import lineage

    out: dict[str, PluginCommand] = {}
    for owner in reversed(lineage(project, ref)):
        for name, raw in owner.plugin.commands.items():
            where = project.line([*owner.path, "commands", name])
            parsed = _parse(raw, where, owner, str(name))
            out[str(name)] = PluginCommand(ref, str(name), parsed, where, project.strict_env_var_mode)
    return out


def find(project: Project, block: str) -> PluginCommand:
    """The command a ``PLUGIN:COMMAND`` block names; unknown plugins and commands say what exists."""
    plugin_name, _, name = block.partition(":")
    ref = project.plugin(plugin_name)
    commands = plugin_commands(project, ref)
    found = commands.get(name)
    if found is not None:
        return found
    if not commands:
        raise UsageError(
            f"`{plugin_name}` defines no commands, so `{block}` cannot run",
            f"add `{name}` under its `commands:` in {project.file_name}",
        )
    close = difflib.get_close_matches(name, list(commands), n=1)
    hint = f"did you mean `{plugin_name}:{close[0]}`?" if close else f"its commands: {', '.join(sorted(commands))}"
    raise UsageError(f"`{plugin_name}` has no command `{name}`", hint)


def expanded_args(command: PluginCommand, environ: dict[str, str]) -> list[str]:
    """``args`` split as a shell would, then each part expanded; an empty part is an error (Meltano's rule)."""
    where = f"{command.where}: command `{command.block}` args"
    try:
        parts = shlex.split(command.command.args)
    except ValueError as exc:
        raise ProjectFileError(f"{where} cannot be split: {exc}", "close the quotes in it") from None
    out: list[str] = []
    for part in parts:
        unset: list[str] = []
        value = _expand(part, environ, unset)
        if unset and command.strict:
            raise VariableNotSetError(
                f"{where} use ${unset[0]}, which is not set", f"set {unset[0]}, or turn off ff.strict_env_var_mode"
            )
        if not value:
            raise UsageError(
                f"{where}: `{part}` is empty once expanded", "set the variable it names, or change the command"
            )
        for name in unset:
            _log.warning("%s: $%s is not set; it stands for nothing in `%s`", where, name, part)
        out.append(value)
    return out


def _expand(text: str, environ: dict[str, str], unset: list[str]) -> str:
    r"""Meltano's expansion of command args: ``${name}``, ``$NAME`` (upper case), ``\\$`` escapes; unset is empty."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("curly") or match.group("normal")
        if match.group("escape"):
            return f"${{{name}}}" if match.group("curly") else f"${name}"
        if name not in environ:
            unset.append(name)
        return environ.get(name, "")

    return _VARIABLE.sub(substitute, text)


def warn_unsupported(command: PluginCommand) -> None:
    """Say once per use that a ``container_spec`` is not honoured."""
    if command.command.container_spec is not None:
        _log.warning(
            "%s: command `%s` has a container_spec, which strata ignores; it runs as a plain process",
            command.where,
            command.block,
        )


def _parse(raw: Any, where: str, owner: PluginRef, name: str) -> Command:
    path = f"plugins.{owner.plugin_type}[{owner.index}].commands.{name}"
    if isinstance(raw, str):
        return Command(args=raw)
    if not isinstance(raw, dict):
        kind = {bool: "true/false", int: "a number", float: "a number", list: "a list"}.get(type(raw), "empty")
        raise ProjectFileError(f"{where}: `{path}` is {kind}, not a command", _SHAPE)
    unknown = [key for key in raw if key not in Command.__struct_fields__]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), Command.__struct_fields__, n=1)
        hint = f"did you mean `{close[0]}`?" if close else _SHAPE
        raise ProjectFileError(f"{where}: unknown key `{path}.{unknown[0]}`", hint)
    try:
        return msgspec.convert(raw, Command)
    except msgspec.ValidationError as exc:
        problem = str(exc).replace("`", "").replace("Expected", "expected").split(" - at ")[0]
        raise ProjectFileError(f"{where}: `{path}`: {problem}", _SHAPE) from None
