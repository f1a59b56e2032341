"""`strata run` / `strata el` end to end with real Singer plugins from PyPI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import STRATA, Result, read_until_closed, run_strata, write_project

pytestmark = pytest.mark.network

TAP = "tap-jsonl==0.3.1"
TARGET = "target-jsonl==0.1.4"
UPSERT_TARGET = "target-duckdb==0.8.0"


GROW = """\
import json, sys
with open(sys.argv[1], "a") as handle:
    for i in range(10):
        handle.write(json.dumps({"id": 1000 + i, "name": sys.argv[2]}) + "\\n")
print(f"grew {sys.argv[1]} by 10 {sys.argv[2]} with {sys.prefix}")
"""
"""The `grow` command of tap-jsonl: run with its venv's python, its args expanded from its config."""


def rows(path: Path, count: int, start: int = 0, *, modulo: int | None = None) -> None:
    with path.open("a") as handle:
        for i in range(start, start + count):
            # ids from 1: target-duckdb 0.8.0 silently drops a row whose key is 0
            handle.write(json.dumps({"id": (i % modulo if modulo else i) + 1, "name": f"n{i}"}) + "\n")


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project whose plugins are installed once for the whole module."""
    root = tmp_path_factory.mktemp("pipeline") / "proj"
    write_project(
        root,
        f"""
        default_environment: dev
        environments: [{{name: dev}}]
        jobs: [{{name: nightly, tasks: ['tap-jsonl target-jsonl']}}]
        plugins:
          extractors:
            - name: tap-jsonl
              pip_url: "{TAP}"
              settings: [{{name: path}}]
              config: {{stream_name: users, primary_keys: [id]}}
              commands:
                grow: {{executable: python, args: "grow.py $TAP_JSONL_PATH ${{TAP_JSONL_STREAM_NAME}}"}}
                fail: "--no-such-option"
          loaders:
            - name: target-jsonl
              pip_url: "{TARGET}"
              settings: [{{name: destination_path}}]
              config: {{do_timestamp_file: false}}
            - name: target-duckdb
              pip_url: "{UPSERT_TARGET}"
              settings: [{{name: filepath}}]
              config: {{default_target_schema: main}}
        """,
    )
    (root / "grow.py").write_text(GROW)
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


class Case:
    """One test's view of the shared project: its own data, output and state id suffix."""

    def __init__(self, root: Path, work: Path, name: str) -> None:
        self.root = root
        self.work = work
        self.suffix = name
        (work / "out").mkdir(parents=True)
        self.data = work / "users.jsonl"
        rows(self.data, 50)
        self.env = {
            "TAP_JSONL_PATH": str(self.data),
            "TARGET_JSONL_DESTINATION_PATH": str(work / "out"),
            "TARGET_DUCKDB_FILEPATH": str(work / "out" / "db.duckdb"),
        }

    def strata(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_strata(*args, cwd=self.root, env={**self.env, **(env or {})})

    def run(self, *blocks: str, env: dict[str, str] | None = None) -> Result:
        return self.strata("--json", "run", "--state-id-suffix", self.suffix, *blocks, env=env)

    def state_id(self, extractor: str, loader: str) -> str:
        return f"dev:{extractor}-to-{loader}:{self.suffix}"

    def add_extractor(self, name: str, executable: Path) -> None:
        path = self.root / "strata.yml"
        catalog = self.work / "catalog.json"
        catalog.write_text(json.dumps({"streams": []}))
        path.write_text(
            path.read_text().replace(
                "  extractors:\n",
                f"  extractors:\n    - {{name: {name}, executable: {executable}, catalog: {catalog}}}\n",
            )
        )


@pytest.fixture
def case(installed: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    return Case(installed, tmp_path, request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40])


def test_run_loads_everything_and_records_state_and_history(case: Case) -> None:
    done = case.run("tap-jsonl", "target-jsonl")
    assert done.code == 0, done.err
    result = done.json()[0]
    state_id = case.state_id("tap-jsonl", "target-jsonl")
    assert result["state_id"] == state_id
    assert result["records"] == {"users": 50}
    assert result["states"] >= 1
    assert len((case.work / "out" / "users.jsonl").read_text().splitlines()) == 50
    state = case.strata("state", "get", state_id)
    assert state.code == 0, state.err
    assert "bookmarks" in state.out
    runs = case.strata("--json", "runs", "list", "--state-id", state_id).json()
    assert [r["status"] for r in runs] == ["success"]
    log = Path(result["log"]).read_text()
    assert "tap-jsonl | " in log
    assert not list((case.root / ".strata" / "run").glob("*.json"))  # config, catalog and state files are gone


def test_job_names_and_dry_run(case: Case) -> None:
    dry = case.strata("run", "--dry-run", "--state-id-suffix", case.suffix, "nightly")
    assert dry.code == 0, dry.err
    assert f"would run: state id {case.state_id('tap-jsonl', 'target-jsonl')}" in dry.out
    assert not (case.work / "out" / "users.jsonl").exists()
    assert case.run("nightly").code == 0
    assert (case.work / "out" / "users.jsonl").exists()


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (["tap-jsonl"], "has no loader after it"),
        (["target-jsonl"], "has no extractor before it"),
        (["tap-jsonl", "nope", "target-jsonl"], "block `nope` is not a plugin, a mapping or a job"),
        (["tap-jsonl", "tap-jsonl", "target-jsonl"], "followed by another extractor"),
    ],
)
def test_bad_blocks_are_one_clear_error(case: Case, blocks: list[str], message: str) -> None:
    done = case.run(*blocks)
    assert done.code == 2
    assert message in done.err
    assert done.err.count("\n") == 1


def test_a_failing_target_is_named_and_state_is_unchanged(case: Case) -> None:
    state_id = case.state_id("tap-jsonl", "target-jsonl")
    assert case.run("tap-jsonl", "target-jsonl").code == 0
    before = case.strata("state", "get", state_id).out
    done = case.run("tap-jsonl", "target-jsonl", env={"TARGET_JSONL_DESTINATION_PATH": str(case.data)})  # a file
    assert done.code == 1
    assert "loader `target-jsonl` failed with exit code" in done.err
    assert case.strata("state", "get", state_id).out == before
    runs = case.strata("--json", "runs", "list", "--state-id", state_id).json()
    assert [r["status"] for r in runs] == ["failed", "success"]


def test_a_tap_printing_garbage_fails_the_run(case: Case) -> None:
    case.add_extractor("tap-bad", script(case.work / "bad-tap", "print('this is not json', flush=True)\n"))
    done = case.run("tap-bad", "target-jsonl")
    assert done.code == 1
    assert "`target-jsonl` failed" in done.err


def test_a_second_run_on_the_same_state_id_is_refused_unless_forced(case: Case) -> None:
    schema = {
        "type": "SCHEMA",
        "stream": "s",
        "schema": {"properties": {"id": {"type": "integer"}}},
        "key_properties": ["id"],
    }
    slow = script(
        case.work / "slow-tap", f"import json, time\nprint(json.dumps({schema!r}), flush=True)\ntime.sleep(30)\n"
    )
    case.add_extractor("tap-slow", slow)
    first = subprocess.Popen(
        [*STRATA, "run", "--state-id-suffix", case.suffix, "tap-slow", "target-jsonl"],
        cwd=case.root,
        env={**os.environ, **case.env},
        stderr=subprocess.DEVNULL,
    )
    try:
        state_id = case.state_id("tap-slow", "target-jsonl")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the first run is under way (it holds the lock then)
            listed = case.strata("--json", "runs", "list", "--state-id", state_id)
            if listed.code == 0 and any(r["status"] == "running" for r in listed.json()):
                break
            time.sleep(0.1)
        second = case.run("tap-slow", "target-jsonl")
        assert second.code == 1
        assert f"state `{state_id}` is locked by" in second.err
        assert "pass --force" in second.err
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)


def test_a_stored_singer_state_that_is_not_an_object_is_refused_not_dropped(case: Case) -> None:
    state_id = case.state_id("tap-jsonl", "target-jsonl")
    assert case.strata("state", "set", "--force", state_id, '{"singer_state": 5}').code == 0
    before = case.strata("--json", "state", "get", state_id).out
    done = case.run("tap-jsonl", "target-jsonl")
    assert done.code == 2
    assert f"the stored state of `{state_id}` has a `singer_state` that is not an object" in done.err
    assert done.err.count("\n") == 1
    assert case.strata("--json", "state", "get", state_id).out == before
    assert not (case.work / "out" / "users.jsonl").exists()


def test_a_terminal_sees_records_per_stream_and_the_rate_while_the_run_goes(case: Case) -> None:
    import pty

    schema = {
        "type": "SCHEMA",
        "stream": "s",
        "schema": {"properties": {"id": {"type": "integer"}}},
        "key_properties": ["id"],
    }
    body = (
        "import json, sys, time\n"
        f"print(json.dumps({schema!r}), flush=True)\n"
        "for batch in range(6):\n"
        "    for i in range(10):\n"
        "        print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'id': batch * 10 + i + 1}}), flush=True)\n"
        "    metric = {'type': 'counter', 'metric': 'record_count', 'value': 10, 'tags': {'stream': 's'}}\n"
        "    print('METRIC: ' + json.dumps(metric), file=sys.stderr, flush=True)\n"
        "    time.sleep(0.5)\n"
    )
    case.add_extractor("tap-ticking", script(case.work / "ticking-tap", body))
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*STRATA, "run", "--state-id-suffix", case.suffix, "tap-ticking", "target-jsonl"],
        cwd=case.root,
        env={**os.environ, **case.env},
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    seen = read_until_closed(leader)
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, seen.decode(errors="replace")
    lines = [part for part in seen.decode(errors="replace").split("\r") if "records (" in part]
    assert lines, seen
    assert any("/s)" in line and "s=" in line for line in lines)
    assert "60 records (s=60)" in out.decode()


def test_a_command_block_runs_between_two_pipelines_in_the_plugin_environment(case: Case) -> None:
    """`tap-jsonl:grow` adds rows between two loads: three runs in the history, in order."""
    done = case.run("tap-jsonl", "target-jsonl", "tap-jsonl:grow", "tap-jsonl", "target-jsonl")
    assert done.code == 0, done.err
    first, grow, second = done.json()
    assert first["records"] == {"users": 50}
    assert grow["state_id"] == "dev:tap-jsonl:grow"
    assert second["records"] == {"users": 60}
    lines = [json.loads(line) for line in (case.work / "out" / "users.jsonl").read_text().splitlines()]
    assert [row["name"] for row in lines[-10:]] == ["users"] * 10  # ${TAP_JSONL_STREAM_NAME} from its config
    log = Path(grow["log"]).read_text()
    venv = case.root / ".strata" / "plugins" / "extractors" / "tap-jsonl"
    assert f"tap-jsonl:grow | grew {case.data} by 10 users with {venv}" in log  # the tap's own python
    runs = case.strata("--json", "runs", "list", "--limit", "1000").json()
    mine = [r for r in runs if r["run_id"] in {first["run_id"], grow["run_id"], second["run_id"]}]
    assert [(r["blocks"], r["status"]) for r in reversed(mine)] == [
        (["tap-jsonl", "target-jsonl"], "success"),
        (["tap-jsonl:grow"], "success"),
        (["tap-jsonl", "target-jsonl"], "success"),
    ]


def test_a_failing_command_block_stops_the_run_before_the_next_pipeline(case: Case) -> None:
    done = case.run("tap-jsonl", "target-jsonl", "tap-jsonl:fail", "tap-jsonl", "target-jsonl")
    assert done.code == 1
    assert done.err.startswith("strata: error: block `tap-jsonl:fail` failed with exit code 2: "), done.err
    assert "no-such-option" in done.err
    assert done.err.count("\n") == 1
    runs = case.strata("--json", "runs", "list", "--state-id", "dev:tap-jsonl:fail").json()
    assert [r["status"] for r in runs] == ["failed"]
    assert len((case.work / "out" / "users.jsonl").read_text().splitlines()) == 50  # the second load never ran
