"""Starting a plugin with its resolved configuration.

The configuration goes to the plugin as a JSON file readable by its owner only, created
under ``.strata/run/`` (``runfiles.py``) and removed when the plugin exits, whatever happens:
SIGTERM and SIGHUP (and Ctrl-C, for ``strata invoke``) are passed on to the plugin while it
runs, and strata waits for it before cleaning up. Files left by a process killed outright
(SIGKILL) go at the next command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from strata.errors import PluginExecutableError
from strata.ingest import commands
from strata.ingest.pipeline_env import plugin_variables
from strata.ingest.redaction import Redactor, secret_values, secret_variables
from strata.ingest.runfiles import config_file
from strata.ingest.venv import PluginEnv, plugin_env
from strata.processes import die_with_parent
from strata.project.expand import expand_env
from strata.project.settings import resolve

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType

    from strata.project.project import Project

_TAKES_CONFIG = frozenset({"extractors", "loaders", "mappers"})
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


@dataclass
class Invocation:
    """Everything needed to start one plugin process."""

    env: PluginEnv
    argv: list[str]
    environ: dict[str, str]
    config: dict[str, Any]
    takes_config: bool
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    """Values of its secret settings and secret-named ``env:`` entries, kept out of stored or shown output."""
    exported: dict[str, str] = field(default_factory=dict, repr=False)
    """Its info, settings and extras as Meltano's variables: what the next plugins of a pipeline see."""


def prepare(
    project: Project,
    name: str,
    args: list[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    executable: str | None = None,
    context: Mapping[str, str] | None = None,
) -> Invocation:
    """Resolve executable, config and environment of plugin ``name``.

    ``executable`` (a command's) replaces the plugin's own: looked up in its environment's
    ``bin/`` first, then on ``PATH``; a path with ``/`` starts at the project root.

    The process environment starts from ``Project.variables`` (the very map ``${VAR}`` sees, in
    its order: project paths < root ``env:`` < ``.env`` < process < environment ``env:``), then
    adds ``context`` (the variables of the plugins before it in a pipeline), the plugin's info,
    settings and extras as Meltano's variables (``strata.ingest.pipeline_env``), the plugin's own
    ``env:`` and the active environment's ``env:`` for this plugin. Its ``secrets`` are the values
    of its secret settings and of the ``env:`` entries named like secrets (``PGPASSWORD``).
    """
    ref = project.plugin(name)
    env = plugin_env(project, ref)
    context = context or {}
    settings = resolve(project, name, overrides, context=context)
    config = settings.config()
    environ = dict(project.variables)
    environ.pop("PYTHONPATH", None)
    if project.environment is not None:
        environ["STRATA_ENVIRONMENT"] = project.environment.name
    exported = plugin_variables(project, ref, settings, context)
    environ.update(context)
    environ.update(exported)
    strict = project.strict_env_var_mode
    own = expand_env(ref.plugin.env, project.variables, f"{project.line([*ref.path, 'env'])} env", strict=strict)
    override = project.environment_override(ref)
    if override is not None:
        plugin, path = override
        own.update(expand_env(plugin.env, project.variables, f"{project.line([*path, 'env'])} env", strict=strict))
    environ.update(own)
    if env.pip_url is not None:
        environ["VIRTUAL_ENV"] = str(env.current)
        environ["PATH"] = f"{env.current / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    search = environ.get("PATH", os.defpath)
    program = env.executable_path() if executable is None else env.command_path(executable, search)
    return Invocation(
        env,
        [str(program), *args],
        environ,
        config,
        ref.plugin_type in _TAKES_CONFIG,
        secret_values(settings) | secret_variables(own),
        exported,
    )


def prepare_command(project: Project, block: str, args: list[str]) -> Invocation:
    """A ``PLUGIN:COMMAND``: the command's executable, its expanded ``args``, then ``args``; no ``--config``.

    As in Meltano, a command gets the plugin's environment (its settings as variables) but not
    the ``--config`` argument: its ``args`` say everything it is given.
    """
    command = commands.find(project, block)
    commands.warn_unsupported(command)
    inv = prepare(project, command.plugin.name, [], executable=command.command.executable)
    inv.argv = [*command.argv(inv.argv[0], inv.environ), *args]
    inv.takes_config = False
    return inv


def invoke(project: Project, name: str, args: list[str]) -> int:
    """Run plugin ``name`` (or a ``PLUGIN:COMMAND``) with ``args`` attached to this terminal; return its exit code."""
    inv = prepare_command(project, name, args) if commands.is_command_block(name) else prepare(project, name, args)
    return _execute(project, inv, None, capture=False).returncode


def run_captured(project: Project, name: str, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    """Run plugin ``name`` with ``stdin`` as its input; return its exit code and captured output.

    Its stderr comes back with its secrets redacted: it ends up in error messages.
    """
    inv = prepare(project, name, args)
    done = _execute(project, inv, stdin, capture=True)
    done.stderr = Redactor(inv.secrets)(done.stderr or "")
    return done


def exit_code(returncode: int) -> int:
    """A process's exit code as a shell reports it: killed by signal N is ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


def _execute(
    project: Project, inv: Invocation, stdin: str | None, *, capture: bool
) -> subprocess.CompletedProcess[str]:
    name = inv.env.ref.name
    with _SignalsToPlugin(interactive=not capture) as signals, contextlib.ExitStack() as stack:
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

    An ``interactive`` plugin (attached to the terminal) is given Ctrl-C the same way instead of
    being killed: the terminal sends SIGINT to it as well when strata is in the foreground, so
    strata then only waits; otherwise (strata alone was signalled) it passes SIGINT on.
    """

    def __init__(self, *, interactive: bool = False) -> None:
        self.plugin: subprocess.Popen[str] | None = None
        self._previous: dict[int, Any] = {}
        self._signals = (*_FORWARDED, signal.SIGINT) if interactive else _FORWARDED

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._forward) for signum in self._signals}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.plugin is None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        if signum == signal.SIGINT and _in_foreground():
            return
        with contextlib.suppress(ProcessLookupError):
            self.plugin.send_signal(signum)


def _in_foreground() -> bool:
    """Whether strata is in its terminal's foreground process group (the one Ctrl-C reaches)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)
