"""A project, and its run history in a real SQLite file (the default place) or a real PostgreSQL."""

from __future__ import annotations

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
        - {name: dbt, executable: /bin/true}
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
