"""Secret values kept out of whatever strata stores or shows of a plugin's output.

A plugin may print its own password: a connection string in an error, a dump of its config.
Every value of a secret setting (``PluginSettings`` decides which are secret), of secret-named
keys inside object settings and of secret-named ``env:`` entries is replaced by ``(redacted)``
in the run log, the error line, the run history and a failed discovery's message; so is its
percent-encoded form (inside URLs) and its JSON-escaped form, and ``user:password@`` in any URL.

Values shorter than ``MIN_LENGTH`` characters are not searched for: a one- to three-character
secret protects nothing, and replacing every ``1`` or ``ab`` would shred the output.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from strata.errors import UsageError
from strata.project.settings import REDACTED, looks_secret, redact_urls, resolve

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from strata.project.project import Project
    from strata.project.settings import PluginSettings

MIN_LENGTH = 4
"""Shortest secret value searched for in plugin output."""


def secret_values(settings: PluginSettings) -> frozenset[str]:
    """The resolved values of ``settings`` that must never appear in stored or shown output."""
    found: set[str] = set()
    for item in settings.values.values():
        _collect(item.value, item.secret, found)
    return frozenset(value for value in found if len(value) >= MIN_LENGTH)


def secret_variables(variables: Mapping[str, str]) -> frozenset[str]:
    """The values of ``variables`` (a plugin's ``env:``) whose names read like secrets (``PGPASSWORD``)."""
    return frozenset(value for name, value in variables.items() if looks_secret(name) and len(value) >= MIN_LENGTH)


def _collect(value: Any, secret: bool, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _collect(inner, secret or looks_secret(str(key)), found)
    elif isinstance(value, list):
        for inner in value:
            _collect(inner, secret, found)
    elif secret and isinstance(value, str | int | float) and not isinstance(value, bool):
        found.add(str(value))


def _forms(value: str) -> set[str]:
    """``value`` as it may be written: as is, percent-encoded (URLs) and JSON-escaped."""
    from urllib.parse import quote, quote_plus

    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


class Redactor:
    """Replaces secret values (and URL credentials) in text: ``redactor(line)``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms = {form for value in values for form in _forms(value) if len(form) >= MIN_LENGTH}
        longest_first = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, longest_first))) if forms else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return redact_urls(text)


def redactor_for(project: Project, names: Iterable[str]) -> Redactor:
    """A redactor for the secrets of the plugins named ``names``; names of no plugin are skipped."""
    values: set[str] = set()
    for name in names:
        try:
            values |= secret_values(resolve(project, name))
        except UsageError:  # a mapping, a feature block, a plugin removed since
            continue
    return Redactor(values)
