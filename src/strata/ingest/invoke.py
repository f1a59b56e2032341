"""Starting a plugin with its resolved configuration.

The configuration goes to the plugin as a JSON file readable by its owner only, created
under ``.strata/run/`` and removed when the plugin exits, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.ingest.venv import PluginEnv, plugin_env
from strata.project.expand import expand
from strata.project.settings import resolve

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from strata.project.project import Project

_TAKES_CONFIG = frozenset({"extractors", "loaders", "mappers"})


@contextlib.contextmanager
def config_file(project: Project, name: str, config: Mapping[str, Any]) -> Iterator[Path]:
    """A 0600 JSON file holding ``config``, deleted on exit."""
    run_dir = project.system_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, raw = tempfile.mkstemp(prefix=f"{name}.", suffix=".config.json", dir=run_dir)
    path = Path(raw)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        yield path
    finally:
        path.unlink(missing_ok=True)


@dataclass
class Invocation:
    """Everything needed to start one plugin process."""

    env: PluginEnv
    argv: list[str]
    environ: dict[str, str]
    config: dict[str, Any]
    takes_config: bool


def prepare(project: Project, name: str, args: list[str], overrides: Mapping[str, Any] | None = None) -> Invocation:
    """Resolve executable, config and environment of plugin ``name``."""
    ref = project.plugin(name)
    env = plugin_env(project, ref)
    executable = env.executable_path()
    settings = resolve(project, name, overrides)
    config = settings.config()
    environ = {**project.dotenv, **os.environ}
    environ.pop("PYTHONPATH", None)
    for key in ("STRATA_PROJECT_ROOT", "MELTANO_PROJECT_ROOT", "STRATA_SYS_DIR_ROOT"):
        environ[key] = project.variables[key]
    environ.update({k: str(v) for k, v in expand(project.model.env, project.variables, "env").items()})
    environ.update(settings.as_env())
    environ.update({k: str(v) for k, v in expand(ref.plugin.env, project.variables, f"{name} env").items()})
    if project.environment is not None:
        environ["STRATA_ENVIRONMENT"] = project.environment.name
        environ.update(
            {k: str(v) for k, v in expand(project.environment.env, project.variables, "environment env").items()}
        )
        override = project.environment_override(ref)
        if override is not None:
            environ.update({k: str(v) for k, v in expand(override[0].env, project.variables, f"{name} env").items()})
    if env.pip_url is not None:
        environ["VIRTUAL_ENV"] = str(env.current)
        environ["PATH"] = f"{env.current / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    return Invocation(env, [str(executable), *args], environ, config, ref.plugin_type in _TAKES_CONFIG)


def invoke(project: Project, name: str, args: list[str]) -> int:
    """Run plugin ``name`` with ``args`` attached to this terminal; return its exit code."""
    inv = prepare(project, name, args)
    if not inv.takes_config:
        return subprocess.call(inv.argv, env=inv.environ, cwd=project.root)
    with config_file(project, name, inv.config) as path:
        argv = [inv.argv[0], "--config", str(path), *inv.argv[1:]]
        return subprocess.call(argv, env=inv.environ, cwd=project.root)
