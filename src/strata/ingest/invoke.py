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
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from strata.errors import PluginExecutableError, UsageError
from strata.ingest import commands
from strata.ingest.redaction import Redactor, secret_values, secret_variables
from strata.ingest.runfiles import config_file
from strata.ingest.variables import meltano_variables
from strata.ingest.venv import PluginEnv, plugin_env
from strata.processes import die_with_parent, stop_group
from strata.project.settings import plugin_variables, resolve

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType

    from strata.project.project import PluginRef, Project

TAKES_CONFIG = frozenset({"extractors", "loaders", "mappers"})
"""Plugin types that are given a config file."""
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
    cwd: Path | None = None
    """Where it runs: a transformer in its ``project_dir`` (Meltano's dbt invoker); None for the project root."""
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
    adds ``STRATA_ENVIRONMENT`` and ``MELTANO_ENVIRONMENT``, ``context`` (the variables of the
    plugins before it in a pipeline, see ``strata.ingest.pipeline_env``), Meltano's
    ``MELTANO_<TYPE>_NAME`` … (``plugin_info_env``), every setting and extra under each name
    Meltano writes it to (``as_env``, ``meltano_variables``), then the ``env:`` blocks as Meltano
    layers them for a plugin (``settings.plugin_variables``: the plugin's own < the environment's
    < the environment's for this plugin), the very map its config's ``${VAR}`` sees. Its
    ``secrets`` are the values of its secret settings and of the plugin's ``env:`` entries named
    like secrets (``PGPASSWORD``). A file bundle has no program; a transformer runs in its
    ``project_dir`` (``_working_dir``).
    """
    ref = project.plugin(name)
    if ref.plugin_type == "files":
        raise UsageError(f"`{name}` is a file bundle, which has no program to run", "run the plugin its files are for")
    env = plugin_env(project, ref)
    context = context or {}
    settings = resolve(project, name, overrides, context=context)
    config = settings.config()
    variables = plugin_variables(project, ref)
    environ = dict(project.variables)
    environ.pop("PYTHONPATH", None)
    if project.environment is not None:  # Meltano's name too: dbt profiles pick their target by it
        environ["STRATA_ENVIRONMENT"] = environ["MELTANO_ENVIRONMENT"] = project.environment.name
    exported = meltano_variables(project, ref, settings, context)
    environ.update(context)
    environ.update(exported)
    environ.update(variables.layered)
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
        ref.plugin_type in TAKES_CONFIG,
        secret_values(settings) | secret_variables(variables.own),
        _working_dir(project, ref, config),
        exported,
    )


def _working_dir(project: Project, ref: PluginRef, config: dict[str, Any]) -> Path | None:
    """A transformer's ``project_dir`` (from the project root when relative); None for other plugins.

    Meltano runs every transformer there (its dbt invoker) and cannot start one without it.
    """
    if ref.plugin_type != "transformers":
        return None
    value = config.get("project_dir")
    if value in (None, ""):
        raise UsageError(
            f"transformer `{ref.name}` has no `project_dir`, the directory it runs in",
            "set it in its config (a dbt project's directory, such as $MELTANO_PROJECT_ROOT/transform)",
        )
    path = project.root / Path(str(value)).expanduser()
    if not path.is_dir():
        raise UsageError(
            f"the project_dir of transformer `{ref.name}`, {path}, is not a directory",
            "create it (the dbt project goes there) or set `project_dir` to the dbt project's directory",
        )
    return path


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


def invoke(
    project: Project,
    name: str,
    args: list[str],
    files: Mapping[str, dict[str, Any]] | None = None,
    *,
    stdout_to_stderr: bool = False,
) -> int:
    """Run plugin ``name`` (or a ``PLUGIN:COMMAND``) with ``args`` attached to this terminal; return its exit code.

    ``files`` (``catalog``, ``state``: an extractor's, from ``--catalog``/``--state FILE``) go to it
    as 0600 files, with the arguments its capabilities take (``catalog.tap_args``).
    ``stdout_to_stderr``: its standard output goes to strata's standard error (which keeps
    strata's own output, JSON for instance, clean).
    """
    if files:
        extractor(project, name, "--catalog and --state")
    inv = prepare_command(project, name, args) if commands.is_command_block(name) else prepare(project, name, args)
    stdout = 2 if stdout_to_stderr else None
    return _execute(project, inv, None, capture=False, files=files or {}, stdout=stdout).returncode


def extractor(project: Project, name: str, what: str) -> None:
    """Refuse ``what`` (an option) for anything but an extractor."""
    if commands.is_command_block(name) or project.plugin(name).plugin_type != "extractors":
        raise UsageError(f"{what} apply to an extractor, and `{name}` is not one", f"leave {what} out for it")


def run_captured(project: Project, name: str, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    """Run plugin ``name`` with ``stdin`` as its input; return its exit code and captured output.

    Its stderr comes back with its secrets redacted: it ends up in error messages.
    """
    inv = prepare(project, name, args)
    done = _execute(project, inv, stdin, capture=True)
    done.stderr = Redactor(inv.secrets)(done.stderr or "")
    return done


def cannot_start(name: str, program: str, exc: OSError) -> PluginExecutableError:
    """The error for plugin ``name`` whose ``program`` could not be started."""
    return PluginExecutableError(
        f"`{name}` could not start {program}: {exc.strerror}",
        "check that it is an executable file and that its #! interpreter exists",
    )


def exit_code(returncode: int) -> int:
    """A process's exit code as a shell reports it: killed by signal N is ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


def _execute(
    project: Project,
    inv: Invocation,
    stdin: str | None,
    *,
    capture: bool,
    files: Mapping[str, dict[str, Any]] | None = None,
    stdout: int | None = None,
) -> subprocess.CompletedProcess[str]:
    name = inv.env.ref.name
    with _SignalsToPlugin(interactive=not capture) as signals, contextlib.ExitStack() as stack:
        argv = inv.argv
        if files:
            from strata.ingest.catalog import tap_args

            paths = {
                kind: stack.enter_context(config_file(project, f"{name}.{kind}", data)) for kind, data in files.items()
            }
            argv = [argv[0], *tap_args(project, inv.env.ref, paths.get("catalog"), paths.get("state")), *argv[1:]]
        if inv.takes_config:
            path = stack.enter_context(config_file(project, name, inv.config))
            argv = [argv[0], "--config", str(path), *argv[1:]]
        pipe = subprocess.PIPE if capture else None
        try:
            proc = subprocess.Popen(
                argv,
                env=inv.environ,
                cwd=inv.cwd or project.root,
                stdin=subprocess.PIPE if stdin is not None else None,
                stdout=pipe if capture else stdout,
                stderr=pipe,
                text=True,
                start_new_session=capture,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks or threads touched
            )
        except OSError as exc:
            raise cannot_start(name, argv[0], exc) from exc
        signals.plugin = proc
        try:
            out, err = _communicate(proc, stdin) if capture else proc.communicate(stdin)
        except BaseException:
            if capture:
                stop_group(proc, 0)
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, exit_code(proc.returncode), out, err)


def _communicate(proc: subprocess.Popen[str], stdin: str | None) -> tuple[str, str]:
    """``communicate`` that ends when the plugin exits, not when its pipes close.

    Helpers the plugin started (in its own process group) are stopped then: one that kept the
    pipes open would otherwise keep strata waiting for ever.
    """
    output: dict[str, str] = {}

    def read(key: str, stream: IO[str]) -> None:
        output[key] = stream.read()

    assert proc.stdout is not None
    assert proc.stderr is not None
    readers = [
        threading.Thread(target=read, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=read, args=("err", proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    if proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin or "")
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    proc.wait()
    stop_group(proc, 0)
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    return output.get("out", ""), output.get("err", "")


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
