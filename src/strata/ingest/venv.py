"""Plugin virtual environments: where they live, how they are built, locked and found.

Each base plugin (one with ``pip_url``) gets its own venv, built with uv (pip when uv is
missing). Inherited plugins share their parent's. Layout::

    .strata/plugins/<type>/<name>/current -> v-<fingerprint>-<random>/   (a symlink, switched atomically)
    .strata/plugins/<type>/<name>/v-<fingerprint>-<random>/              (the venv; never moved)
    .strata/plugins/<type>/<name>/.lock                                  (flock: one build at a time)

Every build goes into a new directory (scripts hold absolute paths, so it is built where it
stays), is marked complete, and only then does ``current`` point at it; older venvs are removed
after the switch. A failed build removes its own directory and leaves ``current`` untouched, so
even a failed ``install --clean`` keeps the working venv. The fingerprint covers the pip
arguments, the interpreter and the locked requirements, so ``install`` skips what is already
right. Nothing here creates or deletes a path outside ``.strata/``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import InstallError, PluginExecutableError, UsageError
from strata.project.expand import expand_str
from strata.project.files import ensure_inside, what_to_do, write_atomic
from strata.project.settings import lineage, redact_urls

if TYPE_CHECKING:
    from collections.abc import Iterator

    from strata.project.project import PluginRef, Project

_MARKER = ".strata-installed"
_LOCK = ".lock"
log = logging.getLogger("strata.ingest.venv")


@dataclass(frozen=True)
class PluginEnv:
    """How one plugin is installed and started."""

    ref: PluginRef
    owner: PluginRef
    """The plugin whose venv is used (itself, or the ancestor that has ``pip_url``)."""
    pip_url: str | None
    """``pip_url`` with ``${VAR}`` expanded: what is installed, never written anywhere."""
    raw_pip_url: str | None
    """``pip_url`` as the project file writes it: what ``strata.lock`` records."""
    executable: str
    python: str | None
    home: Path
    """``.strata/plugins/<type>/<owner>/``."""
    root: Path
    """The project root: relative ``executable:`` paths start there."""

    @property
    def current(self) -> Path:
        return self.home / "current"

    @property
    def is_installed(self) -> bool:
        return (self.current / _MARKER).is_file()

    def executable_path(self) -> Path:
        """The executable to run; errors say how to fix a missing one."""
        if self.pip_url is None:
            return self._own_executable()
        if not self.is_installed:
            raise PluginExecutableError(
                f"`{self.ref.name}` is not installed", f"run `strata install {self.owner.name}`"
            )
        path = self.current / "bin" / self.executable
        if not path.is_file():
            available = sorted(
                p.name for p in (self.current / "bin").iterdir() if not p.name.startswith(("python", "activate"))
            )
            raise PluginExecutableError(
                f"`{self.ref.name}` has no executable `{self.executable}` in its environment "
                f"(found: {', '.join(available) or 'none'})",
                "set `executable:` to one of those",
            )
        return path

    def command_path(self, executable: str, search_path: str) -> Path:
        """A command's ``executable``: a path from the project root, else found on ``search_path``.

        ``search_path`` is the plugin's ``PATH``, its environment's ``bin/`` first.
        """
        if self.pip_url is not None and not self.is_installed:
            raise PluginExecutableError(
                f"`{self.ref.name}` is not installed", f"run `strata install {self.owner.name}`"
            )
        if os.sep in executable or executable.startswith("~"):
            path = self.root / Path(executable).expanduser()
            if path.is_file():
                return path
        else:
            found = shutil.which(executable, path=search_path)
            if found is not None:
                return Path(found)
        raise PluginExecutableError(
            f"`{self.ref.name}` has a command executable `{executable}` that is neither in its environment nor on PATH",
            "install what provides it, or set the command's `executable:` to a path that exists",
        )

    def _own_executable(self) -> Path:
        """A plugin without ``pip_url``: a path (relative to the project root) or a name on PATH."""
        if os.sep in self.executable or self.executable.startswith("~"):
            path = self.root / Path(self.executable).expanduser()
            if not path.is_file():
                raise PluginExecutableError(
                    f"the executable of `{self.ref.name}`, {path}, does not exist",
                    "set `executable:` to an existing file (a relative path starts at the project root)",
                )
            return path
        found = shutil.which(self.executable)
        if found is None:
            raise PluginExecutableError(
                f"`{self.ref.name}` has no pip_url and its executable `{self.executable}` is not on PATH",
                "set pip_url so strata can install it, or executable to a path that exists",
            )
        return Path(found)


def owner_of(project: Project, ref: PluginRef) -> PluginRef:
    """The plugin whose venv ``ref`` uses: the first of its lineage with ``pip_url``, else its root."""
    chain = lineage(project, ref)
    return next((r for r in chain if r.plugin.pip_url), chain[-1])


def plugin_home(project: Project, owner: PluginRef) -> Path:
    """``.strata/plugins/<type>/<name>/`` of a plugin that owns a venv (checked to be inside ``.strata/``)."""
    return ensure_inside(project.plugins_dir / owner.plugin_type / owner.name, project.system_dir)


def plugin_env(project: Project, ref: PluginRef) -> PluginEnv:
    """Resolve the install and start-up facts of ``ref`` through ``inherit_from``."""
    chain = lineage(project, ref)
    owner = owner_of(project, ref)
    executable = next((r.plugin.executable for r in chain if r.plugin.executable), chain[-1].name)
    python = next((r.plugin.python for r in chain if r.plugin.python), project.model.python)
    raw = owner.plugin.pip_url
    pip_url = None
    if raw is not None:
        pip_url = expand_str(
            raw,
            project.variables,
            f"{project.line([*owner.path, 'pip_url'])} pip_url",
            strict=project.strict_env_var_mode,
        )
    return PluginEnv(ref, owner, pip_url, raw, executable, python, plugin_home(project, owner), project.root)


# -- lock file --------------------------------------------------------------------------


def read_lock(project: Project) -> dict[str, Any]:
    """``strata.lock``: per plugin, the pip_url it was locked for and the exact requirements."""
    if not project.lock_path.is_file():
        return {}
    try:
        data = json.loads(project.lock_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"strata.lock is not valid JSON ({exc})", "delete it and run `strata lock`") from exc
    plugins = data.get("plugins", {}) if isinstance(data, dict) else {}
    return plugins if isinstance(plugins, dict) else {}


def locked_requirements(env: PluginEnv, lock: dict[str, Any]) -> list[str] | None:
    """The locked requirements of ``env``, or None when unlocked or locked for another pip_url.

    The lock records ``pip_url`` as written in the project file (``${VAR}`` unexpanded), so a
    secret in a variable never lands in ``strata.lock`` and the comparison does not depend on it.
    """
    entry = lock.get(env.owner.name)
    if not isinstance(entry, dict) or entry.get("pip_url") != env.raw_pip_url:
        return None
    requirements = entry.get("requirements")
    return [str(r) for r in requirements] if isinstance(requirements, list) else None


def write_lock(project: Project, entries: dict[str, dict[str, Any]]) -> None:
    """Merge ``entries`` into ``strata.lock`` (sorted, stable, diff-friendly)."""
    current = read_lock(project)
    current.update(entries)
    _write_lock(project, current)


def drop_from_lock(project: Project, names: list[str]) -> None:
    """Remove the entries of ``names`` from ``strata.lock``, if it has any."""
    current = read_lock(project)
    if any(name in current for name in names):
        _write_lock(project, {k: v for k, v in current.items() if k not in names})


def _write_lock(project: Project, plugins: dict[str, Any]) -> None:
    body = {"version": 1, "plugins": dict(sorted(plugins.items()))}
    try:
        write_atomic(project.lock_path, json.dumps(body, indent=2, sort_keys=False) + "\n")
    except OSError as exc:
        path = project.lock_path
        raise InstallError(f"cannot write {path.name}: {exc.strerror}", what_to_do(path, exc)) from None


_USERINFO = re.compile(r"(?<=://)[^/\s]+(?=@)")


def scrub_requirements(requirements: list[str], env: PluginEnv) -> list[str]:
    """Frozen requirements fit for a committed file: no ``user:token@`` in URLs.

    Credentials that came from ``${VAR}`` in ``pip_url`` are written back as that reference
    (``install`` expands them again); any other credentials become ``***``.
    """
    known: dict[str, str] = {}
    if env.pip_url is not None and env.raw_pip_url is not None:
        expanded, raw = _USERINFO.findall(env.pip_url), _USERINFO.findall(env.raw_pip_url)
        if len(expanded) == len(raw):
            known = {e: r for e, r in zip(expanded, raw, strict=True) if "$" in r}
    return [_USERINFO.sub(lambda m: known.get(m.group(0), "***"), line) for line in requirements]


# -- building ---------------------------------------------------------------------------


@functools.cache
def uv_binary() -> str | None:
    """The uv executable (cached: its lookup is not thread-safe, so resolve it before threads)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def fingerprint(env: PluginEnv, requirements: list[str] | None) -> str:
    """Identity of what a venv should contain."""
    payload = json.dumps([env.pip_url, env.python or sys.version, requirements])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextlib.contextmanager
def plugin_lock(home: Path) -> Iterator[None]:
    """Hold ``home``'s lock: one build, switch or removal of a plugin's venvs at a time.

    ``flock`` on ``home/.lock``. Whoever holds it may delete the whole home (a failed first
    install, ``strata remove``), so after locking we check that the file we locked is still the
    one at that path, and start again if not.
    """
    import fcntl

    path = home / _LOCK
    while True:
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the home was removed between mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = os.fstat(fd)
            try:
                on_disk = path.stat()
            except FileNotFoundError:
                on_disk = None
        except BaseException:
            os.close(fd)
            raise
        if on_disk is not None and (on_disk.st_dev, on_disk.st_ino) == (locked.st_dev, locked.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def install(project: Project, env: PluginEnv, *, clean: bool = False, lock: dict[str, Any] | None = None) -> str:
    """Build ``env``'s venv unless it is already right; return ``installed`` or ``up to date``."""
    if env.pip_url is None:
        return "nothing to install"
    requirements = locked_requirements(env, lock if lock is not None else read_lock(project))
    wanted = fingerprint(env, requirements)
    if requirements is not None:
        requirements = [
            expand_str(r, project.variables, f"strata.lock ({env.owner.name})", strict=project.strict_env_var_mode)
            for r in requirements
        ]
    home = ensure_inside(env.home, project.system_dir)
    with plugin_lock(home):
        if not clean and _fingerprint_of(env) == wanted:
            return "up to date"
        target = ensure_inside(home / f"v-{wanted}-{secrets.token_hex(4)}", project.system_dir)
        fields = {"plugin": env.owner.name, "pip_url": redact_urls(env.pip_url), "locked": requirements is not None}
        log.debug("installing plugin", extra={"fields": fields})
        try:
            _build(env, target, requirements)
            (target / _MARKER).write_text(json.dumps({"fingerprint": wanted, "locked": requirements is not None}))
            link = home / f".current-{os.getpid()}-{secrets.token_hex(4)}"
            link.symlink_to(target.name)
            os.replace(link, env.current)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            if not env.is_installed:  # nothing worked before either: leave no trace
                shutil.rmtree(home, ignore_errors=True)
            raise
        for old in home.glob("v-*"):
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
    return "installed"


def _fingerprint_of(env: PluginEnv) -> str | None:
    """The fingerprint of the complete venv ``current`` points at (``v-<fingerprint>[-<random>]``)."""
    if not env.is_installed:
        return None
    parts = env.current.resolve().name.split("-")
    return parts[1] if len(parts) > 1 else None


def _build(env: PluginEnv, target: Path, requirements: list[str] | None) -> None:
    assert env.pip_url is not None
    python = env.python or sys.executable
    uv = uv_binary()
    reqs = target.parent / f".{target.name}.requirements.txt"
    if requirements is not None:
        reqs.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        packages = ["-r", str(reqs)]
    else:
        try:
            packages = shlex.split(env.pip_url)
        except ValueError as exc:
            raise InstallError(f"pip_url of `{env.owner.name}` cannot be parsed: {exc}", "fix its quoting") from exc
    vpy = str(target / "bin" / "python")
    if uv is not None:
        create = [uv, "venv", "--quiet", "--no-project", "--python", python, str(target)]
        fill = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", vpy, *packages]
    else:
        create, fill = [python, "-m", "venv", str(target)], [vpy, "-m", "pip", "install", "--quiet", *packages]
    run_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    run_env.pop("VIRTUAL_ENV", None)
    try:
        done = _run(create, run_env)
        if done.returncode != 0:
            raise InstallError(
                f"could not create the environment of `{env.owner.name}` with Python `{python}`: "
                f"{redact_urls(_last_lines(done.stderr))}",
                "check the plugin's `python:` (or the project's): it must name a working interpreter",
            )
        done = _run(fill, run_env)
        if done.returncode != 0:
            raise InstallError(
                f"could not install `{env.owner.name}` from `{redact_urls(env.pip_url)}`: "
                f"{redact_urls(_last_lines(done.stderr))}",
                "check the package name and version in pip_url, and that the package index is reachable",
            )
    finally:
        reqs.unlink(missing_ok=True)


def _run(step: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(step, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        return subprocess.CompletedProcess(step, 127, "", f"{step[0]}: {exc.strerror}")


def _last_lines(text: str, count: int = 4) -> str:
    lines = [
        line.strip(" \u00d7\u2570\u2500\u25b6\u2502").strip() for line in text.strip().splitlines() if line.strip()
    ]
    return " / ".join(lines[-count:]) or "no output"


def freeze(env: PluginEnv) -> list[str]:
    """Exact requirements installed in ``env``'s venv, fit for ``strata.lock`` (see ``scrub_requirements``)."""
    uv = uv_binary()
    vpy = str(env.current / "bin" / "python")
    cmd = [uv, "pip", "freeze", "--python", vpy] if uv else [vpy, "-m", "pip", "freeze"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InstallError(
            f"could not list packages of `{env.owner.name}`: {redact_urls(_last_lines(done.stderr))}", "reinstall it"
        )
    frozen = sorted(line for line in done.stdout.splitlines() if line and not line.startswith("#"))
    return scrub_requirements(frozen, env)


def uninstall(project: Project, home: Path) -> None:
    """Remove a plugin's home (see ``plugin_home``) with every venv in it."""
    home = ensure_inside(home, project.system_dir)
    if not home.exists():
        return
    with plugin_lock(home):
        shutil.rmtree(home, ignore_errors=True)
