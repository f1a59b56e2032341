"""`type: clickhouse` with `host:` in strata.yml: what reaching a server that is not there says.

Run as a real process: its whole stderr is what a user sees (a library's log lines included).
"""

from __future__ import annotations

import polars as pl

import strata as st
from strata.features.project import load_graph, make_store
from strata.project.project import Project
from strata.resolve.sql import ident
from tests.cli.conftest import MakeProject
from tests.cli.test_store_chains import GRAPH
from tests.helpers import run_strata
from tests.servers import free_port
from tests.stores.test_kills import spawn


def test_an_unreachable_server_is_one_line(make_project: MakeProject) -> None:
    root = make_project(
        {"feats.py": GRAPH},
        extra=f"  store: ch\nstores:\n  ch: {{type: clickhouse, host: 127.0.0.1, port: {free_port()}, password: pw}}\n",
    )
    result = run_strata("status", cwd=root, timeout=120)
    assert result.code == 1
    assert "cannot reach ch" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_with_debug_the_traceback_of_an_unreachable_server_holds_no_password(make_project: MakeProject) -> None:
    secret = "Pa55-w0rd-of-the-server"
    root = make_project(
        {"feats.py": GRAPH},
        extra=f"  store: ch\nstores:\n  ch: {{type: clickhouse, host: 127.0.0.1, port: {free_port()}, "
        f"password: {secret}}}\n",
    )
    result = run_strata("--debug", "status", cwd=root, timeout=120)
    assert result.code == 1
    assert "Traceback" in result.err
    assert "cannot reach ch" in result.err
    assert secret not in result.err + result.out


def test_a_secure_server_without_a_port_is_reached_on_the_https_port(make_project: MakeProject) -> None:
    """ClickHouse serves HTTPS on 8443 (8123 is its plain HTTP port), as clickhouse-connect's default says."""
    root = make_project(
        {"feats.py": GRAPH},
        extra="  store: ch\nstores:\n  ch: {type: clickhouse, host: 127.0.0.1, secure: true, password: pw}\n",
    )
    result = run_strata("status", cwd=root, timeout=120)
    assert result.code == 1
    assert "port=8443" in result.err
    assert "8123" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_a_failure_of_the_engine_in_a_command_is_one_line_and_changes_nothing(make_project: MakeProject) -> None:
    """The commit table refuses the delete's commit row (a constraint added behind strata's back): one line, exit 1.

    With --debug the traceback follows; once the constraint is gone the same command succeeds.
    """
    root = make_project({"feats.py": GRAPH}, extra="  store: ch\nstores:\n  ch: {type: clickhouse, path: ch}\n")
    project = Project.find(root, environ={})

    def store() -> st.ClickHouseStore:
        made = make_store(project, graph=load_graph(project))
        assert isinstance(made, st.ClickHouseStore)
        return made

    commits, constraint = ident("strata$commits"), ident("no")
    with store() as ch:
        ch.write("raw", pl.DataFrame({"sample_uid": [1, 2], "x": [10, 20], "strata_dv__x": ["a", "b"]}))
        ch.to_native().command(f"ALTER TABLE {commits} ADD CONSTRAINT {constraint} CHECK seq < 0")
    result = run_strata("metadata", "delete", "raw", "--id", "1", cwd=root, timeout=120)
    assert result.code == 1, result.out + result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert result.err.startswith("strata: error: cannot run a statement in ch: Code: 469."), result.err
    assert "Traceback" not in result.err
    debug = run_strata("--debug", "metadata", "delete", "raw", "--id", "1", cwd=root, timeout=120)
    assert debug.code == 1
    assert "Traceback" in debug.err
    with store() as ch:
        assert sorted(ch.read("raw")["sample_uid"].to_list()) == [1, 2]
        ch.to_native().command(f"ALTER TABLE {commits} DROP CONSTRAINT {constraint}")
    assert run_strata("metadata", "delete", "raw", "--id", "1", cwd=root, timeout=120).code == 0
    with store() as ch:
        assert sorted(ch.read("raw")["sample_uid"].to_list()) == [2]


HOLD = """
import sys
import strata as st
with st.ClickHouseStore({path!r}) as store:
    store.read  # opened: chDB holds the directory
    print("open", flush=True)
    sys.stdin.readline()
"""


def test_a_directory_another_process_has_open_is_one_line(make_project: MakeProject) -> None:
    """chDB opens a directory in one process at a time: a second one is told so, in one line (no line of chDB's)."""
    root = make_project({"feats.py": GRAPH}, extra="  store: ch\nstores:\n  ch: {type: clickhouse, path: ch}\n")
    holder = spawn(HOLD.format(path=str(root / "ch")))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open", holder.stderr.read() if holder.stderr else ""
        result = run_strata("status", cwd=root, timeout=120)
        assert result.code == 1, result.out + result.err
        expected = (
            "strata: error: cannot open ch: another process has its directory open; chDB opens a directory in one "
            "process at a time: run again once that process is done (several processes at once need a ClickHouse "
            "server)"
        )
        assert result.err.strip().splitlines() == [expected]
    finally:
        holder.communicate("\n", timeout=120)
    assert holder.returncode == 0
    assert run_strata("status", cwd=root, timeout=120).code == 0
