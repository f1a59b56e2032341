"""`strata build` with the Ray executor: the same batches, values, versions and failures as local workers.

One local Ray cluster serves the module (2 CPUs, no dashboard, a 100 MB object store; one per
pytest-xdist worker that runs tests of the module); builds connect to it through
`features.ray_address`. The variables the test feature module reads (`BUILD_LOG`, `BUILD_FAIL`)
reach the cluster's workers the way a job's variables do: through the runtime env Ray reads from
`RAY_JOB_CONFIG_JSON_ENV_VAR` (what `ray job submit` sets). One test lets strata start and stop
a local instance itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from strata.features.project import build_executor
from strata.project.project import Project
from tests.build.test_build import Case, summary
from tests.helpers import write_project
from tests.test_cli_frame import _modules_after

if TYPE_CHECKING:
    from collections.abc import Iterator

CLUSTER = """
import sys
import ray

ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="warning")
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test module is done (or gone)
ray.shutdown()
"""

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_AUTH_MODE": "token"}

STORED = "SELECT * EXCLUDE (strata_seq, strata_written_at) FROM {} ORDER BY ALL"
"""Every stored row: values, data, input, code and feature versions; not when it was written."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster for the module: its address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "RAY_"))}
    with subprocess.Popen(
        [sys.executable, "-c", CLUSTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**env, **RAY_ENV},
        text=True,
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        try:
            assert address, "the Ray cluster did not start"
            yield address
        finally:
            proc.stdin.close()  # the cluster shuts down
            proc.wait(timeout=60)


def ray_case(root: Path, address: str) -> Case:
    """A build case whose project runs compute on the Ray cluster at ``address``."""
    root.mkdir(parents=True, exist_ok=True)
    case = Case(root)
    write_project(root, f"features: {{entrypoints: [feats], executor: ray, ray_address: '{address}'}}\n")
    case.env.update(RAY_ENV)
    on_workers(case)
    return case


def on_workers(case: Case, **env: str) -> None:
    """Give the cluster's workers these variables (and BUILD_LOG): they do not see the strata process's."""
    job = {"runtime_env": {"env_vars": {"BUILD_LOG": str(case.log), **env}}}
    case.env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps(job)


def test_ray_computes_every_sample_with_the_same_values_and_versions(tmp_path: Path, cluster: str) -> None:
    (tmp_path / "local").mkdir()
    local = Case(tmp_path / "local")
    remote = ray_case(tmp_path / "ray", cluster)
    outcomes = []
    for case in (local, remote):
        case.source(12)
        first = case.build("--workers", "2")
        assert first["code"] == 0, first["err"]
        assert summary(first) == {"transcript": (12, 0, 0, 12), "embedding": (12, 0, 0, 12)}
        assert [f["batches"] for f in first["features"]] == [3, 1]
        assert sorted(case.computed()["transcript"]) == list(range(12))

        case.source(12, audio={1: "x", 5: "y", 7: "z"}, frames={2: 20})
        second = case.build("--workers", "2")
        assert second["code"] == 0, second["err"]
        assert summary(second) == {"transcript": (0, 3, 0, 3), "embedding": (0, 4, 0, 4)}
        assert {k: sorted(v) for k, v in case.computed().items()} == {
            "transcript": [1, 5, 7],
            "embedding": [1, 2, 5, 7],
        }
        outcomes.append(([{k: v for k, v in f.items() if k != "seconds"} for f in second["features"]], case))
    assert outcomes[0][0] == outcomes[1][0]
    for table in ("transcript", "embedding"):
        assert local.rows(STORED.format(table)) == remote.rows(STORED.format(table))
        assert len(remote.rows(STORED.format(table))) == 12
    assert remote.rows("SELECT text FROM transcript WHERE sample_uid = 5") == [("T:y",)]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("raise", "ValueError: cannot transcribe sample 3"),
        ("missing", "compute returned no row for 1 sample(s) of the batch"),
    ],
)
def test_a_failing_batch_on_ray_is_recorded_and_the_others_are_written(
    tmp_path: Path, cluster: str, mode: str, message: str
) -> None:
    case = ray_case(tmp_path, cluster)
    on_workers(case, BUILD_FAIL=mode)
    case.source(10)
    result = case.build()
    assert result["code"] == 1
    assert "compute failed for some batches of transcript" in result["err"]
    transcript = result["features"][0]
    assert transcript["written"] == 6  # batches [0-3] (holds 3) failed; [4-7] and [8-9] were written
    [failure] = transcript["failures"]
    assert failure["samples"] == 4
    assert message in failure["error"]
    assert sorted(int(s) for s in failure["first"]) == [0, 1, 2, 3]
    assert case.rows("SELECT count(*) FROM transcript") == [(6,)]
    case.computed()

    again = case.build()  # same inputs: skipped, not computed again
    assert again["features"][0]["skipped"] == 4
    assert "transcript" not in case.computed()

    on_workers(case)  # compute works again, and sample 0's input changed: it is computed again; 1-3 stay skipped
    case.source(10, audio={0: "fixed"})
    fixed = case.build()
    assert fixed["code"] == 0, fixed["err"]
    assert fixed["features"][0]["skipped"] == 3
    assert case.computed()["transcript"] == [0]
    assert case.rows("SELECT text FROM transcript WHERE sample_uid = 0") == [("T:fixed",)]


def test_strata_starts_a_local_instance_and_shuts_it_down(tmp_path: Path) -> None:
    case = Case(tmp_path)
    case.env.update(RAY_ENV)
    case.source(8)
    done = case.strata("--json", "--log-format", "json", "build", "--executor", "ray", "--workers", "2")
    assert done.code == 0, done.err
    assert summary(done.json()) == {"transcript": (8, 0, 0, 8), "embedding": (8, 0, 0, 8)}
    assert sorted(case.computed()["transcript"]) == list(range(8))  # the instance's workers see strata's variables
    events = [json.loads(line) for line in done.err.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["logger"] == "strata.build"] == [
        "started a local Ray instance",
        "ray shut down",
    ]
    assert case.rows("SELECT text FROM transcript WHERE sample_uid = 7") == [("T:a7",)]


def test_a_worker_that_cannot_load_the_project_stops_the_build_and_records_nothing(
    tmp_path: Path, cluster: str
) -> None:
    case = ray_case(tmp_path, cluster)
    with (tmp_path / "feats.py").open("a") as module:  # a package the cluster's nodes lack
        module.write('\nif os.environ.get("NODE_LACKS_IT"):\n    import package_the_node_lacks\n')
    on_workers(case, NODE_LACKS_IT="1")
    case.source(4)
    done = case.strata("build")
    assert done.code == 1
    assert "error: a Ray worker could not load the project: " in done.err
    assert "No module named 'package_the_node_lacks'" in done.err
    assert "every node needs the project directory" in done.err
    on_workers(case)  # the node is fixed: nothing was recorded against the samples
    fixed = case.build()
    assert fixed["code"] == 0, fixed["err"]
    assert summary(fixed) == {"transcript": (4, 0, 0, 4), "embedding": (4, 0, 0, 4)}
    assert fixed["features"][0]["skipped"] == 0


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ("executor: dask", "strata.yml:1: unknown features.executor `dask`; use one of: local, ray"),
        (
            "executor: ray, ray_address: 'http://x'",
            "strata.yml:1: features.ray_address `http://x` is not a Ray address",
        ),
        (
            "executors: ray",
            "strata.yml:1: unknown key `features.executors`; features takes: entrypoints, store, executor",
        ),
    ],
)
def test_a_bad_executor_setting_is_one_clear_error(tmp_path: Path, features: str, message: str) -> None:
    case = Case(tmp_path)
    write_project(tmp_path, f"features: {{entrypoints: [feats], {features}}}\n")
    done = case.strata("build")
    assert done.code == 2
    assert message in done.err
    assert done.err.count("\n") == 1
    assert case.strata("build", "--executor", "threads").code == 2


def test_the_executor_comes_from_the_file_the_variable_or_the_command_line(tmp_path: Path) -> None:
    write_project(tmp_path, "features: {executor: ray, ray_address: 'ray://head:10001'}\n")
    assert build_executor(Project(tmp_path, environ={})) == ("ray", "ray://head:10001")
    assert build_executor(Project(tmp_path, environ={"STRATA_FEATURES_EXECUTOR": "local"}))[0] == "local"
    write_project(tmp_path, "features: {ray_address: '${HEAD}:6379'}\n")
    assert build_executor(Project(tmp_path, environ={"HEAD": "10.0.0.1"})) == ("local", "10.0.0.1:6379")


def test_the_local_executor_overrides_the_file_and_never_imports_ray(tmp_path: Path) -> None:
    case = Case(tmp_path)
    write_project(tmp_path, "features: {entrypoints: [feats], executor: ray, ray_address: 'nowhere:1'}\n")
    case.source(4)
    done = case.build("--executor", "local", "--workers", "1")
    assert done["code"] == 0, done["err"]
    assert summary(done) == {"transcript": (4, 0, 0, 4), "embedding": (4, 0, 0, 4)}
    loaded = _modules_after(["build", "--executor", "local"], tmp_path)
    assert "strata.build.runner" in loaded
    assert "ray" not in loaded
    assert "strata.build.ray" not in loaded
    assert "ray" not in _modules_after(["--help"], tmp_path)
