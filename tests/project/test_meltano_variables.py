"""Meltano's ``MELTANO_*`` project setting variables work beside ``STRATA_*`` (issue 12, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.project.project import Project
from tests.helpers import Cli, write_project

TWO_ENVIRONMENTS = """
    default_environment: dev
    plugins:
      loaders:
        - name: target-jsonl
          executable: target-jsonl
          config:
            destination_path: output
    environments:
      - name: dev
      - name: prod
        config:
          plugins:
            loaders:
              - name: target-jsonl
                config:
                  destination_path: output/prod
      - name: ci
"""


@pytest.fixture
def two_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    write_project(root, TWO_ENVIRONMENTS, name="meltano.yml")
    monkeypatch.chdir(root)
    monkeypatch.delenv("STRATA_ENVIRONMENT", raising=False)
    monkeypatch.delenv("MELTANO_ENVIRONMENT", raising=False)
    return root


def test_meltano_environment_picks_the_environment(
    strata: Cli, two_environments: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job that sets MELTANO_ENVIRONMENT runs that environment, not the default one."""
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "prod")
    result = strata("config", "target-jsonl", "list")
    assert result.code == 0, result.err
    assert "output/prod" in result.out
    assert "environment prod" in result.out


def test_strata_environment_wins_over_meltano_environment(two_environments: Path) -> None:
    both = {"MELTANO_ENVIRONMENT": "prod", "STRATA_ENVIRONMENT": "ci"}
    project = Project(two_environments, environ=both)
    assert project.environment is not None
    assert project.environment.name == "ci"


def test_meltano_environment_in_dotenv_is_read(two_environments: Path) -> None:
    (two_environments / ".env").write_text("MELTANO_ENVIRONMENT=prod\n")
    project = Project(two_environments, environ={})
    assert project.environment is not None
    assert project.environment.name == "prod"


def test_an_unknown_meltano_environment_is_refused_in_one_line(
    strata: Cli, two_environments: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "staging")
    result = strata("job", "list")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "environment `staging` is not defined in meltano.yml (defined: dev, prod, ci)" in result.err


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("default_environment", "MELTANO_DEFAULT_ENVIRONMENT"),
        ("database_uri", "MELTANO_DATABASE_URI"),
        ("state_backend.uri", "MELTANO_STATE_BACKEND_URI"),
        ("state_backend.lock_timeout_seconds", "MELTANO_STATE_BACKEND_LOCK_TIMEOUT_SECONDS"),
    ],
)
def test_meltano_project_settings_variables_override_the_file(two_environments: Path, name: str, variable: str) -> None:
    assert Project(two_environments, environ={variable: "prod"}).setting(name) == "prod"
    both = {variable: "prod", "STRATA_" + variable.removeprefix("MELTANO_"): "ci"}
    assert Project(two_environments, environ=both).setting(name) == "ci"


def test_meltano_default_environment_variable_picks_the_environment(two_environments: Path) -> None:
    project = Project(two_environments, environ={"MELTANO_DEFAULT_ENVIRONMENT": "prod"})
    assert project.environment is not None
    assert project.environment.name == "prod"


def test_meltano_variables_do_not_reach_strata_only_settings(two_environments: Path) -> None:
    """``features.*`` is strata's own: Meltano has no such setting, so no MELTANO_ variable sets it."""
    assert Project(two_environments, environ={"MELTANO_FEATURES_STORE": "x"}).setting("features.store") is None


def test_meltano_project_root_finds_the_project_as_in_meltano(
    strata: Cli, two_environments: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(two_environments))
    result = strata("config", "target-jsonl", "list")
    assert result.code == 0, result.err
    assert "destination_path=output" in result.out
    other = tmp_path / "other"
    write_project(other, "default_environment: ci\nenvironments: [{name: ci}]\n")
    monkeypatch.setenv("STRATA_PROJECT_DIR", str(other))
    assert "no plugin named `target-jsonl` in strata.yml" in strata("config", "target-jsonl", "list").err
