"""Plugin virtual environments: where they live, how they are built, locked and found.

Each base plugin (one with ``pip_url``) gets its own venv, built with uv (pip when uv is
missing). Inherited plugins share their parent's. Layout::

    .strata/plugins/<type>/<name>/current -> v-<fingerprint>/   (a symlink, switched atomically)
    .strata/plugins/<type>/<name>/v-<fingerprint>/              (the venv; never moved)

A venv is built in its final directory (scripts hold absolute paths), marked complete, and
only then does ``current`` point at it. A failed build removes its own directory and leaves
the previous ``current`` untouched. The fingerprint covers the pip arguments, the
interpreter and the locked requirements, so ``install`` skips what is already right.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.errors import InstallError, PluginExecutableError, UsageError
from strata.project.expand import expand_str
from strata.project.files import write_atomic
from strata.project.settings import lineage, redact_urls

if TYPE_CHECKING:
    from strata.project.project import PluginRef, Project

_MARKER = ".strata-installed"
log = logging.getLogger("strata.ingest.venv")


@dataclass(frozen=True)
class PluginEnv:
    """How one plugin is installed and started."""

    ref: PluginRef
    owner: PluginRef
    """The plugin whose venv is used (itself, or the ancestor that has ``pip_url``)."""
    pip_url: str | None
    executable: str
    python: str | None
    home: Path
    """``.strata/plugins/<type>/<owner>/``."""

    @property
    def current(self) -> Path:
        return self.home / "current"

    @property
    def is_installed(self) -> bool:
        return (self.current / _MARKER).is_file()

    def executable_path(self) -> Path:
        """The executable to run; errors say how to fix a missing one."""
        if self.pip_url is None:
            found = shutil.which(self.executable) if os.sep not in self.executable else self.executable
            if found is None or not Path(found).is_file():
                raise PluginExecutableError(
                    f"`{self.ref.name}` has no pip_url and its executable `{self.executable}` is not on PATH",
                    "set pip_url so strata can install it, or executable to a path that exists",
                )
            return Path(found)
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


def plugin_env(project: Project, ref: PluginRef) -> PluginEnv:
    """Resolve the install and start-up facts of ``ref`` through ``inherit_from``."""
    chain = lineage(project, ref)
    owner = next((r for r in chain if r.plugin.pip_url), chain[-1])
    executable = next((r.plugin.executable for r in chain if r.plugin.executable), chain[-1].name)
    python = next((r.plugin.python for r in chain if r.plugin.python), project.model.python)
    pip_url = owner.plugin.pip_url
    if pip_url is not None:
        pip_url = expand_str(pip_url, project.variables, f"{project.line([*owner.path, 'pip_url'])} pip_url")
    return PluginEnv(ref, owner, pip_url, executable, python, project.plugins_dir / owner.plugin_type / owner.name)


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
    """The locked requirements of ``env``, or None when unlocked or locked for another pip_url."""
    entry = lock.get(env.owner.name)
    if not isinstance(entry, dict) or entry.get("pip_url") != env.pip_url:
        return None
    requirements = entry.get("requirements")
    return [str(r) for r in requirements] if isinstance(requirements, list) else None


def write_lock(project: Project, entries: dict[str, dict[str, Any]]) -> None:
    """Merge ``entries`` into ``strata.lock`` (sorted, stable, diff-friendly)."""
    current = read_lock(project)
    current.update(entries)
    body = {"version": 1, "plugins": dict(sorted(current.items()))}
    write_atomic(project.lock_path, json.dumps(body, indent=2, sort_keys=False) + "\n")


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


def install(project: Project, env: PluginEnv, *, clean: bool = False, lock: dict[str, Any] | None = None) -> str:
    """Build ``env``'s venv unless it is already right; return ``installed`` or ``up to date``."""
    if env.pip_url is None:
        return "nothing to install"
    requirements = locked_requirements(env, lock if lock is not None else read_lock(project))
    target = env.home / f"v-{fingerprint(env, requirements)}"
    if not clean and env.current.resolve() == target.resolve() and (target / _MARKER).is_file():
        return "up to date"
    if target.exists():
        shutil.rmtree(target)
    env.home.mkdir(parents=True, exist_ok=True)
    fields = {"plugin": env.owner.name, "pip_url": redact_urls(env.pip_url), "locked": requirements is not None}
    log.debug("installing plugin", extra={"fields": fields})
    try:
        _build(env, target, requirements)
        (target / _MARKER).write_text(json.dumps({"pip_url": env.pip_url, "locked": requirements is not None}))
        link = env.home / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(target.name)
        os.replace(link, env.current)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(OSError):
            env.home.rmdir()  # only when empty: a previous good venv stays
        raise
    for old in env.home.glob("v-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return "installed"


def _build(env: PluginEnv, target: Path, requirements: list[str] | None) -> None:
    assert env.pip_url is not None
    python = env.python or sys.executable
    uv = uv_binary()
    if requirements is not None:
        reqs = target.parent / f".{target.name}.requirements.txt"
        reqs.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        packages = ["-r", str(reqs)]
    else:
        try:
            packages = shlex.split(env.pip_url)
        except ValueError as exc:
            raise InstallError(f"pip_url of `{env.owner.name}` cannot be parsed: {exc}", "fix its quoting") from exc
    vpy = str(target / "bin" / "python")
    if uv is not None:
        steps = [
            [uv, "venv", "--quiet", "--no-project", "--python", python, str(target)],
            [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", vpy, *packages],
        ]
    else:
        steps = [[python, "-m", "venv", str(target)], [vpy, "-m", "pip", "install", "--quiet", *packages]]
    run_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    run_env.pop("VIRTUAL_ENV", None)
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, env=run_env, check=False)
            if done.returncode != 0:
                log.debug("install step failed", extra={"fields": {"plugin": env.owner.name, "step": step[1:3]}})
                raise InstallError(
                    f"could not install `{env.owner.name}` from `{redact_urls(env.pip_url)}`: "
                    f"{redact_urls(_last_lines(done.stderr))}",
                    "check the package name and version in pip_url",
                )
    finally:
        if requirements is not None:
            (target.parent / f".{target.name}.requirements.txt").unlink(missing_ok=True)


def _last_lines(text: str, count: int = 4) -> str:
    lines = [
        line.strip(" \u00d7\u2570\u2500\u25b6\u2502").strip() for line in text.strip().splitlines() if line.strip()
    ]
    return " / ".join(lines[-count:]) or "no output"


def freeze(env: PluginEnv) -> list[str]:
    """Exact requirements installed in ``env``'s venv."""
    uv = uv_binary()
    vpy = str(env.current / "bin" / "python")
    cmd = [uv, "pip", "freeze", "--python", vpy] if uv else [vpy, "-m", "pip", "freeze"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InstallError(f"could not list packages of `{env.owner.name}`: {_last_lines(done.stderr)}", "reinstall it")
    return sorted(line for line in done.stdout.splitlines() if line and not line.startswith("#"))


def uninstall(env: PluginEnv) -> None:
    """Remove the venv of ``env``'s owner."""
    shutil.rmtree(env.home, ignore_errors=True)
