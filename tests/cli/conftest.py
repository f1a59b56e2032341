"""Fixtures for the feature commands: projects with feature modules, imported and forgotten again."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import write_project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference"

MakeProject = Callable[..., Path]


@pytest.fixture(autouse=True)
def _forget_project_modules(tmp_path: Path) -> Iterator[None]:
    """Feature modules imported from a test's project leave ``sys.modules`` and ``sys.path`` as they were."""
    path, before = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    root = tmp_path.resolve()
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        file = getattr(module, "__file__", None)
        places = [file, *list(getattr(module, "__path__", None) or [])]
        if any(p is not None and Path(p).resolve().is_relative_to(root) for p in places):
            del sys.modules[name]


@pytest.fixture
def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeProject:
    """``make_project({"feats/graph.py": "..."}, entrypoints=["feats.graph"], extra="stores: ...")``.

    Writes the project under ``tmp_path/proj`` and makes it the working directory.
    """

    def make(
        modules: dict[str, str],
        *,
        entrypoints: list[str] | None = None,
        extra: str = "",
        root: Path | None = None,
    ) -> Path:
        root = root or tmp_path / "proj"
        names = entrypoints if entrypoints is not None else [p.removesuffix(".py").replace("/", ".") for p in modules]
        text = "version: 1\nfeatures:\n  entrypoints: [" + ", ".join(names) + "]\n" + textwrap.dedent(extra)
        write_project(root, text)
        for rel, source in modules.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            init = target.parent / "__init__.py"
            if target.parent != root and not init.exists():
                init.write_text("", encoding="utf-8")
            target.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
        monkeypatch.chdir(root)
        return root

    return make


@pytest.fixture
def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``examples/reference`` (without its local store), as the working directory."""
    root = tmp_path / "reference"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".strata", "__pycache__"))
    monkeypatch.chdir(root)
    return root
