"""`strata schedule export --to dagster`: the exported module loaded and run by a real Dagster.

Dagster is installed from PyPI into its own environment (never a strata dependency); the jobs
it runs call the real `strata schedule run`, and strata's run history shows what ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from strata.ingest.venv import uv_binary
from tests.helpers import Cli, run_strata, write_project

DAGSTER = "dagster==1.13.29"

TAP = '#!/bin/sh\necho \'{"type": "STATE", "value": {"bookmarks": {"n": 1}}}\'\n'
TARGET_OK = "#!/bin/sh\ncat\n"
TARGET_FAILS = "#!/bin/sh\necho 'target broke' >&2\nexit 3\n"

LOAD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("exported", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
defs = module.defs
out = {
    "jobs": sorted(job.name for job in defs.resolve_all_job_defs()),
    "schedules": sorted(
        [s.name, s.job_name, s.cron_schedule, s.execution_timezone] for s in defs.schedules
    ),
    "runs": {},
}
for name in sys.argv[2:]:
    result = defs.resolve_job_def(name).execute_in_process(raise_on_error=False)
    out["runs"][name] = result.success
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dagster_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with Dagster, in an environment of its own."""
    uv = uv_binary()
    assert uv is not None, "uv is a strata dependency and must be found"
    venv = tmp_path_factory.mktemp("dagster") / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=env)
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), DAGSTER], check=True, env=env)
    return venv / "bin" / "python"


def project(root: Path) -> Path:
    for name, text in (("tap", TAP), ("target-ok", TARGET_OK), ("target-fails", TARGET_FAILS)):
        script = root / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(text)
        script.chmod(0o755)
    (root / "catalog.json").write_text('{"streams": []}')
    return write_project(
        root,
        f"""
        default_environment: dev
        environments: [{{name: dev}}, {{name: prod}}]
        plugins:
          extractors:
            - {{name: tap-x, executable: {root}/tap, catalog: {root}/catalog.json}}
          loaders:
            - {{name: target-ok, executable: {root}/target-ok}}
            - {{name: target-fails, executable: {root}/target-fails}}
        jobs: [{{name: load, tasks: [tap-x target-ok]}}]
        schedules:
          - {{name: nightly-load, interval: '0 2 * * *', job: load}}
          - {{name: hourly.pair, interval: '@hourly', extractor: tap-x, loader: target-ok,
              env: {{STRATA_ENVIRONMENT: prod}}}}
          - {{name: by-hand, interval: '@manual', extractor: tap-x, loader: target-fails}}
        """,
    )


def test_dagster_loads_the_export_and_its_jobs_run_the_schedules(dagster_python: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    project(root)
    exported = run_strata("schedule", "export", "--to", "dagster", cwd=root)
    assert exported.code == 0, exported.err
    module = tmp_path / "strata_schedules.py"
    module.write_text(exported.out)
    (tmp_path / "dagster-home").mkdir()
    done = subprocess.run(
        [str(dagster_python), "-c", LOAD, str(module), "nightly_load", "hourly_pair", "by_hand"],
        capture_output=True,
        text=True,
        check=False,
        env={"DAGSTER_HOME": str(tmp_path / "dagster-home"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded["jobs"] == ["by_hand", "hourly_pair", "nightly_load"]
    timezone = loaded["schedules"][0][3]
    assert loaded["schedules"] == [
        ["hourly_pair__schedule", "hourly_pair", "0 * * * *", timezone],
        ["nightly_load__schedule", "nightly_load", "0 2 * * *", timezone],
    ]
    assert loaded["runs"] == {"nightly_load": True, "hourly_pair": True, "by_hand": False}
    assert "target broke" in done.stderr  # strata's output reached the Dagster run log
    runs = json.loads(run_strata("--json", "runs", "list", cwd=root).out)
    assert sorted((r["state_id"], r["environment"], r["status"]) for r in runs) == [
        ("by-hand", "dev", "failed"),
        ("dev:tap-x-to-target-ok", "dev", "success"),
        ("hourly.pair", "prod", "success"),
    ]


def test_export_to_dagster_checks_schedules_like_cron(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(
        tmp_path,
        "plugins:\n  extractors: [{name: tap-x, executable: /bin/true}]\n"
        "schedules: [{name: s, interval: '@daily', job: gone}]\n",
    )
    monkeypatch.chdir(tmp_path)
    result = strata("schedule", "export", "--to", "dagster")
    assert result.code == 2
    assert "no job named `gone`" in result.err
    assert result.out == ""


def test_schedule_names_become_unique_dagster_names(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ast

    write_project(
        tmp_path,
        "plugins:\n  extractors: [{name: tap-x, executable: /bin/true}]\n"
        "  loaders: [{name: target-y, executable: /bin/true}]\n"
        "schedules:\n"
        + "".join(
            f"  - {{name: '{name}', interval: '@daily', extractor: tap-x, loader: target-y}}\n"
            for name in ("a-b", "a.b", "a_b", "1x")
        ),
    )
    monkeypatch.chdir(tmp_path)
    result = strata("schedule", "export", "--to", "dagster")
    assert result.code == 0, result.err
    module = ast.parse(result.out)
    (rows,) = [
        node.value
        for node in module.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "SCHEDULES"
    ]
    assert rows is not None
    assert ast.literal_eval(rows) == [
        ("a_b", "a-b", "0 0 * * *", None),
        ("a_b_2", "a.b", "0 0 * * *", None),
        ("a_b_3", "a_b", "0 0 * * *", None),
        ("s_1x", "1x", "0 0 * * *", None),
    ]
