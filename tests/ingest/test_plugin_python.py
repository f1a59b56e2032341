"""``python:`` on a plugin and at the top level: the interpreter of the plugin's venv (issue 12, item 13)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from strata.ingest import venv
from strata.project.project import Project
from tests.helpers import run_strata, write_project
from tests.ingest.test_plugins import JSONL


def _version_of(python: str) -> str | None:
    """``3.12`` for an interpreter that runs; None otherwise."""
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


MINE = f"{sys.version_info.major}.{sys.version_info.minor}"


def _other_python() -> Path | None:
    """An interpreter of another minor version than this one: on PATH, or one pyenv installed."""
    found = [shutil.which(f"python3.{minor}") for minor in range(9, 15)]
    found += [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3.[0-9]*"))]
    return next((Path(p) for p in found if p is not None and _version_of(p) not in (None, MINE)), None)


OTHER = _other_python()


def _venv_version(root: Path, name: str) -> str:
    project = Project(root)
    config = (venv.plugin_env(project, project.plugin(name)).current / "pyvenv.cfg").read_text()
    found = re.search(r"^version(?:_info)? = (\d+\.\d+)", config, re.MULTILINE)
    assert found is not None, config
    return found.group(1)


@pytest.mark.network
@pytest.mark.skipif(OTHER is None, reason="no interpreter of another Python version on this machine")
def test_a_plugins_python_names_the_interpreter_of_its_venv_and_the_projects_is_the_default(tmp_path: Path) -> None:
    assert OTHER is not None
    name = OTHER.name
    write_project(
        tmp_path,
        f"""
        python: {sys.executable}
        plugins:
          loaders:
            - {{name: target-jsonl, pip_url: "{JSONL}", python: {name}}}
            - {{name: target-other, namespace: target_jsonl, executable: target-jsonl, pip_url: "{JSONL}"}}
        """,
        name="meltano.yml",
    )
    path = f"{OTHER.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = run_strata("install", cwd=tmp_path, env={"PATH": path})
    assert done.code == 0, done.err
    assert _venv_version(tmp_path, "target-jsonl") == _version_of(str(OTHER))
    assert _venv_version(tmp_path, "target-other") == MINE
