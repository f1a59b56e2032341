"""The run path's sqlite3 writer (`history/lite.py`): same rows as RunHistory, no SQLAlchemy."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strata.errors import SystemDatabaseError
from strata.history import RunHistory, RunStatus
from strata.history.lite import SCHEMA_VERSION, LiteHistory, open_writer
from strata.history.migrations import MIGRATIONS
from strata.project.project import Project
from tests.helpers import run_strata
from tests.history.conftest import killed_run


def test_it_knows_the_last_migration() -> None:
    assert MIGRATIONS[-1].version == SCHEMA_VERSION


def test_a_new_database_is_made_by_run_history_then_written_without_sqlalchemy(root: Path) -> None:
    project = Project(root)
    assert LiteHistory.open(project) is None  # nothing there yet
    first = open_writer(project)
    assert isinstance(first, RunHistory)  # creates and migrates
    first.close()
    with open_writer(project) as lite:
        assert isinstance(lite, LiteHistory)
        run = lite.start("dev:tap-x-to-target-y", "dev", ["tap-x", "target-y"], ".strata/logs/a.log")
        run.add_records({"users": 3})
        run.heartbeat()
        with RunHistory.open(project) as history:
            seen = history.get(run.run_id)
            assert seen.status is RunStatus.RUNNING
            assert seen.records == {"users": 3}
            assert seen.pid == os.getpid()
            assert seen.started_at == run.started_at  # microseconds and time zone survive
        run.add_records({"users": 2, "orders": 1})
        run.finish("failed", "cannot reach postgresql://app:s3cret@db/x")
    with RunHistory.open(project) as history:
        done = history.get(run.run_id)
    assert done.status is RunStatus.FAILED
    assert done.records == {"users": 5, "orders": 1}
    assert done.blocks == ["tap-x", "target-y"]
    assert done.environment == "dev"
    assert done.log_path == ".strata/logs/a.log"
    assert done.error == "cannot reach postgresql://***@db/x"
    assert done.ended_at == run.ended_at
    assert done.strata_version == run.strata_version


def test_rows_match_what_sqlalchemy_writes_byte_for_byte(root: Path) -> None:
    project = Project(root)
    with RunHistory.open(project) as history:
        by_sqlalchemy = history.start("s", "dev", ["a"], "l.log")
        by_sqlalchemy.finish("success")
    with open_writer(project) as lite:
        assert isinstance(lite, LiteHistory)
        by_sqlite3 = lite.start("s", "dev", ["a"], "l.log")
        by_sqlite3.finish("success")
    with sqlite3.connect(root / ".strata" / "system.db") as con:
        rows = {
            row[0]: row[1:]
            for row in con.execute(
                "SELECT run_id, typeof(started_at), length(started_at), blocks, records, builds, typeof(pid), status "
                "FROM strata_runs"
            )
        }
    assert rows[by_sqlalchemy.run_id] == rows[by_sqlite3.run_id]


def test_a_dead_run_is_failed_when_the_next_one_starts(root: Path) -> None:
    project = Project(root)
    RunHistory.open(project).close()
    with killed_run(root, "open_writer") as (dead_id, proc):
        pass
    with open_writer(project) as lite:
        assert isinstance(lite, LiteHistory)
        lite.start("s", None, []).finish("success")
        stale = lite.start("t", None, [])
        lite.update(stale.run_id, heartbeat_at=datetime.now(UTC) - timedelta(minutes=6))
        lite.start("u", None, []).finish("success")
    with RunHistory.open(project) as history:
        dead = history.get(dead_id)
        assert dead.status is RunStatus.FAILED
        assert dead.error == f"process died: pid {proc.pid} on {dead.host} is gone"
        assert history.get(stale.run_id).status is RunStatus.FAILED
        assert history.get(stale.run_id).error.startswith("process died: no heartbeat since")  # type: ignore[union-attr]


def test_a_database_of_another_schema_version_goes_through_run_history(root: Path) -> None:
    project = Project(root)
    RunHistory.open(project).close()
    with sqlite3.connect(root / ".strata" / "system.db") as con:
        con.execute("INSERT INTO strata_schema_version VALUES (99, 'from the future', '2030-01-01 00:00:00.000000')")
    assert LiteHistory.open(project) is None
    with pytest.raises(SystemDatabaseError, match="schema version 99, newer than this strata knows"):
        open_writer(project)


def test_a_run_with_nothing_new_loads_no_sqlalchemy(root: Path) -> None:
    (root / "tap").write_text('#!/bin/sh\necho \'{"type": "STATE", "value": {"n": 1}}\'\n')
    (root / "target").write_text("#!/bin/sh\ncat\n")
    for name in ("tap", "target"):
        (root / name).chmod(0o755)
    (root / "catalog.json").write_text('{"streams": []}')
    (root / "strata.yml").write_text(
        "plugins:\n"
        f"  extractors: [{{name: tap-x, executable: {root}/tap, catalog: {root}/catalog.json}}]\n"
        f"  loaders: [{{name: target-y, executable: {root}/target}}]\n"
    )
    assert run_strata("run", "tap-x", "target-y", cwd=root).code == 0  # the first run creates the database
    code = (
        "import sys\nfrom strata.cli import main\n"
        "try:\n    main(['run', 'tap-x', 'target-y'])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "print('loaded:', *sorted(m for m in sys.modules if m.startswith('sqlalchemy')), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    (loaded,) = [line for line in done.stderr.splitlines() if line.startswith("loaded:")]
    assert loaded == "loaded:"
    listed = run_strata("--json", "runs", "list", cwd=root)
    assert [r["status"] for r in json.loads(listed.out)] == ["success", "success"]
