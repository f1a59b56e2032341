"""Meltano's `run`, `el` and `invoke` flags with real Singer plugins from PyPI (tap-jsonl, target-jsonl).

`el --select/--exclude`, `--catalog FILE`, `--refresh-catalog`, `--full-refresh`, `invoke --dump=…`
and `invoke --catalog/--state`, and bad input as one line that changes nothing. `el --state FILE`
is in ``tests/state/test_run_strategies.py`` (its tap resumes from a bookmark).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Result, run_strata, write_project

pytestmark = pytest.mark.network

TAP = "tap-jsonl==0.3.1"
TARGET = "target-jsonl==0.1.4"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project whose plugins are installed once for the whole module."""
    root = tmp_path_factory.mktemp("flags") / "proj"
    write_project(
        root,
        f"""
        default_environment: dev
        environments: [{{name: dev}}]
        plugins:
          extractors:
            - name: tap-jsonl
              pip_url: "{TAP}"
              settings: [{{name: path}}, {{name: api_token, kind: password}}]
              config: {{stream_name: users, primary_keys: [id], api_token: hunter2-secret}}
          loaders:
            - name: target-jsonl
              pip_url: "{TARGET}"
              settings: [{{name: destination_path}}]
              config: {{do_timestamp_file: false}}
        """,
    )
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


class Case:
    """One test's view of the shared project: its own data, output and state id."""

    def __init__(self, root: Path, work: Path, name: str) -> None:
        self.root = root
        self.work = work
        self.state_id = f"dev:{name}"
        self.out = work / "out"
        self.out.mkdir(parents=True)
        self.data = work / "users.jsonl"
        self.data.write_text("".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(1, 51)))
        self.env = {"TAP_JSONL_PATH": str(self.data), "TARGET_JSONL_DESTINATION_PATH": str(self.out)}

    def strata(self, *args: str) -> Result:
        return run_strata(*args, cwd=self.root, env=self.env)

    def el(self, *args: str) -> Result:
        return self.strata("--json", "el", "tap-jsonl", "target-jsonl", "--state-id", self.state_id, *args)

    def loaded(self) -> int:
        """Records the target wrote (and removes them, so the next run counts its own)."""
        path = self.out / "users.jsonl"
        if not path.exists():
            return 0
        count = len(path.read_text().splitlines())
        path.unlink()
        return count

    def catalog_cache(self) -> Path:
        return self.root / ".strata" / "catalogs" / "tap-jsonl.json"


@pytest.fixture
def case(installed: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    return Case(installed, tmp_path, request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40])


def one_line(done: Result, code: int = 2) -> str:
    assert done.code == code, done.err
    assert done.err.startswith("strata: error: "), done.err
    assert done.err.count("\n") == 1, done.err
    return done.err


def test_el_select_and_exclude_choose_streams_for_this_run_only(case: Case) -> None:
    assert case.el("--select", "users").code == 0
    assert case.loaded() == 50
    assert case.el("--exclude", "users", "--full-refresh").code == 0
    assert case.loaded() == 0
    assert case.el("-s", "other*", "--full-refresh").code == 0
    assert case.loaded() == 0
    assert case.el("-s", "us*", "-e", "nobody", "--full-refresh").code == 0
    assert case.loaded() == 50
    assert "select" not in (case.root / "strata.yml").read_text()  # nothing is kept in the project


def test_el_catalog_file_replaces_discovery(case: Case) -> None:
    dumped = case.strata("invoke", "--dump=catalog", "tap-jsonl")
    assert dumped.code == 0, dumped.err
    catalog = json.loads(dumped.out)
    assert [s["tap_stream_id"] for s in catalog["streams"]] == ["users"]
    for entry in catalog["streams"][0]["metadata"]:
        if entry["breadcrumb"] == []:
            entry["metadata"]["selected"] = False
    given = case.work / "catalog.json"
    given.write_text(json.dumps(catalog))
    assert case.el("--catalog", str(given)).code == 0
    assert case.loaded() == 0  # the stream is not selected in the given catalog
    assert case.el("--catalog", str(given), "--select", "users").code == 0
    assert case.loaded() == 0  # the select filter never selects a stream


def test_refresh_catalog_discovers_again(case: Case) -> None:
    assert case.el().code == 0
    assert case.loaded() == 50
    cache = case.catalog_cache()
    cached = json.loads(cache.read_text())
    cached["catalog"]["streams"] = []  # a stale cache under the same key: used as it is
    cache.write_text(json.dumps(cached))
    assert case.el("--full-refresh", "--state-strategy", "overwrite").code == 0
    assert case.loaded() == 50  # --full-refresh discovers again, as in Meltano
    cache.write_text(json.dumps(cached))
    assert case.el().code == 0
    assert case.loaded() == 0  # the stale cache gives the tap no stream
    assert json.loads(cache.read_text())["catalog"]["streams"] == []
    assert case.el("--refresh-catalog").code == 0
    assert json.loads(cache.read_text())["catalog"]["streams"] != []
    cache.write_text(json.dumps(cached))
    done = case.strata("--json", "run", "--refresh-catalog", "--state-id-suffix", "x", "tap-jsonl", "target-jsonl")
    assert done.code == 0, done.err
    assert json.loads(cache.read_text())["catalog"]["streams"] != []


def test_invoke_dumps_and_files(case: Case) -> None:
    config = case.strata("invoke", "--dump=config", "tap-jsonl")
    assert config.code == 0, config.err
    shown = json.loads(config.out)
    assert shown["stream_name"] == "users"
    assert shown["path"] == str(case.data)
    assert "hunter2-secret" not in config.out  # Meltano prints secrets; strata never does
    assert shown["api_token"] != "hunter2-secret"
    state_file = case.work / "state.json"
    state_file.write_text(json.dumps({"bookmarks": {"users": {"x": 1}}}))
    state = case.strata("invoke", "--dump=state", "--state", str(state_file), "tap-jsonl")
    assert json.loads(state.out) == {"bookmarks": {"users": {"x": 1}}}
    assert not (case.out / "users.jsonl").exists()  # a dump runs no tap
    catalog = case.work / "catalog.json"
    catalog.write_text(case.strata("invoke", "--dump=catalog", "tap-jsonl").out)
    done = case.strata("invoke", "--catalog", str(catalog), "--state", str(state_file), "tap-jsonl")
    assert done.code == 0, done.err
    assert '"type": "RECORD"' in done.out or '"type":"RECORD"' in done.out
    assert not list((case.root / ".strata" / "run").glob("*.json"))  # the files it got are gone


def test_el_dump_prints_what_the_pipeline_would_give_and_runs_nothing(case: Case) -> None:
    """Meltano's `el --dump catalog|state|extractor-config|loader-config`."""
    config = case.el("--dump", "extractor-config")
    assert config.code == 0, config.err
    assert json.loads(config.out)["path"] == str(case.data)
    assert "hunter2-secret" not in config.out
    assert json.loads(case.el("--dump", "loader-config").out)["destination_path"] == str(case.out)
    catalog = json.loads(case.el("--dump", "catalog", "--exclude", "users").out)
    (users,) = catalog["streams"]
    assert next(m for m in users["metadata"] if m["breadcrumb"] == [])["metadata"]["selected"] is False
    none = case.el("--dump", "state")
    assert "starts from no state" in one_line(none)
    assert case.el().code == 0
    assert case.loaded() == 50
    stored = json.loads(case.strata("state", "get", case.state_id).out)["singer_state"]
    assert json.loads(case.el("--dump", "state").out) == stored
    given = case.work / "given.json"
    given.write_text('{"bookmarks": {"users": {"x": 1}}}')
    assert json.loads(case.el("--dump", "state", "--state", str(given)).out) == {"bookmarks": {"users": {"x": 1}}}
    assert "starts from no state" in one_line(case.el("--dump", "state", "--full-refresh"))
    runs = json.loads(case.strata("--json", "runs", "list", "--state-id", case.state_id).out)
    assert len(runs) == 1  # the dumps ran nothing
    assert case.loaded() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["el", "tap-jsonl", "target-jsonl", "--catalog", "missing.json"], "--catalog missing.json cannot be read"),
        (["el", "tap-jsonl", "target-jsonl", "--state", "missing.json"], "--state missing.json cannot be read"),
        (["el", "tap-jsonl", "target-jsonl", "--catalog", "strata.yml"], "--catalog strata.yml is not JSON"),
        (["el", "tap-jsonl", "target-jsonl", "--state-strategy", "bogus"], "'bogus' is not one of"),
        (["run", "--state-strategy", "bogus", "tap-jsonl", "target-jsonl"], "'bogus' is not one of"),
        (["invoke", "--dump=nope", "tap-jsonl"], "'nope' is not one of"),
        (["el", "tap-jsonl", "target-jsonl", "--dump", "config"], "'config' is not one of"),
        (["invoke", "--catalog", "missing.json", "tap-jsonl"], "--catalog missing.json cannot be read"),
        (["invoke", "--dump=state", "tap-jsonl"], "no stored state"),
        (["invoke", "--state", "strata.yml", "target-jsonl"], "not JSON"),
        (["invoke", "--dump=catalog", "target-jsonl"], "`target-jsonl` is not one"),
    ],
)
def test_bad_flags_are_one_line_and_change_nothing(case: Case, args: list[str], message: str) -> None:
    def snapshot() -> list[str]:
        return sorted(str(p.relative_to(case.root)) for p in case.root.rglob("*") if "cache" not in p.parts)

    before = snapshot()
    assert message in one_line(case.strata(*args))
    assert snapshot() == before
    assert not (case.out / "users.jsonl").exists()
