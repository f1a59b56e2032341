"""The ClickHouse store's own tables of one operation (the rows of a write, a resolve's candidates) leave nothing behind.

They are the session's temporary tables: a process killed while it holds some leaves no table in
any database, and a read-only store creates nothing in any database at any moment. A failure of
the engine after the store is open is one line naming the store, and a write it interrupts counts
for nothing.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from strata.errors import RuntimeFailure
from strata.resolve.sql import ident
from strata.stores.clickhouse.engine import ChdbEngine
from tests.stores.test_clickhouse_writers import three_stores
from tests.stores.test_conformance import graph_of, roots, sync
from tests.stores.test_kills import killed, spawn

BOOKKEEPING = {"strata$meta", "strata$sync", "strata$commits", "strata$claims", "strata$doomed"}
FEATURES = {"video", "transcript", "embedding"}

PAUSE_WITH_SCRATCH = """
import sys
import polars as pl
import strata as st
from strata.stores.clickhouse.engine import ChdbEngine
from tests.stores.test_conformance import graph_of, roots, sync
run = ChdbEngine.command
def paused(self, sql):
    run(self, sql)
    if sql.startswith("CREATE") and ("strata$batch" in sql or "strata$cand" in sql):
        print("scratch", flush=True)
        sys.stdin.readline()
with st.ClickHouseStore({path!r}, graph=graph_of()) as store:
    sync(store, roots(3))
    store.write("video", roots(4, audio={{0: "new"}}))
    ChdbEngine.command = paused
    {operation}
"""
OPERATIONS = {
    "write": 'store.write("video", roots(5, audio={1: "again"}))',
    "resolve of samples": 'store.resolve_update("video", samples=roots(6))',
    "incremental resolve": 'store.resolve_update("transcript")',
    "hard delete": 'store.delete("video", pl.DataFrame({"sample_uid": [2]}), soft=False)',
}


def tables(store: st.ClickHouseStore) -> set[tuple[str, str]]:
    """Every table of every database the engine holds (not the system's), as (database, name)."""
    found = store.to_native().query(
        "SELECT database, name FROM system.tables WHERE NOT is_temporary "
        "AND database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA')"
    )
    return set(zip(*(c.to_pylist() for c in found.columns), strict=True))


def every_row(store: st.MetadataStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for key in sorted(FEATURES):
        if store.has_feature(key):
            frame = store.read(key, feature_version="all", include_deleted=True)
            out[key] = sorted(frame.select(sorted(frame.columns)).rows(), key=repr)
    return out


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_process_killed_holding_scratch_tables_leaves_none_behind(tmp_path: Path, operation: str) -> None:
    path = tmp_path / "ch"
    process = spawn(PAUSE_WITH_SCRATCH.format(path=str(path), operation=OPERATIONS[operation]))
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line == "scratch", process.stderr.read() if process.stderr else ""
    killed(process)
    with st.ClickHouseStore(path, graph=graph_of()) as store:
        assert {name for _, name in tables(store)} == BOOKKEEPING | FEATURES
        sync(store, roots(4, audio={0: "new"}))  # the store goes on as before
        assert {name for _, name in tables(store)} == BOOKKEEPING | FEATURES
        assert sorted(store.read("video")["strata_dv__audio"].to_list()) == ["a1", "a2", "a3", "new"]


def copied_with_history(store: st.ClickHouseStore, path: Path) -> None:
    """Copy into ``store`` video's rows of a DuckDB store, latest and history (two batches: the second fails)."""
    with st.DuckDBStore(path, graph=graph_of()) as source:
        source.write("video", roots(3))
        source.write("video", roots(3, audio={0: "again"}))
        store.copy_from(source, ["video"])


FAILED_INSERTS: dict[str, tuple[int, Callable[[st.ClickHouseStore, Path], object]]] = {
    "write": (1, lambda store, _: store.write_changed("video", roots(3, audio={0: "a"}))),
    "copy, its second batch": (2, copied_with_history),
}


@pytest.mark.parametrize("operation", list(FAILED_INSERTS))
def test_a_batch_that_failed_to_go_in_does_not_keep_the_chdb_session_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The operation's batch insert (for a copy: the second, after the first went in) fails.

    Its temporary tables hold the session (``_scratch``): one left held would make every other
    thread's chDB call wait until the store closes.
    """
    nth, run = FAILED_INSERTS[operation]
    with (
        three_stores(tmp_path / "ch") as (a, _, _reader),
        st.ClickHouseStore(tmp_path / "other", graph=graph_of()) as other,
    ):
        engine = a.to_native()
        insert = engine.insert
        inserts: list[str] = []

        def failing(table: str, data: Any) -> None:
            inserts.append(table)
            if len(inserts) == nth:
                raise RuntimeError("the connection dropped")
            insert(table, data)

        monkeypatch.setattr(engine, "insert", failing)
        with pytest.raises(RuntimeError, match="the connection dropped"):
            run(a, tmp_path / "source.duckdb")
        monkeypatch.setattr(engine, "insert", insert)
        done: list[int] = []
        worker = threading.Thread(target=lambda: done.append(len(other.read("video").to_native())), daemon=True)
        worker.start()
        worker.join(timeout=30)
        held = worker.is_alive()
        engine.close()  # lets go of its holds: the worker goes on either way
        worker.join(timeout=30)
        assert not held, "another thread's chDB call waited for the failed write's hold"


def test_a_read_only_store_creates_nothing_in_any_database_while_it_reads_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watched before every statement it runs: the tables of every database stay those the writer left."""
    path = tmp_path / "ch"
    with st.ClickHouseStore(path, graph=graph_of(), database="feats") as store:
        sync(store, roots(3))
        store.write("video", roots(4, audio={0: "new"}))
        rows = every_row(store)
        expected = tables(store)
    seen: list[set[tuple[str, str]]] = []
    query, command = ChdbEngine.query, ChdbEngine.command

    def watched(run: Any) -> Any:
        def call(self: ChdbEngine, sql: str) -> Any:
            seen.append({(d, n) for d, n in _tables(self, query)})
            return run(self, sql)

        return call

    monkeypatch.setattr(ChdbEngine, "query", watched(query))
    monkeypatch.setattr(ChdbEngine, "command", watched(command))
    with st.ClickHouseStore(path, graph=graph_of(), database="feats", read_only=True) as store:
        assert len(store.resolve_update("video", samples=roots(5)).added) == 1
        assert store.resolve_update("transcript").counts() == {"added": 1, "changed": 1, "removed": 0}
        assert store.resolve_update("embedding").counts() == {"added": 0, "changed": 0, "removed": 0}
        assert every_row(store) == rows
        assert len(store.read("video", feature_version="all")) == 7
    monkeypatch.undo()
    assert seen
    assert all(found == expected for found in seen), [found - expected for found in seen if found != expected]
    with st.ClickHouseStore(path, graph=graph_of(), database="feats") as store:
        assert tables(store) == expected


def _tables(engine: ChdbEngine, query: Any) -> set[tuple[str, str]]:
    found = query(
        engine,
        "SELECT database, name FROM system.tables WHERE NOT is_temporary "
        "AND database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA')",
    )
    return set(zip(*(c.to_pylist() for c in found.columns), strict=True))


def test_a_table_dropped_behind_the_stores_back_is_one_line_naming_the_store(tmp_path: Path) -> None:
    with st.ClickHouseStore(tmp_path / "ch", graph=graph_of(), name="big") as store:
        sync(store, roots(3))
        store.write("video", roots(3, frames={0: "new"}))
        store.to_native().command(f"DROP TABLE {ident('transcript')}")
        attempts: list[Callable[[], object]] = [
            lambda: store.resolve_update("embedding"),
            lambda: store.read("transcript"),
        ]
        for attempt in attempts:
            with pytest.raises(RuntimeFailure) as caught:
                attempt()
            message = str(caught.value)
            assert message.startswith("cannot "), message
            assert " big: " in message
            assert "\n" not in message
            assert "transcript" in message


def test_a_write_whose_commit_fails_is_one_line_and_counts_for_nothing(tmp_path: Path) -> None:
    """The commit table refuses the row (a constraint added behind the store's back): the rows before it do not count."""
    with st.ClickHouseStore(tmp_path / "ch", graph=graph_of(), name="big") as store:
        sync(store, roots(3))
        before = every_row(store)
        commits = ident("strata$commits")
        store.to_native().command(f"ALTER TABLE {commits} ADD CONSTRAINT {ident('no')} CHECK seq < 0")
        attempts: list[Callable[[], object]] = [
            lambda: store.write("video", roots(4, audio={0: "lost"})),
            lambda: store.delete("video", pl.DataFrame({"sample_uid": [1]})),
        ]
        for attempt in attempts:
            with pytest.raises(RuntimeFailure) as caught:
                attempt()
            assert "big" in str(caught.value)
            assert "\n" not in str(caught.value)
            assert every_row(store) == before
        store.to_native().command(f"ALTER TABLE {commits} DROP CONSTRAINT {ident('no')}")
        store.write("video", roots(4, audio={0: "kept"}))
        assert sorted(store.read("video")["strata_dv__audio"].to_list()) == ["a1", "a2", "a3", "kept"]


def test_a_hard_delete_behind_a_failed_mutation_fails_once_and_its_retry_erases(tmp_path: Path) -> None:
    """A mutation that failed stays queued and fails every later one on the table: the failed delete clears them."""
    with st.ClickHouseStore(tmp_path / "ch", graph=graph_of(), name="big") as store:
        sync(store, roots(3))
        engine = store.to_native()
        engine.command("CREATE TEMPORARY TABLE gone (sample_uid Int64) ENGINE = Memory")
        with pytest.raises(RuntimeFailure):  # a mutation cannot read a session's table: it fails, and stays
            engine.command("DELETE FROM video WHERE sample_uid IN (SELECT sample_uid FROM gone)")
        ids = pl.DataFrame({"sample_uid": [1]})
        with pytest.raises(RuntimeFailure) as caught:
            store.delete("video", ids, soft=False)
        assert str(caught.value).startswith("cannot run a statement in big: "), caught.value
        store.delete("video", ids, soft=False)
        assert sorted(store.read("video", feature_version="all", include_deleted=True)["sample_uid"].to_list()) == [
            0,
            2,
        ]
        assert not engine.query("SELECT * FROM `strata$doomed`").num_rows


def test_the_traceback_of_an_engine_failure_hides_the_password_as_its_line_does(tmp_path: Path) -> None:
    """What ``--debug`` prints (the failure and the engine's error it came from) never holds the password.

    The engine's message echoes the query, which names the password (as a server's may echo a
    statement or a URL): a chDB store, told the password a server store would have.
    """
    secret = "Pa55-w0rd-of-the-server"
    with st.ClickHouseStore(tmp_path / "ch", graph=graph_of()) as store:
        engine = store.to_native()
        engine.secret = secret
        with pytest.raises(RuntimeFailure) as caught:
            engine.query(f"SELECT {ident(secret)}")
    shown = "".join(traceback.format_exception(caught.value))
    assert "The above exception was the direct cause" in shown  # the engine's own error is still shown
    assert "Code: 47" in shown
    assert "***" in shown
    assert secret not in shown, shown


def test_a_hard_delete_is_done_when_it_returns_whatever_the_servers_defaults(tmp_path: Path) -> None:
    """A server may run deletes in the background (``lightweight_deletes_sync``, ``mutations_sync`` 0).

    The delete reads the rows it takes from ``strata$doomed``, cleared once it returns: run later,
    it would find none and leave the rows.
    """
    with st.ClickHouseStore(tmp_path / "ch", graph=graph_of()) as store:
        sync(store, roots(3))
        engine = store.to_native()
        engine.command("SET lightweight_deletes_sync = 0")  # as a server's profile may have them
        engine.command("SET mutations_sync = 0")
        store.delete("video", pl.DataFrame({"sample_uid": [2]}), soft=False)
        every = store.read("video", feature_version="all", include_deleted=True)
        assert sorted(every["sample_uid"].to_list()) == [0, 1]
        assert not engine.query("SELECT * FROM `strata$doomed`").num_rows


def strata_mutations(engine: Any, *, failed: bool = True) -> set[str]:
    """The ids of the mutations of strata's deletes (their commands read ``strata$doomed``).

    Those failed and still queued, or (``failed=False``) every one not killed (queued or done).
    """
    found = engine.query(
        "SELECT mutation_id, NOT is_done AND latest_fail_reason != '' FROM system.mutations "
        "WHERE position(command, 'strata$doomed') > 0"
    )
    return {m for m, stuck in zip(*(c.to_pylist() for c in found.columns), strict=True) if stuck or not failed}


def test_a_failed_hard_delete_takes_out_its_own_mutation_not_another_writers(tmp_path: Path) -> None:
    """Writer B's delete failed (behind a failed mutation) and B has not yet taken it out; A's fails meanwhile.

    A takes out its own and the one no writer waits for, never B's (which may still pass, B waiting for it;
    here it may pass once the one it failed behind is gone).
    """
    path = tmp_path / "ch"
    with st.ClickHouseStore(path, graph=graph_of()) as a, st.ClickHouseStore(path, graph=graph_of()) as b:
        sync(a, roots(3))
        engine = a.to_native()
        engine.command("CREATE TEMPORARY TABLE gone (sample_uid Int64) ENGINE = Memory")
        with pytest.raises(RuntimeFailure):  # a mutation cannot read a session's table: it fails, and stays
            engine.command("DELETE FROM video WHERE sample_uid IN (SELECT sample_uid FROM gone)")
        b_engine = b.to_native()
        run = b_engine.command
        seen: list[tuple[set[str], set[str]]] = []

        def paused(sql: str) -> None:
            if sql.startswith("KILL MUTATION") and not seen:
                bs = strata_mutations(engine)
                with pytest.raises(RuntimeFailure):
                    a.delete("video", pl.DataFrame({"sample_uid": [0]}), soft=False)
                seen.append((bs, strata_mutations(engine, failed=False)))
            run(sql)

        b_engine.command = paused  # type: ignore[method-assign]
        with pytest.raises(RuntimeFailure):
            b.delete("video", pl.DataFrame({"sample_uid": [1]}), soft=False)
        b_engine.command = run  # type: ignore[method-assign]
        assert seen
        bs, after = seen[0]
        assert len(bs) == 1
        assert bs <= after, "A took out B's mutation"  # it may have passed since, once the other failed one went
        assert not strata_mutations(engine)
        a.delete("video", pl.DataFrame({"sample_uid": [0]}), soft=False)
        b.delete("video", pl.DataFrame({"sample_uid": [1]}), soft=False)
        assert sorted(a.read("video", feature_version="all", include_deleted=True)["sample_uid"].to_list()) == [2]
