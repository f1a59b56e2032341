"""Extras set with `strata config set` change what a real tap extracts (issue 12, item 7).

tap-jsonl (Singer SDK) reads the catalog strata hands it: its selection, its metadata
(replication key, a deselected property) and its schema (the SCHEMA message, hence the column
type target-duckdb creates). Each test adds its own extractor inheriting the installed one, so
the venvs are built once for the module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Result, run_strata, write_project

pytestmark = pytest.mark.network

TAP = "tap-jsonl==0.3.1"
TARGET = "target-jsonl==0.1.4"
DUCKDB_TARGET = "target-duckdb==0.8.0"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extras") / "proj"
    write_project(
        root,
        f"""
        plugins:
          extractors:
            - name: tap-jsonl
              pip_url: "{TAP}"
              settings: [{{name: path}}]
              config: {{stream_name: users, primary_keys: [id]}}
          loaders:
            - name: target-jsonl
              pip_url: "{TARGET}"
              settings: [{{name: destination_path}}]
              config: {{do_timestamp_file: false}}
            - name: target-duckdb
              pip_url: "{DUCKDB_TARGET}"
              settings: [{{name: filepath}}]
              config: {{default_target_schema: main}}
        """,
    )
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


class Case:
    """One test's extractor (inheriting tap-jsonl), data and output directory."""

    def __init__(self, root: Path, work: Path, name: str) -> None:
        self.root, self.work, self.tap = root, work, name
        (work / "out").mkdir(parents=True)
        data = work / "users.jsonl"
        data.write_text("".join(json.dumps({"id": i, "name": f"n{i}", "password": "x"}) + "\n" for i in range(1, 6)))
        self.env = {
            "TAP_JSONL_PATH": str(data),
            "TARGET_JSONL_DESTINATION_PATH": str(work / "out"),
            "TARGET_DUCKDB_FILEPATH": str(work / "out" / "db.duckdb"),
        }
        added = self.strata("add", "extractor", name, "--inherit-from", "tap-jsonl", "--no-install")
        assert added.code == 0, added.err

    def strata(self, *args: str) -> Result:
        return run_strata(*args, cwd=self.root, env=self.env)

    def set(self, *args: str) -> None:
        done = self.strata("config", "set", self.tap, *args)
        assert done.code == 0, done.err

    def run(self, loader: str, suffix: str) -> Result:
        done = self.strata("--json", "run", "--state-id-suffix", suffix, self.tap, loader)
        assert done.code == 0, done.err
        return done

    def records(self) -> list[dict[str, object]]:
        path = self.work / "out" / "users.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.unlink()
        return rows


@pytest.fixture
def case(installed: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    return Case(installed, tmp_path, "tap-" + request.node.name.removeprefix("test_").replace("_", "-")[:30])


def test_select_set_with_config_set_changes_what_is_extracted(case: Case) -> None:
    case.run("target-jsonl", "before")
    assert {"id", "name", "password"} <= set(case.records()[0])
    case.set("_select", '["users.id", "users.name"]')
    case.run("target-jsonl", "after")
    rows = case.records()
    assert len(rows) == 5
    assert all("password" not in row and {"id", "name"} <= set(row) for row in rows)


def test_metadata_set_with_config_set_reaches_the_tap(case: Case) -> None:
    """A property deselected in `_metadata` is not extracted; `replication-method` decides the tap's bookmark."""

    def bookmark(suffix: str) -> dict[str, object]:
        state_id = case.run("target-jsonl", suffix).json()[0]["state_id"]
        state = case.strata("state", "get", state_id)
        assert state.code == 0, state.err
        return json.loads(state.out)["singer_state"]["bookmarks"]["users"]  # type: ignore[no-any-return]

    assert bookmark("before")["replication_key"] == "_sdc_last_modified"
    assert all("name" in row for row in case.records())
    case.set("_metadata", "users", "name", "selected", "false")
    case.set("_metadata", "users", "replication-method", "FULL_TABLE")
    assert "replication_key" not in bookmark("after")
    rows = case.records()
    assert len(rows) == 5
    assert all("name" not in row and "id" in row for row in rows)


def test_schema_set_with_config_set_overrides_a_property_type(case: Case) -> None:
    import duckdb

    def id_type(suffix: str) -> str:
        case.run("target-duckdb", suffix)
        with duckdb.connect(case.env["TARGET_DUCKDB_FILEPATH"]) as db:
            found = db.execute(
                "select data_type from information_schema.columns where table_name = 'users' and column_name = 'id'"
            ).fetchone()
            db.execute("drop table users")
        assert found is not None
        return str(found[0])

    assert id_type("before") == "HUGEINT"
    case.set("_schema", '{"users": {"id": {"type": ["string", "null"]}}}')
    assert id_type("after") == "VARCHAR"


def test_use_cached_catalog_false_discovers_again_on_every_run(case: Case) -> None:
    """A property the data gained after discovery reaches the target only when the catalog is not reused."""
    case.run("target-jsonl", "first")
    case.records()
    data = Path(case.env["TAP_JSONL_PATH"])
    data.write_text(data.read_text() + json.dumps({"id": 6, "name": "n6", "password": "x", "email": "e6"}) + "\n")
    case.run("target-jsonl", "cached")
    assert all("email" not in row for row in case.records())
    case.set("_use_cached_catalog", "false")
    case.run("target-jsonl", "fresh")
    assert [row.get("email") for row in case.records()][-1] == "e6"
