"""The variables of a pipeline's plugins reach the plugins after them, as in Meltano 4.4.1 (issue 12).

``tests/fixtures/meltano-pipeline-env`` is a Meltano project: tap-jsonl and target-jsonl from
PyPI, and a mapper, a loader and a utility that are one script (``dump.sh``) writing down the
block variables they were given and their config file. ``record.sh`` stored what Meltano gave
each of them under ``expected/``; strata must give the same, through ``run``, ``el`` and
``invoke``. The live check reruns ``record.sh`` when Meltano is at hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import Result, assert_meltano_still_prints, run_strata

pytestmark = pytest.mark.network

FIXTURE = Path(__file__).parents[1] / "fixtures" / "meltano-pipeline-env"
EXPECTED = FIXTURE / "expected"
SECRET = "s3cret-token-0012"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline-env") / "project"
    shutil.copytree(FIXTURE / "project", root)
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


@pytest.fixture
def project(installed: Path) -> Path:
    """The installed project with no output of an earlier test."""
    shutil.rmtree(installed / "out", ignore_errors=True)
    return installed


def strata(root: Path, *args: str) -> Result:
    done = run_strata(*args, cwd=root, stdin="", timeout=300)
    assert done.code == 0, done.err
    return done


def assert_as_meltano(root: Path, name: str, *files: str) -> None:
    """Each ``out/FILE`` holds what Meltano's ``expected/NAME-FILE`` does (configs compared as JSON)."""
    for file in files:
        got = (root / "out" / file).read_text()
        want = (EXPECTED / f"{name}-{file}").read_text()
        if file.endswith(".config"):
            assert json.loads(got) == json.loads(want), file
        else:
            assert got.splitlines() == want.splitlines(), file


def output_files(root: Path) -> str:
    out = root / "out"
    return "".join(f"./{p.relative_to(out)}\n" for p in sorted(out.rglob("*")) if p.is_file())


def test_run_hands_the_mapper_and_the_loader_the_variables_of_the_plugins_before_them(project: Path) -> None:
    """The loader's `${MELTANO_EXTRACTOR_NAMESPACE}`, `$MELTANO_EXTRACT__LOAD_SCHEMA` and a secret expand as in Meltano."""
    strata(project, "run", "tap-jsonl", "dumped", "target-dump")
    assert_as_meltano(project, "run", "mapper.env", "loader.env", "loader.config")


def test_a_job_hands_its_pipeline_the_same_variables(project: Path) -> None:
    """`dump-job` is `tap-jsonl dumped target-dump`: Meltano runs a job's pipeline as `run` does."""
    strata(project, "run", "dump-job")
    assert_as_meltano(project, "job", "mapper.env", "loader.env", "loader.config")


def test_el_hands_the_loader_the_variables_of_the_extractor(project: Path) -> None:
    strata(project, "el", "tap-jsonl", "target-dump")
    assert_as_meltano(project, "el", "loader.env", "loader.config")


def test_el_dump_prints_the_loader_config_the_pipeline_hands_the_loader(project: Path) -> None:
    """`el --dump=loader-config` expands the loader's config with the extractor's variables, as Meltano's does."""
    done = strata(project, "el", "tap-jsonl", "target-dump", "--dump=loader-config")
    want = json.loads((EXPECTED / "el-dump-loader-config.json").read_text())
    want["token"] = "(redacted)"  # Meltano prints the secret; strata prints none
    assert json.loads(done.out) == want
    assert "not set" not in done.err
    assert not (project / "out").exists()  # nothing ran


def test_an_inheriting_extractor_hands_its_own_info_and_its_parents_values_expanded_as_its_own(
    project: Path,
) -> None:
    """`tap-kid` inherits `load_schema: stage_$MELTANO_EXTRACTOR_NAMESPACE`: Meltano expands it with tap-kid's namespace."""
    strata(project, "el", "tap-kid", "target-dump")
    assert_as_meltano(project, "el-tap-kid", "loader.env", "loader.config")


def test_invoke_hands_a_plugin_its_own_variables_only(project: Path) -> None:
    """Outside a pipeline the extractor's variables are unset: a value that expands to nothing is left out."""
    strata(project, "invoke", "target-dump")
    assert_as_meltano(project, "invoke", "loader.env", "loader.config")
    strata(project, "invoke", "util-dump")
    assert_as_meltano(project, "invoke", "utility.env")


@pytest.mark.parametrize("command", ["run", "el"])
def test_target_jsonl_writes_under_the_extractors_load_schema_as_in_meltano(project: Path, command: str) -> None:
    """`destination_path: out/$MELTANO_EXTRACT__LOAD_SCHEMA` with `load_schema: stage_$MELTANO_EXTRACTOR_NAMESPACE`."""
    strata(project, command, "tap-jsonl", "target-jsonl")
    assert output_files(project) == (EXPECTED / f"{command}-target-jsonl-files.txt").read_text()
    lines = (project / "out" / "stage_raw_src" / "users.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["ada", "bob"]


def test_an_extractor_secret_in_the_variables_stays_out_of_the_run_log_and_the_output(project: Path) -> None:
    """The mapper and the loader print the extractor's token they were given: the run log has it redacted."""
    done = strata(project, "run", "tap-jsonl", "dumped", "target-dump")
    assert SECRET in (project / "out" / "loader.env").read_text()  # the plugin did get it
    logs = sorted((project / ".strata" / "logs" / "runs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    log = logs[-1].read_text()
    assert "loader sees token (redacted)" in log
    assert "mapper sees token (redacted)" in log
    assert SECRET not in log
    assert SECRET not in done.out + done.err


def test_the_stored_meltano_output_is_what_meltano_gives_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``record.sh`` run again reproduces every stored file byte for byte."""
    assert_meltano_still_prints(FIXTURE, tmp_path)
