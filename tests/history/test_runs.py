"""Runs: start, heartbeat, records, finish, lookup by prefix, and dead processes failed."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.errors import RunNotFoundError
from strata.history import Run, RunHistory, RunStatus
from strata.history.tables import runs
from strata.project.project import Project
from tests.history.conftest import killed_run


def test_start_heartbeat_records_finish(history: RunHistory) -> None:
    run = history.start("dev:tap-x-to-target-y", "dev", ["tap-x", "target-y"], ".strata/logs/a.log")
    assert run.status is RunStatus.RUNNING
    assert run.pid == os.getpid()
    assert run.id == run.run_id
    assert len(run.run_id) == 32
    run.add_records({"users": 3})
    run.heartbeat()
    run.add_records({"users": 2, "orders": 1})
    seen = history.get(run.run_id)
    assert seen.status is RunStatus.RUNNING
    assert seen.records == {"users": 3}  # written with the heartbeat; the later counts wait for the next write
    assert seen.heartbeat_at >= seen.started_at
    run.finish("success")
    done = history.get(run.run_id)
    assert done.status is RunStatus.SUCCESS
    assert done.records == {"users": 5, "orders": 1}
    assert done.total_records == 6
    assert done.ended_at is not None
    assert done.duration is not None
    assert done.blocks == ["tap-x", "target-y"]
    assert done.environment == "dev"
    assert done.log_path == ".strata/logs/a.log"
    assert history.log_file(done) == history.root / ".strata/logs/a.log"
    assert done.to_dict()["status"] == "success"


def test_finish_needs_a_final_status_and_keeps_no_credentials(history: RunHistory) -> None:
    run = history.start("s", None, [])
    with pytest.raises(ValueError, match="final status"):
        run.finish("running")
    run.finish(RunStatus.FAILED, "cannot reach postgresql://app:s3cret@db/x\n" + "x" * 10_000)
    error = history.get(run.run_id).error
    assert error is not None
    assert "s3cret" not in error
    assert error.startswith("cannot reach postgresql://***@db/x")
    assert len(error) <= 4000


def test_a_run_read_back_cannot_write(history: RunHistory) -> None:
    history.start("s", None, [])
    (read,) = history.list()
    with pytest.raises(RuntimeError, match="only the process that started it"):
        read.heartbeat()


def test_list_is_newest_first_filtered_and_limited(history: RunHistory) -> None:
    first = history.start("a", "dev", [])
    second = history.start("b", "dev", [])
    third = history.start("a", "dev", [])
    assert [r.run_id for r in history.list()] == [third.run_id, second.run_id, first.run_id]
    assert [r.run_id for r in history.list(state_id="a")] == [third.run_id, first.run_id]
    assert [r.run_id for r in history.list(limit=1)] == [third.run_id]
    assert history.list(state_id="nope") == []
    assert [r.run_id for r in history.running("a")] == [first.run_id, third.run_id]


def _insert(history: RunHistory, run_id: str, **values: object) -> None:
    now = datetime.now(UTC)
    row = {
        "run_id": run_id,
        "state_id": "s",
        "blocks": [],
        "status": "success",
        "started_at": now,
        "heartbeat_at": now,
        "records": {},
    } | values
    with history.engine.begin() as connection:
        connection.execute(runs.insert().values(**row))


def test_get_takes_a_unique_prefix(history: RunHistory) -> None:
    _insert(history, "aaaa1111" + "0" * 24)
    _insert(history, "aaaa2222" + "0" * 24)
    assert history.get("aaaa1").run_id.startswith("aaaa1111")
    assert history.get("AAAA2222-0000").run_id.startswith("aaaa2222")
    with pytest.raises(RunNotFoundError, match=r"`aaaa` is the start of several run ids \(aaaa"):
        history.get("aaaa")
    with pytest.raises(RunNotFoundError, match="no run with id `bbbb`"):
        history.get("bbbb")
    with pytest.raises(RunNotFoundError, match="is not a run id"):
        history.get("a%")


def _set(history: RunHistory, run: Run, **values: object) -> None:
    with history.engine.begin() as connection:
        connection.execute(runs.update().where(runs.c.run_id == run.run_id).values(**values))


def test_a_run_whose_heartbeat_stopped_is_failed_on_the_next_look(history: RunHistory) -> None:
    run = history.start("s", None, [])
    old = datetime.now(UTC) - timedelta(minutes=6)
    _set(history, run, heartbeat_at=old)
    (seen,) = history.list()
    assert seen.status is RunStatus.FAILED
    assert seen.error is not None
    assert seen.error.startswith("process died: no heartbeat since")
    assert seen.ended_at == old


def test_a_fresh_run_of_another_host_is_left_running(history: RunHistory) -> None:
    run = history.start("s", None, [])
    _set(history, run, host="elsewhere", pid=2**22 + 1)
    assert history.get(run.run_id).status is RunStatus.RUNNING
    assert history.fail_dead() == 0


def test_a_run_whose_process_was_killed_is_failed_on_the_next_look(root: Path, history: RunHistory) -> None:
    with killed_run(root, "RunHistory.open") as (run_id, proc):
        assert history.get(run_id).status is RunStatus.RUNNING
    dead = history.get(run_id)
    assert dead.status is RunStatus.FAILED
    assert dead.error == f"process died: pid {proc.pid} on {dead.host} is gone"
    assert history.running("dev:tap-x-to-target-y") == []


def test_a_run_used_as_a_context_manager_finishes_itself(history: RunHistory) -> None:
    with history.start("ok", None, []) as run:
        run.add_records({"s": 1})
    assert history.get(run.run_id).status is RunStatus.SUCCESS
    failing = history.start("bad", None, [])
    with pytest.raises(RuntimeError), failing:
        raise RuntimeError("tap exploded")
    seen = history.get(failing.run_id)
    assert seen.status is RunStatus.FAILED
    assert seen.error == "tap exploded"
    stopped = history.start("stop", None, [])
    with pytest.raises(KeyboardInterrupt), stopped:
        raise KeyboardInterrupt
    assert history.get(stopped.run_id).status is RunStatus.CANCELLED


def test_keep_alive_beats_from_a_thread(history: RunHistory, monkeypatch: pytest.MonkeyPatch) -> None:
    run = history.start("s", None, [])
    beaten = threading.Event()
    original = Run.heartbeat

    def heartbeat(self: Run) -> None:
        original(self)
        beaten.set()

    monkeypatch.setattr(Run, "heartbeat", heartbeat)
    with run.keep_alive(timedelta(milliseconds=10)):
        assert beaten.wait(timeout=10)
    assert history.get(run.run_id).heartbeat_at > run.started_at


def test_histories_of_two_processes_share_one_file(root: Path, history: RunHistory) -> None:
    run = history.start("s", "dev", ["tap-x"])
    with RunHistory.open(Project(root)) as other:
        assert other.get(run.run_id[:8]).blocks == ["tap-x"]
        with other.engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 1
