r"""``${VAR}`` expansion in project values.

Forms: ``${VAR}``, ``$VAR``, ``${VAR:-default}`` (default when unset or empty) and
``${VAR-default}`` (default when unset). ``$$`` and ``\\$`` stand for a literal ``$``.
A reference to a variable that is set nowhere expands to empty, as in Meltano, with one warning
per variable per process naming it and where it was used. In strict mode (Meltano's
``ff.strict_env_var_mode``) it is an error instead, naming the same.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from strata.errors import VariableNotSetError

if TYPE_CHECKING:
    from collections.abc import Mapping

_log = logging.getLogger(__name__)
_warned: set[str] = set()
"""Variables already warned about in this process."""

_REFERENCE = re.compile(
    r"(?P<escape>\$\$|\\\$)"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def expand_str(text: str, variables: Mapping[str, str], where: str, *, strict: bool) -> str:
    """Expand every reference in ``text``; ``where`` names the value in warnings and errors."""
    if "$" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        if match.group("escape"):
            return "$"
        name = match.group("braced") or match.group("bare")
        value = variables.get(name)
        op = match.group("op")
        if op == ":-" and not value:
            return expand_str(match.group("default"), variables, where, strict=strict)
        if op == "-" and value is None:
            return expand_str(match.group("default"), variables, where, strict=strict)
        if value is None:
            return _unset(name, where, strict=strict)
        return value

    return _REFERENCE.sub(substitute, text)


def _unset(name: str, where: str, *, strict: bool) -> str:
    """What an unset variable stands for: ``""`` with a warning (once per variable), or an error when strict."""
    if strict:
        raise VariableNotSetError(
            f"{where} uses ${{{name}}}, which is not set",
            f"set {name} in the environment or in .env, or write ${{{name}:-default}}",
        )
    if name not in _warned:
        _warned.add(name)
        _log.warning(
            "%s uses ${%s}, which is not set; it expands to empty (set ff.strict_env_var_mode to make this an error)",
            where,
            name,
        )
    return ""


def expand(value: Any, variables: Mapping[str, str], where: str, *, strict: bool) -> Any:
    """Expand references in strings nested anywhere inside ``value``."""
    if isinstance(value, str):
        return expand_str(value, variables, where, strict=strict)
    if isinstance(value, dict):
        return {k: expand(v, variables, f"{where}.{k}", strict=strict) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, variables, f"{where}[{i}]", strict=strict) for i, v in enumerate(value)]
    return value


def env_value(value: Any) -> str:
    """How a value of an ``env:`` block reads as a variable: ``true``/``false``, ``""`` for null, JSON otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def expand_env(block: Mapping[str, Any], variables: Mapping[str, str], where: str, *, strict: bool) -> dict[str, str]:
    """An ``env:`` block as variables: every value expanded, then made a string by ``env_value``."""
    return {str(k): env_value(expand(v, variables, f"{where}.{k}", strict=strict)) for k, v in block.items()}
