"""Shared fixtures: an isolated environment, an in-process CLI runner, a new project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.cli import cli
from strata.cli.context import run_cli
from tests.helpers import Cli, Result


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable of the developer's shell may change what a test sees."""
    for name in list(os.environ):
        if name.startswith(("STRATA_", "TAP_", "TARGET_", "MELTANO_")):
            monkeypatch.delenv(name)


@pytest.fixture
def strata(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run the CLI in-process, as the console script would: ``strata("config", "x", "list")``."""

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = run_cli(cli, list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``strata init`` project, with the working directory inside it."""
    root = tmp_path / "proj"
    assert run_cli(cli, ["init", str(root)]) == 0
    monkeypatch.chdir(root)
    return root
