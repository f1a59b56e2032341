"""Parallel plugin installs, with progress per plugin while they run and their results after."""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from strata.cli.context import Context
    from strata.ingest.venv import PluginEnv
    from strata.project.project import Project


def run_installs(
    ctx: Context,
    names: list[str],
    *,
    clean: bool,
    parallelism: int | None,
    quiet: bool = False,
    locked: bool = True,
) -> list[dict[str, Any]]:
    """Install ``names`` (or every plugin); one result per plugin, failures included.

    ``locked``: the versions in ``strata.lock`` are installed (else each ``pip_url`` is resolved again).
    """
    from strata.cli.progress import reporting
    from strata.ingest import venv

    project = ctx.project()
    refs = [project.plugin(n) for n in names] if names else list(project.plugins())
    envs: dict[tuple[str, str], venv.PluginEnv] = {}
    """By type and name: one name may be a transformer and a file bundle (Meltano allows it)."""
    results: list[dict[str, Any]] = []
    show = not quiet and not ctx.json
    for ref in refs:
        env = venv.plugin_env(project, ref)
        if env.pip_url is not None:
            envs.setdefault((env.owner.plugin_type, env.owner.name), env)
        elif names:  # asked for by name: say why nothing happens
            results.append({"name": ref.name, "status": "nothing to install", "error": None, "seconds": 0})
            if show:
                click.echo(f"{ref.name}: nothing to install: {_why_nothing(project, env)}")
    if not envs:
        if show and not names:
            click.echo("nothing to install: no plugin has a pip_url")
        return results
    lock = venv.read_lock(project) if locked else {}
    venv.uv_binary()
    workers = parallelism or os.cpu_count() or 2
    with reporting(ctx, "install") if show else contextlib.nullcontext() as report:

        def one(env: venv.PluginEnv) -> dict[str, Any]:
            if report is not None:
                report.start(env.owner.name, None, unit="plugin")
            result = _install(project, env, clean=clean, lock=lock)
            if report is not None:
                report.finish(env.owner.name, "failed" if result["error"] else result["status"])
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(envs)))) as pool:
            installed = list(pool.map(one, envs.values()))
    if show:
        for result in installed:
            click.echo(_line(result), err=result["error"] is not None)
    return results + installed


def _install(project: Project, env: PluginEnv, *, clean: bool, lock: dict[str, Any]) -> dict[str, Any]:
    """Install one plugin; its result, a failure included."""
    from strata.errors import StrataError
    from strata.ingest import venv

    started = time.perf_counter()
    try:
        status, error = venv.install(project, env, clean=clean, lock=lock), None
    except StrataError as exc:
        status, error = "failed", str(exc)
    result: dict[str, Any] = {
        "name": env.owner.name,
        "type": env.owner.plugin_type,
        "status": status,
        "error": error,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if env.owner.plugin_type == "files" and error is None:
        from strata.ingest.bundles import bundle_files

        result["files"] = [str(path) for path in bundle_files(env)]
    return result


def _why_nothing(project: Project, env: PluginEnv) -> str:
    """Why a plugin without ``pip_url`` has nothing to install, and what runs instead."""
    from strata.project.project import BUILTIN_LOADER

    declared = next((p for p in project.model.plugins.loaders if p.name == env.ref.name), None)
    own_build = declared is not None and (declared.executable or declared.inherit_from)
    if env.ref.name == BUILTIN_LOADER and not own_build:
        return "it is built into strata"
    if env.ref.plugin.executable is None and env.owner.plugin.executable is None:
        return f"it has no pip_url; add one to it in {project.file_name}, or put `{env.executable}` on PATH"
    return f"it has no pip_url and runs {env.executable} as it is"


def _line(result: dict[str, Any]) -> str:
    if result["error"]:
        return f"{result['name']}: failed: {result['error']}"
    if "files" in result:
        files = ", ".join(result["files"]) or "none"
        return (
            f"{result['name']} (file bundle): {result['status']}; its files, not copied into the project "
            f"by install: {files} ({result['seconds']} s)"
        )
    return f"{result['name']}: {result['status']} ({result['seconds']} s)"
