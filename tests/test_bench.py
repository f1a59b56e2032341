"""The benchmarks clean up after themselves without touching each other's files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_script(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A script of bench/ loaded as a module, for this test only."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_startup_recreates_only_its_own_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    startup = bench_script("startup", monkeypatch)
    monkeypatch.setattr(startup, "WORK", tmp_path)
    stale = startup.make_projects()[0] / "stale.txt"
    stale.write_text("left by the last run")
    others = [tmp_path / "ingest" / "data" / "input.jsonl", tmp_path / "features" / "metaxy" / "venv" / "pyvenv.cfg"]
    for path in others:
        path.parent.mkdir(parents=True)
        path.write_text("kept")

    strata_dir, meltano_dir = startup.make_projects()

    assert all(path.read_text() == "kept" for path in others)
    assert not stale.exists()
    assert (strata_dir / "strata.yml").is_file()
    assert (meltano_dir / "meltano.yml").is_file()
    assert {strata_dir.parent, meltano_dir.parent} == {tmp_path / "startup"}
