"""`strata runs list | show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.history import RunHistory
from strata.project.project import Project
from tests.helpers import Cli

pytestmark = pytest.mark.usefixtures("database")


def _runs(root: Path) -> list[str]:
    """Three runs: a success with a log, a failure whose log is gone, one still running."""
    logs = root / ".strata" / "logs" / "runs"
    logs.mkdir(parents=True)
    (logs / "ok.log").write_text("tap-x | starting\ntarget-y | wrote 3 records\n")
    with RunHistory.open(Project(root)) as history:
        ok = history.start("dev:tap-x-to-target-y", "dev", ["tap-x", "target-y"], ".strata/logs/runs/ok.log")
        ok.add_records({"users": 2, "orders": 1})
        ok.finish("success")
        bad = history.start("dev:tap-y-to-target-y", "dev", ["tap-y", "target-y"], str(logs / "gone.log"))
        bad.finish("failed", "tap-y exited with 1")
        running = history.start("dev:tap-x-to-target-y", "dev", ["tap-x", "target-y"])
        return [ok.run_id, bad.run_id, running.run_id]


def test_runs_list_when_there_are_none(strata: Cli, root: Path) -> None:
    result = strata("runs", "list")
    assert result.code == 0, result.err
    assert result.out == "no runs yet\n"


def test_runs_list_is_a_table_newest_first(strata: Cli, root: Path) -> None:
    ok, bad, running = _runs(root)
    result = strata("runs", "list")
    assert result.code == 0, result.err
    header, *lines = result.out.splitlines()
    assert header.split() == ["run", "state", "id", "status", "started", "duration", "records"]
    assert [line.split()[0] for line in lines] == [running[:8], bad[:8], ok[:8]]
    assert lines[0].split()[1:3] == ["dev:tap-x-to-target-y", "running"]
    assert "so far" in lines[0]
    assert lines[2].split()[2] == "success"
    assert lines[2].split()[-1] == "3"


def test_runs_list_filters_limits_and_prints_json(strata: Cli, root: Path) -> None:
    ok, _, running = _runs(root)
    result = strata("runs", "list", "--state-id", "dev:tap-x-to-target-y", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert [r["run_id"] for r in data] == [running, ok]
    assert data[1]["records"] == {"users": 2, "orders": 1}
    assert data[1]["status"] == "success"
    assert data[1]["started_at"].endswith("+00:00")
    assert [r["run_id"] for r in strata("--json", "runs", "list", "--limit", "1").json()] == [running]
    none = strata("runs", "list", "--state-id", "nope")
    assert none.out == "no runs yet of state id `nope`\n"


def test_runs_list_refuses_a_limit_below_one(strata: Cli, root: Path) -> None:
    result = strata("runs", "list", "--limit", "0")
    assert result.code == 2
    assert "--limit" in result.err


def test_runs_show_prints_the_run_and_its_log(strata: Cli, root: Path) -> None:
    ok, _, _ = _runs(root)
    result = strata("runs", "show", ok[:6])
    assert result.code == 0, result.err
    assert f"run          {ok}\n" in result.out
    assert "status       success\n" in result.out
    assert "records      3 (orders 1, users 2)\n" in result.out
    assert "blocks       tap-x target-y\n" in result.out
    assert result.out.endswith("tap-x | starting\ntarget-y | wrote 3 records\n")
    tail = strata("runs", "show", ok, "--tail", "1")
    assert tail.out.endswith("---\ntarget-y | wrote 3 records\n")


def test_runs_show_says_when_the_log_is_missing(strata: Cli, root: Path) -> None:
    _, bad, running = _runs(root)
    result = strata("runs", "show", bad)
    assert result.code == 0, result.err
    assert "error        tap-y exited with 1\n" in result.out
    assert "(log missing:" in result.out
    assert "(this run has no log file)" in strata("runs", "show", running).out
    data = strata("runs", "show", bad, "--json").json()
    assert data["log"] is None
    assert data["log_file"].endswith("gone.log")
    assert data["error"] == "tap-y exited with 1"


def test_runs_show_unknown_or_ambiguous_ids_are_one_line(strata: Cli, root: Path) -> None:
    _runs(root)
    for arg, message in (("ffffffffffff", "no run with id `ffffffffffff`"), ("xyz", "`xyz` is not a run id")):
        result = strata("runs", "show", arg)
        assert result.code == 2
        assert message in result.err
        assert result.err.count("\n") == 1
