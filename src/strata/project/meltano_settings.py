"""``config set|unset meltano NAME``: Meltano's project settings, written where Meltano 4.4.1 writes them.

Meltano keeps its environment-specific settings out of ``meltano.yml``: ``config set meltano``
puts them in ``.env`` as ``MELTANO_<NAME>`` (which strata reads, see
``Project.setting_variable``), and the others into the project file as nested keys
(``venv.backend`` -> ``venv: {backend: …}``). Only settings strata reads are taken.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from strata.errors import UsageError

if TYPE_CHECKING:
    from strata.project.project import Project

IN_DOTENV = (
    "database_uri",
    "project_readonly",
    "cli.log_level",
    "state_backend.uri",
    "state_backend.lock_timeout_seconds",
    "state_backend.lock_retry_seconds",
    "state_backend.s3.aws_access_key_id",
    "state_backend.s3.aws_secret_access_key",
    "state_backend.s3.endpoint_url",
    "state_backend.azure.connection_string",
    "state_backend.azure.storage_account_url",
    "state_backend.gcs.application_credentials",
    "state_backend.gcs.application_credentials_path",
    "state_backend.gcs.application_credentials_json",
)
"""Meltano's ``env_specific`` project settings: ``config set meltano`` writes them to ``.env``."""
IN_FILE = ("default_environment", "send_anonymous_usage_stats", "python", "venv.backend", "ff.strict_env_var_mode")
"""The other project settings strata reads: written into the project file."""

PROJECT = "meltano"
"""The name that ``config set|unset`` takes for the project itself, as in Meltano."""


def variable(name: str) -> str:
    """``state_backend.uri`` -> ``MELTANO_STATE_BACKEND_URI``."""
    return "MELTANO_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _check(name: str) -> None:
    if name not in IN_DOTENV and name not in IN_FILE:
        raise UsageError(
            f"`{name}` is not a Meltano project setting strata reads",
            f"use one of: {', '.join((*IN_FILE, *IN_DOTENV))}",
        )


def set_setting(project: Project, name: str, value: str) -> str:
    """Write project setting ``name`` where Meltano writes it; return where (``.env (VAR)`` or the file)."""
    from strata.project import dotenv_file
    from strata.project.edit import ensure_mapping
    from strata.project.values import parse_value

    _check(name)
    if name in IN_DOTENV:
        dotenv_file.set_value(project.dotenv_path, variable(name), value)
        return f".env ({variable(name)})"
    *parents, leaf = name.split(".")
    node = project.tree
    for part in parents:
        node = ensure_mapping(node, part)
    node[leaf] = parse_value(value, None, f"`{name}`")
    project.save()
    return project.file_name


def unset_setting(project: Project, name: str) -> list[str]:
    """Remove project setting ``name`` from ``.env`` and the project file; where it was."""
    from strata.project import dotenv_file
    from strata.project.yamlfile import delete

    _check(name)
    removed = []
    if dotenv_file.unset_value(project.dotenv_path, variable(name)):
        removed.append(f".env ({variable(name)})")
    *parents, leaf = name.split(".")
    chain: list[Any] = [project.tree]
    for part in parents:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            return removed
        chain.append(child)
    if leaf in chain[-1]:
        delete(chain[-1], leaf)
        for parent, part in reversed(list(zip(chain[:-1], parents, strict=True))):
            if not parent[part]:
                delete(parent, part)
        project.save()
        removed.append(project.file_name)
    return removed
