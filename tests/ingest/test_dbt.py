"""dbt as Meltano projects run it: a tap, target-duckdb and ``dbt-duckdb:run``, real plugins from PyPI.

The project file is the one a Meltano user has (``meltano.yml``): dbt-duckdb defined as Meltano
Hub's ``jwills`` variant defines it (``project_dir``, ``profiles_dir`` as ``DBT_PROFILES_DIR``,
``path``, its ``commands:``), the dbt project under ``transform/`` with the profile of Meltano's
``files-dbt-duckdb`` bundle (``tests/fixtures/dbt-duckdb``). Every plugin is installed once for
the module (uv's cache makes that quick after the first time); each test has its own data, DuckDB
file and state id suffix.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from tests.helpers import run_strata, write_project
from tests.ingest import test_pipeline as pipeline
from tests.ingest.test_pipeline import TAP, TARGET, UPSERT_TARGET

pytestmark = pytest.mark.network

DBT = "dbt-core==1.9.11 dbt-duckdb==1.9.6"
TRANSFORM = Path(__file__).parent.parent / "fixtures" / "dbt-duckdb" / "transform"

PROJECT = f"""
default_environment: dev
environments:
- name: dev
plugins:
  extractors:
  - name: tap-jsonl
    pip_url: {TAP}
    settings:
    - name: path
    config:
      stream_name: users
      primary_keys: [id]
  loaders:
  - name: target-duckdb
    pip_url: {UPSERT_TARGET}
    settings:
    - name: filepath
    config:
      filepath: $MELTANO_PROJECT_ROOT/output/warehouse.duckdb
      default_target_schema: main
  - name: target-jsonl
    pip_url: {TARGET}
    settings:
    - name: destination_path
    config:
      do_timestamp_file: false
  transformers:
  - name: dbt-duckdb
    variant: jwills
    namespace: dbt_duckdb
    pip_url: {DBT}
    executable: dbt
    settings:
    - name: project_dir
      value: $MELTANO_PROJECT_ROOT/transform
    - name: profiles_dir
      value: $MELTANO_PROJECT_ROOT/transform/profiles/duckdb
      env: DBT_PROFILES_DIR
    - name: path
      kind: string
    - name: schema
      kind: string
      value: main
    config:
      path: $MELTANO_PROJECT_ROOT/output/warehouse.duckdb
    commands:
      run:
        args: run
        description: Compile SQL and execute against the current target database.
      test:
        args: test
        description: Runs tests on data in deployed models.
      compile:
        args: compile
        description: Generates executable SQL from source model, test, and analysis files.
  - name: dbt-broken
    inherit_from: dbt-duckdb
    config:
      project_dir: $MELTANO_PROJECT_ROOT/transform-broken
  - name: dbt-unparsable
    inherit_from: dbt-duckdb
    config:
      project_dir: transform-unparsable
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with every plugin installed once, and three dbt projects: good, a bad model, unparsable."""
    root = tmp_path_factory.mktemp("dbt") / "proj"
    write_project(root, PROJECT, "meltano.yml")
    shutil.copytree(TRANSFORM, root / "transform")
    broken = shutil.copytree(TRANSFORM, root / "transform-broken")
    (broken / "models" / "broken.sql").write_text("select nme, from {{ source('loaded', 'users') }}\n")
    unparsable = shutil.copytree(TRANSFORM, root / "transform-unparsable")
    (unparsable / "dbt_project.yml").write_text("name: warehouse\nconfig-version: 2\nprofile: meltano\nmodels: [\n")
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


class Case(pipeline.Case):
    """test_pipeline's case (its own 50 rows, output and state id suffix), with dbt's DuckDB file its loader's."""

    def __init__(self, root: Path, work: Path, name: str) -> None:
        super().__init__(root, work, name)
        self.out = work / "out"
        self.warehouse = Path(self.env["TARGET_DUCKDB_FILEPATH"])
        self.env["DBT_DUCKDB_PATH"] = str(self.warehouse)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()

    def history(self) -> list[tuple[list[str], str]]:
        """``(blocks, status)`` of every run, oldest first."""
        runs = self.strata("--json", "runs", "list").json()
        return [(r["blocks"], r["status"]) for r in reversed(runs)]


@pytest.fixture
def case(installed: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    return Case(installed, tmp_path, request.node.name.replace("_", "-")[:40])


def _model_matches_the_loaded_table(case: Case) -> int:
    """``users_by_name`` (dbt's model, in a DuckDB file it did not exist in) counts the rows target-duckdb loaded.

    Returns how many names it has.
    """
    model = case.query("select name, users from main.users_by_name order by name")
    loaded = case.query("select name, count(*) from main.users group by name order by name")
    assert model == loaded
    return len(model)


def test_dbt_builds_its_models_over_what_the_pipeline_before_it_loaded(case: Case) -> None:
    """`tap target dbt-duckdb:run tap target`: the command between two pipelines, each block in the history."""
    done = case.run("tap-jsonl", "target-duckdb", "dbt-duckdb:run", "tap-jsonl", "target-jsonl")
    assert done.code == 0, done.err
    assert [r["state_id"] for r in done.json()] == [
        f"dev:tap-jsonl-to-target-duckdb:{case.suffix}",
        "dev:dbt-duckdb:run",
        f"dev:tap-jsonl-to-target-jsonl:{case.suffix}",
    ]
    assert _model_matches_the_loaded_table(case) >= 49  # target-duckdb 0.8.0 may drop the first row
    assert len((case.out / "users.jsonl").read_text().splitlines()) == 50
    assert case.history()[-3:] == [
        (["tap-jsonl", "target-duckdb"], "success"),
        (["dbt-duckdb:run"], "success"),
        (["tap-jsonl", "target-jsonl"], "success"),
    ]
    log = Path(done.json()[1]["log"]).read_text()
    assert "dbt-duckdb:run | " in log
    assert "OK created sql table model main.users_by_name" in log
    transformers = case.root / ".strata" / "plugins" / "transformers"
    assert (transformers / "dbt-duckdb" / "current" / "bin" / "dbt").is_file()  # its own venv, shared by dbt-broken
    assert sorted(path.name for path in transformers.iterdir()) == ["dbt-duckdb"]


def test_a_failing_model_stops_the_run_naming_the_block(case: Case) -> None:
    """Bad SQL in a model: exit 1, one line naming `dbt-broken:run`; the pipeline before it keeps its run and state."""
    done = case.run("tap-jsonl", "target-duckdb", "dbt-broken:run", "tap-jsonl", "target-jsonl")
    assert done.code == 1
    assert done.err.count("\n") == 1
    assert done.err.startswith("strata: error: block `dbt-broken:run` failed with exit code 1: ")
    assert "see the run log" in done.err
    assert case.history()[-2:] == [(["tap-jsonl", "target-duckdb"], "success"), (["dbt-broken:run"], "failed")]
    assert not (case.out / "users.jsonl").exists()  # the pipeline after it never ran
    assert case.query("select count(*) > 0 from main.users") == [(True,)]
    state = case.strata("state", "get", f"dev:tap-jsonl-to-target-duckdb:{case.suffix}")
    assert state.code == 0
    assert "bookmarks" in state.out
    failed = case.strata("--json", "runs", "list", "--state-id", "dev:dbt-broken:run").json()[0]
    log = case.strata("runs", "show", failed["run_id"]).out
    assert 'Referenced column "nme" not found' in log


def test_a_dbt_project_that_does_not_parse_fails_in_one_clear_line(case: Case) -> None:
    done = case.run("dbt-unparsable:run")
    assert done.code == 1
    assert done.err.count("\n") == 1
    assert done.err.startswith("strata: error: block `dbt-unparsable:run` failed with exit code 2: ")
    assert "did not find expected node content" in done.err
    assert "\x1b" not in done.err
    assert case.history()[-1] == (["dbt-unparsable:run"], "failed")
