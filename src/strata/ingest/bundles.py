"""File bundles (Meltano's ``files`` plugins): a package whose ``bundle/`` directory holds project files.

Meltano's rules (``meltano/core/plugin/file.py``): the files are everything under
``site-packages/bundle/`` in the bundle's venv but its ``__init__.py`` and ``__pycache__``;
adding the bundle writes each into the project at the same relative path, and a file that is
already there is kept, the bundle's written beside it as ``NAME (BUNDLE).ext``. Installing it
again copies nothing. strata does the same, except that it never rewrites a file afterwards
(Meltano's ``upgrade files`` with the ``update:`` extra): the project's copies are the project's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from strata.ingest.venv import PluginEnv
    from strata.project.project import Project


def bundle_files(env: PluginEnv) -> dict[Path, Path]:
    """The installed bundle's files: path in the project -> where it is in the venv, sorted; none if not installed."""
    roots = sorted(env.current.glob("lib/python*/site-packages/bundle")) if env.is_installed else []
    if not roots:
        return {}
    root = roots[0]
    found = {
        path.relative_to(root): path
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path != root / "__init__.py"
    }
    return dict(sorted(found.items()))


def copy_into(project: Project, env: PluginEnv) -> list[tuple[Path, Path | None]]:
    """Write the bundle's files into the project; ``(written, kept)`` per file, ``kept`` the existing file if any."""
    done: list[tuple[Path, Path | None]] = []
    for relative, source in bundle_files(env).items():
        target, kept = relative, None
        if (project.root / relative).exists():
            kept = relative
            target = relative.with_name(f"{relative.stem} ({env.ref.name}){relative.suffix}")
        path = project.root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.read_bytes())
        done.append((target, kept))
    return done
