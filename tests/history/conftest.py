"""A project, and its run history in a real SQLite file (the default place) or a real PostgreSQL."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.history import RunHistory
from strata.project.project import Project
from tests.helpers import write_project
from tests.servers import postgres_database, postgres_server  # noqa: F401 - fixtures

PROJECT = """
    default_environment: dev
    environments: [{name: dev}, {name: prod}]
    plugins:
      extractors:
        - {name: tap-x, executable: /bin/true}
        - {name: tap-y, executable: /bin/true}
      loaders:
        - {name: target-y, executable: /bin/true}
      mappers:
        - name: mapper-m
          executable: /bin/true
          mappings: [{name: hash-pii, config: {}}]
      utilities:
        - {name: dbt, executable: /bin/true, commands: {run: run}}
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with two extractors, a loader, a mapper (with a mapping) and a utility; cwd inside."""
    path = tmp_path / "proj"
    write_project(path, PROJECT)
    monkeypatch.chdir(path)
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The system database of ``root``: the default SQLite file, or a fresh PostgreSQL database.

    PostgreSQL is chosen through ``STRATA_DATABASE_URI``, so child processes and the CLI use it too.
    """
    if request.param == "postgres":
        monkeypatch.setenv("STRATA_DATABASE_URI", request.getfixturevalue("postgres_database"))
    return str(request.param)


@pytest.fixture
def history(root: Path, database: str) -> Iterator[RunHistory]:
    with RunHistory.open(Project(root)) as opened:
        yield opened


@contextlib.contextmanager
def killed_run(root: Path, opener: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A run started by another process (``opener`` opens its history); SIGKILLed when the block ends.

    Yields the run id and the process; after the block the process is dead and its run still says
    ``running``.
    """
    code = (
        "import sys\n"
        "from strata.history import RunHistory\n"
        "from strata.history.lite import open_writer\n"
        "from strata.project.project import Project\n"
        f"run = {opener}(Project.find()).start('dev:tap-x-to-target-y', 'dev', ['tap-x', 'target-y'])\n"
        "print(run.run_id, flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
