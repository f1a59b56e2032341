"""``config set|unset meltano NAME`` and the ``state_backend`` settings under Meltano's names (issue 12, item 13).

Meltano 4.4.1 writes its environment-specific project settings (``state_backend.*``,
``database_uri``, ``project_readonly``, ``cli.log_level``) to ``.env`` as ``MELTANO_<NAME>``,
and the others (``venv.backend``, ``default_environment`` …) into ``meltano.yml``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from strata.project.project import Project
from strata.state.backends import state_backend_for
from tests.helpers import STRATA, Cli, run_strata, wait_for
from tests.ingest.scripted import STATE_ID, scripted_project

MAIN = "version: 1\ndefault_environment: dev\nenvironments:\n- name: dev\n"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "meltano.yml").write_text(MAIN)
    monkeypatch.chdir(tmp_path)
    for name in ("STATE_BACKEND_URI", "STATE_BACKEND_LOCK_TIMEOUT_SECONDS"):
        monkeypatch.delenv(f"MELTANO_{name}", raising=False)
        monkeypatch.delenv(f"STRATA_{name}", raising=False)
    return tmp_path


def test_environment_specific_settings_go_to_dotenv_as_meltano_writes_them(strata: Cli, root: Path) -> None:
    result = strata("config", "set", "meltano", "state_backend.uri", "file://elsewhere")
    assert result.code == 0, result.err
    assert result.out == "meltano: state_backend.uri stored in .env (MELTANO_STATE_BACKEND_URI)\n"
    assert strata("config", "set", "meltano", "state_backend.lock_timeout_seconds", "31").code == 0
    dotenv = root / ".env"
    assert dotenv.read_text() == (
        "MELTANO_STATE_BACKEND_URI='file://elsewhere'\nMELTANO_STATE_BACKEND_LOCK_TIMEOUT_SECONDS='31'\n"
    )
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    assert (root / "meltano.yml").read_text() == MAIN
    project = Project(root, environ={})
    with state_backend_for(project) as backend:
        assert backend.describe() == f"file://{root / 'elsewhere'}"
    assert strata("config", "unset", "meltano", "state_backend.lock_timeout_seconds").code == 0
    assert dotenv.read_text() == "MELTANO_STATE_BACKEND_URI='file://elsewhere'\n"


def test_other_project_settings_go_to_the_project_file(strata: Cli, root: Path) -> None:
    result = strata("config", "set", "meltano", "venv.backend", "virtualenv")
    assert result.code == 0, result.err
    assert (root / "meltano.yml").read_text() == MAIN + "venv:\n  backend: virtualenv\n"
    assert strata("config", "unset", "meltano", "venv.backend").code == 0
    assert (root / "meltano.yml").read_text() == MAIN


def test_an_unknown_project_setting_is_one_line_exit_2(strata: Cli, root: Path) -> None:
    result = strata("config", "set", "meltano", "state_backend.bogus", "1")
    assert result.code == 2
    assert result.err.startswith("strata: error: `state_backend.bogus` is not a Meltano project setting strata reads;")
    assert result.err.count("\n") == 1
    assert not (root / ".env").exists()


@pytest.mark.parametrize("where", ["file", "variable"])
def test_lock_timeout_seconds_is_how_long_a_runs_lease_counts_unrenewed(tmp_path: Path, where: str) -> None:
    """Meltano's ``state_backend.lock_timeout_seconds`` (in the file, or ``MELTANO_…``) is the run lock's lease."""
    scripted_project(tmp_path)
    env = {**os.environ}
    env.pop("MELTANO_STATE_BACKEND_LOCK_TIMEOUT_SECONDS", None)
    if where == "file":
        project = tmp_path / "strata.yml"
        project.write_text(project.read_text() + "state_backend:\n  lock_timeout_seconds: 42\n")
    else:
        env["MELTANO_STATE_BACKEND_LOCK_TIMEOUT_SECONDS"] = "42"
    lease = tmp_path / ".strata" / "state" / STATE_ID / "strata.lock"
    proc = subprocess.Popen([*STRATA, "run", "tap-slow", "target-echo"], cwd=tmp_path, env=env, start_new_session=True)
    try:
        wait_for(lease.is_file, "the run's lease")
        taken = json.loads(lease.read_bytes())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert taken["expires"] - taken["renewed"] == pytest.approx(42)


def test_a_lock_timeout_that_is_not_a_number_is_one_line_exit_2(tmp_path: Path) -> None:
    scripted_project(tmp_path, ticks=1)
    project = tmp_path / "strata.yml"
    project.write_text(project.read_text() + "state_backend:\n  lock_timeout_seconds: soon\n")
    done = run_strata("run", "tap-slow", "target-echo", cwd=tmp_path)
    assert done.code == 2
    assert done.err == (
        "strata: error: state_backend.lock_timeout_seconds `soon` is not a positive number of seconds; "
        "set it to a whole number of seconds, e.g. 300\n"
    )
