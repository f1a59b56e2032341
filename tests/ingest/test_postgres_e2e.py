"""`strata run` end to end against a real PostgreSQL server, with real taps, targets and a mapper from PyPI.

One project per module (per pytest-xdist worker) is installed once; its source database on the
test run's PostgreSQL server holds three tables, each read by its own variant of tap-postgres
(`inherit_from`), so every test has its own state ids and catalog:

- ``items``: 20 rows, read INCREMENTAL on ``updated_at`` through the project's ``metadata:`` rule;
- ``big``: ``BIG`` rows, read INCREMENTAL on ``id`` into target-duckdb (an upserting target);
- ``people``: 10 rows, read through meltano-map-transform.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString, TypeVar

import duckdb
import psycopg
import pytest
from psycopg import sql

from tests.helpers import STRATA, Result, run_strata, snapshot, write_project
from tests.servers import PostgresServer

pytestmark = pytest.mark.network

TAP = "meltanolabs-tap-postgres==0.10.0"
TARGET = "target-jsonl==0.1.4"
UPSERT_TARGET = "target-duckdb==0.8.0"
MAPPER = "meltano-map-transform==0.12.3"

ITEMS = 20
PEOPLE = 10
BIG = 60_003
"""Large enough to kill a run halfway (tap-postgres reads some 10,000 rows a second). Not a
multiple of target-duckdb's batch: after a last full batch it confirms the state before the
tap's final one, so the completed bookmark would lag behind the last row."""
TAP_STATE_EVERY = 10_000
"""The Meltano SDK tap prints a STATE message every 10,000 records of a sorted stream."""

ADD_ITEMS = "INSERT INTO items SELECT i, 'n' || i, %s::timestamptz + i * interval '1 second' FROM generate_series(%s::int, %s::int) i"
"""Rows ``first..last`` of ``items``, row ``i`` updated at ``day`` plus ``i`` seconds: (day, first, last)."""

SCRIPT_TAP = """
import json, os

def emit(message):
    print(json.dumps(message), flush=True)

emit({"type": "SCHEMA", "stream": "events", "schema": {"properties": {"id": {"type": "integer"}}}, "key_properties": ["id"]})
if os.environ.get("SCRIPT_TAP_MODE") == "undeclared":
    emit({"type": "RECORD", "stream": "undeclared", "record": {"id": 4}})
else:
    for i in (1, 2, 3):
        emit({"type": "RECORD", "stream": "events", "record": {"id": i}})
    emit({"type": "STATE", "value": {"bookmarks": {"events": {"id": 3}}}})
"""

T = TypeVar("T")


@dataclass(frozen=True)
class Installed:
    """The module's project, and the source database its extractors read."""

    root: Path
    server: PostgresServer
    database: str

    def sql(self, statement: LiteralString, *params: object) -> None:
        with psycopg.connect(self.server.dsn(self.database), autocommit=True) as conn:
            conn.execute(statement, params or None)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Installed]:
    """A source database with the three tables, and a project whose plugins are installed once."""
    database = postgres_server.create_database()
    try:
        postgres_server.execute(sql.SQL("ALTER DATABASE {} SET timezone TO 'UTC'").format(sql.Identifier(database)))
        base = tmp_path_factory.mktemp("postgres-e2e")
        root = base / "proj"
        tap = base / "script-tap"
        tap.write_text(f"#!{sys.executable}\n{SCRIPT_TAP}")
        tap.chmod(0o755)
        (base / "script-catalog.json").write_text(json.dumps({"streams": []}))
        write_project(
            root,
            f"""
            default_environment: dev
            environments: [{{name: dev}}]
            plugins:
              extractors:
                - name: tap-postgres
                  pip_url: "{TAP}"
                  settings: [{{name: password, kind: password}}]
                  config: {{host: "{postgres_server.host}", port: {postgres_server.port}, user: {postgres_server.superuser}, database: {database}}}
                - name: tap-pg-items
                  inherit_from: tap-postgres
                  select: [public-items.*]
                  metadata: {{public-items: {{replication-method: INCREMENTAL, replication-key: updated_at}}}}
                - name: tap-pg-big
                  inherit_from: tap-postgres
                  select: [public-big.*]
                  metadata: {{public-big: {{replication-method: INCREMENTAL, replication-key: id}}}}
                - name: tap-pg-people
                  inherit_from: tap-postgres
                  select: [public-people.*]
                - {{name: tap-script, executable: {tap}, catalog: {base / "script-catalog.json"}}}
              mappers:
                - name: people-map
                  pip_url: "{MAPPER}"
                  executable: meltano-map-transform
                  config:
                    stream_maps:
                      # Meltano (and strata) drop null config values: the SDK's __NULL__ removes a property
                      public-people: {{email: __NULL__, domain: "email.split('@')[-1]", __filter__: "id != 3"}}
                  mappings:  # Meltano's named configurations: each name is a block of its own
                    - name: shout-names
                      config:
                        stream_maps: {{public-people: {{name: "name.upper()"}}}}
              loaders:
                - name: target-jsonl
                  pip_url: "{TARGET}"
                  settings: [{{name: destination_path}}]
                  config: {{do_timestamp_file: false}}
                - name: target-duckdb
                  pip_url: "{UPSERT_TARGET}"
                  settings: [{{name: filepath}}]
                  config: {{default_target_schema: main, batch_size_rows: 5000}}
            """,
        )
        (root / ".env").write_text(f"TAP_POSTGRES_PASSWORD={postgres_server.password}\n")
        installed = Installed(root, postgres_server, database)
        installed.sql(
            "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL)"
        )
        installed.sql(ADD_ITEMS, "2024-01-01 00:00:00+00", 1, ITEMS)
        installed.sql("CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL)")
        installed.sql("INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, %s::int) i", BIG)
        installed.sql("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL)")
        installed.sql(
            "INSERT INTO people SELECT i, 'p' || i, 'p' || i || '@ex' || mod(i, 3) || '.org' FROM generate_series(1, %s::int) i",
            PEOPLE,
        )
        done = run_strata("install", cwd=root)
        assert done.code == 0, done.err
        yield installed
    finally:
        postgres_server.drop_database(database)


class Case:
    """One test's view of the shared project: its own output directory and state id suffix."""

    def __init__(self, installed: Installed, work: Path, name: str) -> None:
        self.source = installed
        self.root = installed.root
        self.work = work
        self.suffix = name
        self.outputs = 0

    def strata(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_strata(*args, cwd=self.root, env=env)

    def run(self, *blocks: str, env: dict[str, str] | None = None) -> Result:
        return self.strata("--json", "run", "--state-id-suffix", self.suffix, *blocks, env=env)

    def load(self, *blocks: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run into target-jsonl (a fresh directory each time); the run's result and the records it wrote."""
        self.outputs += 1
        out = self.work / f"out-{self.outputs}"
        out.mkdir()
        done = self.run(*blocks, env={"TARGET_JSONL_DESTINATION_PATH": str(out), **(env or {})})
        assert done.code == 0, done.err
        written = [json.loads(line) for path in sorted(out.glob("*.jsonl")) for line in path.read_text().splitlines()]
        return done.json()[0], written

    def state_id(self, extractor: str, loader: str) -> str:
        return f"dev:{extractor}-to-{loader}:{self.suffix}"

    def state(self, state_id: str) -> dict[str, Any] | None:
        """``state get --json``: completed, partial and effective state apart; ``None`` when none is stored."""
        done = self.strata("state", "get", "--json", state_id)
        if done.code != 0:
            assert "no state is stored" in done.err, done.err
            return None
        found: dict[str, Any] = done.json()
        return found

    def runs(self, state_id: str) -> list[dict[str, Any]]:
        """The run history of ``state_id``, newest first."""
        done = self.strata("--json", "runs", "list", "--state-id", state_id)
        assert done.code == 0, done.err
        found: list[dict[str, Any]] = done.json()
        return found


@pytest.fixture
def case(installed: Installed, tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    name = request.node.name
    # a readable prefix of the test's name, and a digest that keeps parametrised cases apart
    prefix = re.sub(r"[^A-Za-z0-9]+", "-", name[:30]).strip("-")
    return Case(installed, tmp_path, f"{prefix}-{hashlib.sha256(name.encode()).hexdigest()[:8]}")


def bookmark(state: dict[str, Any] | None, stream: str) -> Any:
    """The ``replication_key_value`` of ``stream`` in a stored ``{"singer_state": …}``, else ``None``."""
    return ((((state or {}).get("singer_state") or {}).get("bookmarks") or {}).get(stream) or {}).get(
        "replication_key_value"
    )


def poll(check: Callable[[], T | None], what: str, timeout: float = 120.0) -> T:
    """``check()`` again every 50 ms until it gives something other than ``None``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value is not None:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def processes_in(directory: Path) -> set[int]:
    """Pids of the live processes whose working directory is ``directory`` (plugins run in the project root)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cwd").readlink() == directory:
                found.add(int(entry.name))
        except OSError:  # gone, or a zombie
            continue
    return found


# -- 1. incremental replication through the project's metadata rule ------------------------------


def test_incremental_replication_on_updated_at_reads_only_changed_rows(case: Case) -> None:
    state_id = case.state_id("tap-pg-items", "target-jsonl")

    result, written = case.load("tap-pg-items", "target-jsonl")
    assert result["records"] == {"public-items": ITEMS}
    assert [r["id"] for r in written] == list(range(1, ITEMS + 1))
    stored = case.state(state_id)
    assert stored is not None
    assert stored["partial"] is None
    assert stored["completed"]["singer_state"]["bookmarks"]["public-items"]["replication_key"] == "updated_at"
    assert bookmark(stored["completed"], "public-items") == "2024-01-01T00:00:20.000000+00:00"

    case.source.sql(
        "UPDATE items SET name = name || '-changed', updated_at = %s::timestamptz + id * interval '1 second'"
        " WHERE id IN (3, 7)",
        "2024-01-02 00:00:00+00",
    )
    case.source.sql(ADD_ITEMS, "2024-01-03 00:00:00+00", 21, 23)
    result, written = case.load("tap-pg-items", "target-jsonl")
    # rows at or after the bookmark, oldest first: tap-postgres filters with `>=`, so the bookmark
    # row itself (id 20) is read again, then the two updated rows and the three new ones
    assert [r["id"] for r in written] == [20, 3, 7, 21, 22, 23]
    assert [r["name"] for r in written[1:3]] == ["n3-changed", "n7-changed"]
    assert result["records"] == {"public-items": 6}
    assert bookmark((case.state(state_id) or {}).get("completed"), "public-items") == "2024-01-03T00:00:23.000000+00:00"

    result, written = case.load("tap-pg-items", "target-jsonl")  # nothing changed: only the bookmark row
    assert [r["id"] for r in written] == [23]
    assert result["records"] == {"public-items": 1}

    result, written = case.load("--full-refresh", "tap-pg-items", "target-jsonl")
    assert sorted(r["id"] for r in written) == list(range(1, 24))
    assert len(written) == 23
    assert result["records"] == {"public-items": 23}
    stored = case.state(state_id)
    assert stored is not None
    assert stored["partial"] is None
    assert bookmark(stored["completed"], "public-items") == "2024-01-03T00:00:23.000000+00:00"
    assert [r["status"] for r in case.runs(state_id)] == ["success"] * 4


# -- 2. SIGKILL halfway, then a rerun that resumes --------------------------------------------------


def test_a_killed_run_is_failed_and_the_rerun_resumes_without_loss(case: Case) -> None:
    state_id = case.state_id("tap-pg-big", "target-duckdb")
    state_file = case.root / ".strata" / "state" / state_id / "state.json"  # written by the first stored state
    database = case.work / "big.duckdb"
    env = {"TARGET_DUCKDB_FILEPATH": str(database)}
    output = case.work / "killed-run.out"
    with output.open("w") as sink:
        killed = subprocess.Popen(
            [*STRATA, "run", "--state-id-suffix", case.suffix, "tap-pg-big", "target-duckdb"],
            cwd=case.root,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        def state_stored() -> bool | None:
            if killed.poll() is not None:
                pytest.fail(f"the run ended (exit {killed.returncode}) before it was killed: {output.read_text()}")
            return state_file.exists() or None

        poll(state_stored, "the first state the target confirmed")
        plugins = processes_in(case.root.resolve()) - {killed.pid}
        assert plugins, "no plugin process runs in the project root"
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL  # killed, not ended: the run was halfway
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    # its tap and target die with it (PR_SET_PDEATHSIG)
    poll(lambda: not (processes_in(case.root.resolve()) & plugins) or None, "the plugins to die", timeout=15)
    lease = state_file.parent / "strata.lock"
    assert lease.exists()  # the dead run's lock is left behind

    runs = case.runs(state_id)
    assert [r["status"] for r in runs] == ["failed"]
    assert runs[0]["error"].startswith("process died")
    # the run log holds what the plugins said up to the kill: the tap's start of the sync (before its
    # first row) and the target's first batches (before the state it confirmed after them)
    log = Path(runs[0]["log_path"]).read_text()
    assert "tap-pg-big | " in log
    assert "Beginning sync of 'public-big'" in log
    assert "Loading 5000 rows" in log
    stored = case.state(state_id)
    assert stored is not None
    assert stored["completed"] is None
    resume_from = bookmark(stored["partial"], "public-big")
    assert 0 < resume_from < BIG
    assert resume_from % TAP_STATE_EVERY == 0  # a state the tap printed and the target confirmed

    done = case.run("tap-pg-big", "target-duckdb", env=env)  # the dead run's lock does not block it
    assert done.code == 0, done.err
    # it starts from the stored bookmark, inclusive (`>=`)
    assert done.json()[0]["records"] == {"public-big": BIG - resume_from + 1}
    with duckdb.connect(str(database), read_only=True) as db:
        counts = db.execute("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM main.big").fetchone()
    assert counts == (BIG, BIG, 1, BIG)
    stored = case.state(state_id)
    assert stored is not None
    assert stored["partial"] is None
    assert bookmark(stored["completed"], "public-big") == BIG
    assert [r["status"] for r in case.runs(state_id)] == ["success", "failed"]
    assert not lease.exists()


# -- 3. bad input -----------------------------------------------------------------------------------


def test_a_record_for_an_undeclared_stream_fails_the_run_and_keeps_the_state(case: Case) -> None:
    state_id = case.state_id("tap-script", "target-jsonl")
    _, written = case.load("tap-script", "target-jsonl")
    assert [r["id"] for r in written] == [1, 2, 3]
    before = case.state(state_id)
    assert before is not None
    assert before["completed"] == {"singer_state": {"bookmarks": {"events": {"id": 3}}}}

    out = case.work / "out-bad"
    out.mkdir()
    done = case.run(
        "tap-script",
        "target-jsonl",
        env={"SCRIPT_TAP_MODE": "undeclared", "TARGET_JSONL_DESTINATION_PATH": str(out)},
    )
    assert done.code == 1
    assert done.err.count("\n") == 1, done.err
    assert done.err.startswith("strata: error: loader `target-jsonl` failed with exit code 1: ")
    assert "A record for stream undeclared" in done.err  # target-jsonl 0.1.4 prints no space after the name
    assert "was encountered before a corresponding schema" in done.err
    assert "Traceback" not in done.err
    assert case.state(state_id) == before
    runs = case.runs(state_id)
    assert [r["status"] for r in runs] == ["failed", "success"]
    assert "`target-jsonl` failed" in runs[0]["error"]


@pytest.mark.parametrize(
    "garbage",
    [b'{"completed": {"singer_state": {"bookm', b"[1, 2, 3]", b'{"completed": "yesterday"}'],
    ids=["truncated", "a-list", "not-an-object"],
)
def test_a_malformed_stored_state_is_one_clear_error_and_changes_nothing(case: Case, garbage: bytes) -> None:
    state_id = case.state_id("tap-script", "target-jsonl")
    case.load("tap-script", "target-jsonl")
    state_file = case.root / ".strata" / "state" / state_id / "state.json"
    assert state_file.is_file()
    state_file.write_bytes(garbage)
    out = case.work / "out-bad"
    out.mkdir()
    before = snapshot(case.root)

    done = case.run("tap-script", "target-jsonl", env={"TARGET_JSONL_DESTINATION_PATH": str(out)})
    assert done.code == 1  # a StateBackendError
    assert done.err.count("\n") == 1, done.err
    assert f"{state_file} is not a state document" in done.err
    assert f"clear the state with `strata state clear '{state_id}'`" in done.err
    assert "Traceback" not in done.err
    assert snapshot(case.root) == before  # the state file, run history, logs: all as they were
    assert not list(out.iterdir())
    assert [r["status"] for r in case.runs(state_id)] == ["success"]


# -- 4. a real mapper between tap and target ----------------------------------------------------------


def test_a_mapper_drops_adds_and_filters(case: Case) -> None:
    result, written = case.load("tap-pg-people", "people-map", "target-jsonl")
    assert result["records"] == {"public-people": PEOPLE}  # counted at the tap, before the mapper
    assert [r["id"] for r in written] == [i for i in range(1, PEOPLE + 1) if i != 3]
    assert all(set(r) == {"id", "name", "domain"} for r in written)
    assert [r["domain"] for r in written] == [f"ex{i % 3}.org" for i in range(1, PEOPLE + 1) if i != 3]
    runs = case.runs(case.state_id("tap-pg-people", "target-jsonl"))
    assert [(r["status"], r["blocks"]) for r in runs] == [("success", ["tap-pg-people", "people-map", "target-jsonl"])]


def test_a_mapping_name_is_a_block_with_its_own_config(case: Case) -> None:
    result, written = case.load("tap-pg-people", "shout-names", "target-jsonl")
    assert result["records"] == {"public-people": PEOPLE}
    assert [r["id"] for r in written] == list(range(1, PEOPLE + 1))  # the mapper's own filter is not used
    assert [(r["name"], r["email"]) for r in written] == [
        (f"P{i}", f"p{i}@ex{i % 3}.org") for i in range(1, PEOPLE + 1)
    ]
    runs = case.runs(case.state_id("tap-pg-people", "target-jsonl"))
    assert [(r["status"], r["blocks"]) for r in runs] == [("success", ["tap-pg-people", "shout-names", "target-jsonl"])]
