"""Starting a plugin with its resolved configuration.

The configuration goes to the plugin as a JSON file readable by its owner only, created
under ``.strata/run/`` and removed when the plugin exits, whatever happens: SIGTERM and SIGHUP
are passed on to the plugin while it runs, and strata waits for it before cleaning up. Files
left by a process killed outright (SIGKILL) are removed by the next invoke once a day old.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from strata.errors import PluginExecutableError, RuntimeFailure
from strata.ingest.venv import PluginEnv, plugin_env
from strata.processes import die_with_parent
from strata.project.expand import expand_env
from strata.project.files import ensure_inside, what_to_do
from strata.project.settings import resolve

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import FrameType

    from strata.project.project import Project

_TAKES_CONFIG = frozenset({"extractors", "loaders", "mappers"})
_STALE_SECONDS = 24 * 3600
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def config_file(project: Project, name: str, config: Mapping[str, Any]) -> Iterator[Path]:
    """A 0600 JSON file holding ``config`` in ``.strata/run/`` (0700), deleted on exit."""
    run_dir = ensure_inside(project.system_dir / "run", project.system_dir)
    ensure_inside(run_dir / f"{name}.config.json", run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(run_dir, 0o700)
        _remove_stale(run_dir)
        fd, raw = tempfile.mkstemp(prefix=f"{name}.", suffix=".config.json", dir=run_dir)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write in {run_dir}: {exc.strerror}", what_to_do(run_dir, exc)) from None
    path = Path(raw)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _remove_stale(run_dir: Path) -> None:
    """Config files of runs killed before their cleanup (SIGKILL, power loss), once a day old."""
    cutoff = time.time() - _STALE_SECONDS
    for path in run_dir.glob("*.config.json"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


@dataclass
class Invocation:
    """Everything needed to start one plugin process."""

    env: PluginEnv
    argv: list[str]
    environ: dict[str, str]
    config: dict[str, Any]
    takes_config: bool


def prepare(project: Project, name: str, args: list[str], overrides: Mapping[str, Any] | None = None) -> Invocation:
    """Resolve executable, config and environment of plugin ``name``.

    The process environment starts from ``Project.variables`` (the very map ``${VAR}`` sees, in
    its order: project paths < root ``env:`` < ``.env`` < process < environment ``env:``), then
    adds ``<PLUGIN>_<SETTING>`` variables, the plugin's own ``env:`` and the active environment's
    ``env:`` for this plugin.
    """
    ref = project.plugin(name)
    env = plugin_env(project, ref)
    executable = env.executable_path()
    settings = resolve(project, name, overrides)
    config = settings.config()
    environ = dict(project.variables)
    environ.pop("PYTHONPATH", None)
    if project.environment is not None:
        environ["STRATA_ENVIRONMENT"] = project.environment.name
    environ.update(settings.as_env())
    environ.update(expand_env(ref.plugin.env, project.variables, f"{project.line([*ref.path, 'env'])} env"))
    override = project.environment_override(ref)
    if override is not None:
        plugin, path = override
        environ.update(expand_env(plugin.env, project.variables, f"{project.line([*path, 'env'])} env"))
    if env.pip_url is not None:
        environ["VIRTUAL_ENV"] = str(env.current)
        environ["PATH"] = f"{env.current / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    return Invocation(env, [str(executable), *args], environ, config, ref.plugin_type in _TAKES_CONFIG)


def invoke(project: Project, name: str, args: list[str]) -> int:
    """Run plugin ``name`` with ``args`` attached to this terminal; return its exit code."""
    return _execute(project, prepare(project, name, args), None, capture=False).returncode


def run_captured(project: Project, name: str, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    """Run plugin ``name`` with ``stdin`` as its input; return its exit code and captured output."""
    return _execute(project, prepare(project, name, args), stdin, capture=True)


def exit_code(returncode: int) -> int:
    """A process's exit code as a shell reports it: killed by signal N is ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


def _execute(
    project: Project, inv: Invocation, stdin: str | None, *, capture: bool
) -> subprocess.CompletedProcess[str]:
    name = inv.env.ref.name
    with _SignalsToPlugin() as signals, contextlib.ExitStack() as stack:
        argv = inv.argv
        if inv.takes_config:
            path = stack.enter_context(config_file(project, name, inv.config))
            argv = [argv[0], "--config", str(path), *argv[1:]]
        pipe = subprocess.PIPE if capture else None
        try:
            proc = subprocess.Popen(
                argv,
                env=inv.environ,
                cwd=project.root,
                stdin=subprocess.PIPE if stdin is not None else None,
                stdout=pipe,
                stderr=pipe,
                text=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks or threads touched
            )
        except OSError as exc:
            raise PluginExecutableError(
                f"`{name}` could not start {argv[0]}: {exc.strerror}",
                "check that it is an executable file and that its #! interpreter exists",
            ) from exc
        signals.plugin = proc
        try:
            out, err = proc.communicate(stdin)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, exit_code(proc.returncode), out, err)


class _SignalsToPlugin:
    """While a plugin runs, SIGTERM and SIGHUP go to it and strata waits for it to exit.

    Without this, the default action would end strata at once and skip the ``finally`` that
    removes the config file. A signal that comes before the plugin has started ends strata
    through ``SystemExit`` (128 + N), which unwinds through the same cleanup. Only the main
    thread may set handlers; elsewhere nothing changes.
    """

    def __init__(self) -> None:
        self.plugin: subprocess.Popen[str] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._forward) for signum in _FORWARDED}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.plugin is None:
            raise SystemExit(128 + signum)
        with contextlib.suppress(ProcessLookupError):
            self.plugin.send_signal(signum)
