"""The distribution: its name, a core install without the extras, and the error naming a missing extra.

The core install is made as ``make demo`` makes it (``uv sync --frozen --no-dev``), into a
virtual environment of its own, offline from uv's cache (``make test`` filled it). Its
``strata`` runs in a subprocess, so a missing package is really missing.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.build.test_build import Case
from tests.helpers import write_project

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("boto3", "botocore", "azure", "psycopg", "chdb", "clickhouse_connect", "ray")
"""Top-level modules that only the extras bring."""


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with strata-ml and its core dependencies only."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON_DOWNLOADS="never")
    sync = [find_uv_bin(), "sync", "--frozen", "--no-dev", "--offline", "--quiet", "--python", sys.executable]
    done = subprocess.run(sync, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return venv


def core_strata(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The core install's ``strata`` console script."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(venv / "bin" / "strata"), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_distribution_is_strata_ml_with_the_strata_commands() -> None:
    dist = importlib.metadata.distribution("strata-ml")
    scripts = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    assert scripts == {"strata": "strata.cli:main", "target-strata": "strata.bridge.target:main"}
    assert set(dist.metadata.get_all("Provides-Extra") or []) == {"s3", "azure", "postgres", "clickhouse", "ray", "all"}


def test_the_core_install_has_none_of_the_extras_and_runs(core_venv: Path, tmp_path: Path) -> None:
    probe = f"import importlib.util as u; print([m for m in {OPTIONAL!r} if u.find_spec(m)])"
    found = subprocess.run([core_venv / "bin" / "python", "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
    assert core_strata(core_venv, "init", "p", cwd=tmp_path).returncode == 0
    listed = core_strata(core_venv, "state", "list", cwd=tmp_path / "p")
    assert (listed.returncode, listed.stderr) == (0, "no state stored\n")


def hint(extra: str) -> str:
    spec = f"'strata-ml[{extra}]'"
    return f"install it with: uv tool install {spec} (or pip install {spec}; in a checkout: uv sync --extra {extra})"


@pytest.mark.parametrize(
    ("env", "args", "line"),
    [
        (
            {"STRATA_STATE_BACKEND_URI": "s3://bucket/prefix"},
            ["state", "list"],
            f"the S3 state backend needs the s3 extra, which is not installed; {hint('s3')}",
        ),
        (
            {"STRATA_STATE_BACKEND_URI": "azure://container/prefix", "AZURE_STORAGE_CONNECTION_STRING": "x"},
            ["state", "list"],
            f"the Azure state backend needs the azure extra, which is not installed; {hint('azure')}",
        ),
        (
            {"STRATA_STATE_BACKEND_URI": "postgresql://u:p@127.0.0.1:9/db"},
            ["state", "list"],
            f"the PostgreSQL state backend needs the postgres extra, which is not installed; {hint('postgres')}",
        ),
        (
            {"STRATA_DATABASE_URI": "postgresql://u:p@127.0.0.1:9/db"},
            ["runs", "list"],
            "a PostgreSQL system database (database_uri) needs the postgres extra, which is not installed; "
            + hint("postgres"),
        ),
    ],
    ids=["s3", "azure", "postgres-state", "postgres-system-db"],
)
def test_a_missing_extra_is_one_line_naming_it(
    core_venv: Path, tmp_path: Path, env: dict[str, str], args: list[str], line: str
) -> None:
    assert core_strata(core_venv, "init", "p", cwd=tmp_path).returncode == 0
    done = core_strata(core_venv, *args, cwd=tmp_path / "p", **env)
    assert (done.returncode, done.stderr) == (2, f"strata: error: {line}\n")
    assert "p@" not in done.stderr


def test_the_ray_executor_without_ray_is_one_line_naming_the_extra(core_venv: Path, tmp_path: Path) -> None:
    case = Case(tmp_path)
    case.source(3)
    write_project(tmp_path, "features: {entrypoints: [feats], executor: ray}\n")
    done = core_strata(core_venv, "build", cwd=tmp_path)
    expected = f"the Ray executor (features.executor `ray`) needs the ray extra, which is not installed; {hint('ray')}"
    assert (done.returncode, done.stderr) == (2, f"strata: error: {expected}, or use --executor local\n")
    assert core_strata(core_venv, "build", "--executor", "local", cwd=tmp_path).returncode == 0
