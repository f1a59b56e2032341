"""The package layout the docs describe: no module of strata imports itself back, through any path."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "strata").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every strata module each module imports, anywhere in it (in functions and type-checking blocks too)."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            edges[name].update(t for t in targets if t in modules and t != name and not name.startswith(t + "."))
    return edges


def _circle_through(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path of imports that leads from ``start`` back to it, if any."""
    stack, seen = [(start, [start])], set()
    while stack:
        current, path = stack.pop()
        for nxt in edges[current]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_module_imports_itself_back() -> None:
    modules = _modules()
    edges = _imports(modules)
    for package in ("features", "resolve", "stores", "build", "views", "bridge", "ingest", "project", "state"):
        assert any(m.startswith(f"strata.{package}.") for m in modules), package  # where the docs say
    circles = {m: c for m in modules if (c := _circle_through(m, edges))}
    assert circles == {}


def test_the_feature_half_has_no_loose_modules_at_the_top() -> None:
    top = sorted(p.stem for p in (SRC / "strata").glob("*.py"))
    for moved in ("build", "build_lock", "project_features", "graph_views"):
        assert moved not in top
