"""``strata state …``: every command, on every backend, and bad input as one line that changes nothing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from strata.project.project import Project
from strata.state import StateBackend, complete, state_backend_for
from tests.helpers import Cli, run_strata
from tests.state.conftest import BackendCase

ID = "dev:tap-x-to-target-y"
SET = '{"singer_state": {"a": 1, "b": 1}}'
MERGE = '{"singer_state": {"b": 2, "c": 3}}'
HEAVY = ("sqlalchemy", "psycopg", "boto3", "botocore", "azure", "polars", "duckdb", "pyarrow", "rich")


def one_line_error(err: str) -> str:
    assert err.startswith("strata: error: "), err
    assert err.count("\n") == 1, err
    return err


@pytest.fixture
def stored(project: Path) -> StateBackend:
    """The project's backend (files under .strata/state), with ID's state set and merged."""
    backend = state_backend_for(Project(project))
    backend.put(ID, complete(None, json.loads(SET)))
    return backend


def everything(backend: StateBackend) -> dict[str, object]:
    """Every stored record, to prove a refused command changed nothing."""
    return {state_id: backend.get(state_id) for state_id in backend.ids()}


# -- the commands -----------------------------------------------------------------------------


def test_set_merge_get_list(strata: Cli, project: Path) -> None:
    done = strata("state", "set", ID, SET)
    assert (done.code, done.out) == (0, f"state of `{ID}` set\n")
    assert strata("state", "merge", ID, MERGE).code == 0
    done = strata("state", "get", ID)
    assert done.code == 0
    assert json.loads(done.out) == {"singer_state": {"a": 1, "b": 2, "c": 3}}
    shown = strata("state", "get", ID, "--json").json()
    assert shown["completed"] == {"singer_state": {"a": 1, "b": 1}}
    assert shown["partial"] == {"singer_state": {"b": 2, "c": 3}}
    assert shown["effective"] == {"singer_state": {"a": 1, "b": 2, "c": 3}}
    assert shown["updated_at"].startswith("20")
    assert strata("--json", "state", "get", ID).json() == shown
    strata("state", "set", "prod:tap-x-to-target-y", SET)
    assert strata("state", "list").out == f"{ID}\nprod:tap-x-to-target-y\n"
    assert strata("state", "list", "prod:*").out == "prod:tap-x-to-target-y\n"
    assert strata("state", "list", "--json").json() == [ID, "prod:tap-x-to-target-y"]
    done = strata("state", "list", "staging:*")
    assert (done.code, done.out, done.err) == (0, "", "no state stored matching `staging:*`\n")


def test_set_replaces_completed_and_clears_partial(strata: Cli, stored: StateBackend) -> None:
    strata("state", "merge", ID, MERGE)
    assert strata("state", "set", ID, '{"singer_state": {"z": 9}}').code == 0
    assert strata("state", "get", ID, "--json").json()["partial"] is None
    assert json.loads(strata("state", "get", ID).out) == {"singer_state": {"z": 9}}


def test_set_and_merge_read_stdin(strata: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SET))
    assert strata("state", "set", ID, "-").code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(MERGE))
    assert strata("state", "merge", ID, "-").code == 0
    assert json.loads(strata("state", "get", ID).out) == {"singer_state": {"a": 1, "b": 2, "c": 3}}


def test_force_stores_a_state_without_singer_state(strata: Cli, project: Path) -> None:
    assert strata("state", "set", ID, '{"bookmarks": {"s": 1}}').code == 2
    assert strata("state", "set", ID, '{"bookmarks": {"s": 1}}', "--force").code == 0
    assert json.loads(strata("state", "get", ID).out) == {"bookmarks": {"s": 1}}


def test_copy_and_move(strata: Cli, stored: StateBackend) -> None:
    strata("state", "merge", ID, MERGE)
    before = strata("state", "get", ID, "--json").json()
    done = strata("state", "copy", ID, "dev:copy")
    assert (done.code, done.out) == (0, f"state copied: `{ID}` -> `dev:copy`\n")
    copied = strata("state", "get", "dev:copy", "--json").json()
    assert (copied["completed"], copied["partial"]) == (before["completed"], before["partial"])
    done = strata("state", "move", "dev:copy", "dev:moved")
    assert (done.code, done.out) == (0, "state moved: `dev:copy` -> `dev:moved`\n")
    assert stored.ids() == ["dev:moved", ID]
    assert stored.get("dev:moved") == stored.get(ID)


def test_clear_one_all_and_confirmation(strata: Cli, stored: StateBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    strata("state", "copy", ID, "dev:other")
    strata("state", "copy", ID, "dev:third")
    done = strata("state", "clear", ID, "--yes")
    assert (done.code, done.out) == (0, f"cleared `{ID}`\n")
    assert stored.ids() == ["dev:other", "dev:third"]
    monkeypatch.setattr("strata.cli.state_cmds._interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    done = strata("state", "clear", "--all")
    assert done.code == 130
    assert "Clear the state of 2 state ids?" in done.err
    assert stored.ids() == ["dev:other", "dev:third"]
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    done = strata("state", "clear", "--all")
    assert (done.code, done.out) == (0, "cleared 2 state ids\n")
    assert stored.ids() == []
    assert strata("state", "clear", "--all", "--yes").out == "no state stored\n"


# -- bad input: one line, exit 2, nothing changed ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", ID, "{a: 1}"], "the state is not valid JSON (Expecting property name"),
        (["set", ID, '{"bookmarks": {}}'], "the state has no `singer_state` object at the top level; wrap it"),
        (["set", ID, "[1]"], "the state must be a JSON object, not list"),
        (["merge", ID, "{"], "the state is not valid JSON"),
        (["merge", ID, '{"singer_state": []}'], "the state has a non-object `singer_state`"),
        (["get", "dev:unknown"], "no state is stored for `dev:unknown` in file://"),
        (["clear", "dev:unknown", "--yes"], "no state is stored for `dev:unknown`"),
        (["copy", "dev:unknown", "dev:x"], "no state is stored for `dev:unknown`"),
        (["move", "dev:unknown", "dev:x"], "no state is stored for `dev:unknown`"),
        (["copy", ID, ID], f"source and destination are both `{ID}`"),
        (["clear"], "name one state id or pass --all"),
        (["clear", ID, "--all"], "name one state id or pass --all"),
        (["clear", ID], f"clearing `{ID}` needs confirmation; pass --yes"),
        (["clear", "--all"], f"clearing `{ID}` needs confirmation; pass --yes"),
        (["get", "../x"], "state id `../x` contains `/`"),
        (["set", "..", SET], "state id `..` contains `..`"),
        (["set", "a/b", SET], "state id `a/b` contains `/`"),
        (["merge", "x\0y", MERGE], "state id `x\\x00y` contains a NUL character"),
        (["copy", ID, "../../etc"], "state id `../../etc` contains `/`"),
        (["move", "..", ID], "state id `..` contains `..`"),
        (["clear", "/etc/x", "--yes"], "state id `/etc/x` contains `/`"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    strata: Cli, stored: StateBackend, project: Path, args: list[str], message: str
) -> None:
    before = everything(stored)
    files = sorted(p.relative_to(project) for p in project.rglob("*") if "cache" not in p.parts)
    done = strata("state", *args)
    assert done.code == 2, done.err
    assert message in one_line_error(done.err)
    assert done.out == ""
    assert everything(stored) == before
    assert sorted(p.relative_to(project) for p in project.rglob("*") if "cache" not in p.parts) == files


def test_an_unknown_backend_is_a_usage_error(strata: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_STATE_BACKEND_URI", "gs://bucket/states")
    done = strata("state", "list")
    assert done.code == 2
    assert "state_backend.uri `gs://bucket/states` names no supported state backend" in one_line_error(done.err)


def test_an_unreachable_backend_fails_in_one_line_without_secrets(
    strata: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import free_port

    monkeypatch.setenv("STRATA_STATE_BACKEND_URI", f"postgresql://u:hunter2hunter2@127.0.0.1:{free_port()}/db")
    done = strata("state", "get", ID)
    assert done.code == 1
    assert "state database postgresql+psycopg://u:***@127.0.0.1" in one_line_error(done.err)
    assert "hunter2hunter2" not in done.err


def test_edits_are_refused_while_a_run_holds_the_lock(strata: Cli, stored: StateBackend) -> None:
    before = everything(stored)
    with stored.lock(ID):
        for args in (["set", ID, SET], ["merge", ID, MERGE], ["clear", ID, "--yes"], ["copy", "dev:x", ID]):
            if args[0] == "copy":
                strata("state", "set", "dev:x", SET)
                before = everything(stored)
            done = strata("state", *args)
            assert done.code == 1
            assert f"state `{ID}` is locked by" in one_line_error(done.err)
            assert done.err.endswith("; wait for it or pass --force\n")
            assert everything(stored) == before
        assert strata("state", "get", ID).code == 0  # reading needs no lock
        assert strata("state", "merge", ID, MERGE, "--force").code == 0
    assert json.loads(strata("state", "get", ID).out) == {"singer_state": {"a": 1, "b": 2, "c": 3}}


# -- every backend through the CLI ------------------------------------------------------------


def test_every_command_on_every_backend(
    strata: Cli, project: Path, backend_case: BackendCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in backend_case.environ().items():
        monkeypatch.setenv(name, value)
    assert strata("state", "set", ID, SET).code == 0
    assert strata("state", "merge", ID, MERGE).code == 0
    assert json.loads(strata("state", "get", ID).out) == {"singer_state": {"a": 1, "b": 2, "c": 3}}
    assert strata("state", "copy", ID, "prod:tap-x-to-target-y").code == 0
    assert strata("state", "move", "prod:tap-x-to-target-y", "prod:moved").code == 0
    assert strata("state", "list").out == f"{ID}\nprod:moved\n"
    assert strata("state", "list", "prod:*").out == "prod:moved\n"
    assert one_line_error(strata("state", "set", "../x", SET).err)
    assert strata("state", "clear", "--all", "--yes").out == "cleared 2 state ids\n"
    assert strata("state", "list").out == ""
    assert not (project / ".strata" / "state").exists()  # the project's default was not used
    with backend_case.open() as backend:
        assert backend.ids() == []


# -- start-up ---------------------------------------------------------------------------------


def test_state_commands_load_no_client_library_for_files(project: Path) -> None:
    assert run_strata("state", "set", ID, SET, cwd=project).code == 0
    code = (
        "import sys\n"
        "from strata.cli import main\n"
        "try:\n"
        "    main(['state', 'list'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    assert done.stdout == f"{ID}\n"
    loaded = set(done.stderr.split())
    assert "strata.state.file" in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
