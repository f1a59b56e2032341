"""Several writers on one ClickHouse store: numbers never shared, no write lost to a reader, one winner per sample.

Two store objects on one chDB directory are two writers (each takes its own numbers and commits
on its own); a reader is a third. A write is held between taking its number and committing the way
the fault tests stop one (``tests/stores/test_kills.py``): the engine's statement that commits is
intercepted, and the other writer and the reader run before it goes on. With a server
(``STRATA_TEST_CLICKHOUSE_URL``) the held writer is another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from strata.resolve.sql import ident
from tests.stores.test_clickhouse import SERVER_URL, server_database
from tests.stores.test_conformance import graph_of, roots, rows, sync
from tests.stores.test_sync_paths import KEYS, both_paths, catch_up

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 120.0


def is_commit(sql: str) -> bool:
    """Whether ``sql`` is the statement that commits a write (the one row in ``strata$commits``)."""
    return sql.startswith("INSERT INTO") and "strata$commits" in sql


@contextmanager
def held_at_commit(
    writer: st.ClickHouseStore, meanwhile: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """While inside, ``writer``'s next write runs ``meanwhile()`` just before its commit: its number taken, its rows in.

    Yields the commits intercepted (one when the write reached its commit).
    """
    engine = writer.to_native()
    run = engine.command
    seen: list[str] = []

    def paused(sql: str) -> None:
        if is_commit(sql) and not seen:
            seen.append(sql)
            meanwhile()
        run(sql)

    with monkeypatch.context() as patch:
        patch.setattr(engine, "command", paused)
        yield seen


@contextmanager
def three_stores(path: Path) -> Iterator[tuple[st.ClickHouseStore, st.ClickHouseStore, st.ClickHouseStore]]:
    """Writers A and B and a reader on one chDB directory, the graph in sync at three samples."""
    with (
        st.ClickHouseStore(path, graph=graph_of()) as a,
        st.ClickHouseStore(path, graph=graph_of()) as b,
        st.ClickHouseStore(path, graph=graph_of()) as reader,
    ):
        sync(reader, roots(3))
        yield a, b, reader


def settled_while_held(reader: st.MetadataStore) -> None:
    """The reader writes what its resolve of transcript asks for (sample 2) and resolves again: nothing more."""
    asked = reader.resolve_update("transcript")
    assert changed_ids(asked) == [2]
    reader.write("transcript", rows(asked))
    assert reader.resolve_update("transcript").is_empty


def changed_ids(inc: st.Increment) -> list[int]:
    return sorted(inc.changed.to_native()["sample_uid"].to_list())


def test_a_reader_past_a_later_number_still_sees_a_write_committed_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A takes its number, B takes the next and commits, the reader catches up with B; then A commits.

    The reader's sync record is past A's number: it must still look at A's rows once they count.
    """
    with three_stores(tmp_path / "ch") as (a, b, reader):

        def meanwhile() -> None:
            b.write_changed("video", roots(3, audio={2: "b"}))
            settled_while_held(reader)  # A's rows do not count yet: sample 2 only

        with held_at_commit(a, meanwhile, monkeypatch) as commits:
            a.write_changed("video", roots(3, audio={1: "a"}))
        assert commits
        transcript = reader.resolve_update("transcript")
        assert changed_ids(transcript) == [1]
        assert transcript.meta["mode"] == "since last sync"
        catch_up(reader)
        assert both_paths(reader) == dict.fromkeys(KEYS, "in sync")
        assert reader.read("video").sort("sample_uid")["strata_dv__audio"].to_list() == ["a0", "a", "b"]


def test_a_write_settled_while_another_is_in_flight_leaves_the_in_flight_one_to_be_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While A is held, B writes, and the reader writes exactly what its resolve asked for after B's write.

    That write would settle the reader's record past A's number: it must not, or A's rows are never looked at.
    """
    with three_stores(tmp_path / "ch") as (a, b, reader):

        def meanwhile() -> None:
            b.write_changed("video", roots(3, audio={2: "b"}))
            asked = reader.resolve_update("transcript")
            assert changed_ids(asked) == [2]
            reader.write("transcript", rows(asked))

        with held_at_commit(a, meanwhile, monkeypatch) as commits:
            a.write_changed("video", roots(3, audio={0: "a"}))
        assert commits
        transcript = reader.resolve_update("transcript")
        assert changed_ids(transcript) == [0]
        assert transcript.meta["mode"] == "since last sync"
        reader.write("transcript", rows(transcript))
        assert both_paths(reader)["transcript"] == "in sync"


def test_two_writers_of_one_sample_at_every_point_of_a_write_take_two_numbers_and_the_later_wins(
    tmp_path: Path,
) -> None:
    """At each statement of A's write of sample 1, B writes sample 1 too (whole), then a reader catches up.

    Afterwards the two writes have different numbers, the higher one's row is the latest (the same
    for every reader), history keeps both, and the reader's increments equal the full comparison.
    """
    step = 0
    while True:
        with three_stores(tmp_path / f"ch{step}") as (a, b, reader):
            calls = interleave(a, step, lambda: b.write("video", roots(2, audio={1: "b"}).tail(1)))
            a.write("video", roots(2, audio={1: "a"}).tail(1))
            if calls[0] <= step:
                break
            history = reader.read("video", feature_version="all").to_native().filter(pl.col("sample_uid") == 1)
            written = history.filter(pl.col("strata_dv__audio").is_in(["a", "b"])).sort("strata_seq")
            assert written["strata_dv__audio"].sort().to_list() == ["a", "b"], step
            assert written["strata_seq"].n_unique() == 2, step
            winner = written["strata_dv__audio"][-1]
            for store in (a, b, reader):
                latest = store.read("video").to_native().filter(pl.col("sample_uid") == 1)
                assert latest["strata_dv__audio"].to_list() == [winner], step
            assert changed_ids(reader.resolve_update("transcript")) == [1], step
            catch_up(reader)
            assert both_paths(reader) == dict.fromkeys(KEYS, "in sync"), step
        step += 1
    assert step > 5  # every statement of a write was a point B wrote at


def interleave(store: st.ClickHouseStore, step: int, other: Callable[[], object]) -> list[int]:
    """Run ``other()`` before ``store``'s statement number ``step`` (queries, commands and inserts); count them."""
    engine = store.to_native()
    calls = [0]

    def counted(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            if calls[0] == step:
                other()
            calls[0] += 1
            return method(*args)

        return call

    for name in ("query", "command", "insert"):
        setattr(engine, name, counted(getattr(engine, name)))
    return calls


def test_a_write_that_failed_before_its_commit_gives_its_number_back_to_no_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails at its commit lets go of its number: the others' writes settle again at once."""
    with three_stores(tmp_path / "ch") as (a, _, reader):
        engine = a.to_native()
        run = engine.command

        def failing(sql: str) -> None:
            if is_commit(sql):
                raise RuntimeError("the connection dropped")
            run(sql)

        monkeypatch.setattr(engine, "command", failing)
        with pytest.raises(RuntimeError, match="the connection dropped"):
            a.write_changed("video", roots(3, audio={0: "a"}))
        monkeypatch.setattr(engine, "command", run)
        reader.write_changed("video", roots(3, audio={1: "r"}))
        asked = reader.resolve_update("transcript")
        assert changed_ids(asked) == [1]
        reader.write("transcript", rows(asked))
        assert reader.resolve_update("transcript").meta["mode"] == "in sync"
        assert reader.read("video").sort("sample_uid")["strata_dv__audio"].to_list() == ["a0", "r", "a2"]


def is_claim(sql: str) -> bool:
    """Whether ``sql`` is the statement that claims a number (a row in ``strata$claims`` the server numbers)."""
    return "strata$claims" in sql and "generateSnowflakeID" in sql


OPERATIONS_THAT_CLAIM: dict[str, Callable[[st.MetadataStore], object]] = {
    "write": lambda store: store.write_changed("video", roots(3, audio={0: "a"})),
    "soft delete": lambda store: store.delete("video", pl.DataFrame({"sample_uid": [0]}), soft=True),
}


@pytest.mark.parametrize("call", ["query", "command"])
@pytest.mark.parametrize("operation", list(OPERATIONS_THAT_CLAIM))
def test_an_operation_that_failed_right_after_taking_its_number_gives_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str, call: str
) -> None:
    """The engine's next ``call`` after the claim fails once (the claim's own check, or the first rows going in).

    Neither the claim's check nor what comes before the rows may keep the number open: for its
    bound (6 h 5 min) no sync record of the table would settle.
    """
    with three_stores(tmp_path / "ch") as (a, _, reader):
        engine = a.to_native()
        command, original = engine.command, getattr(engine, call)
        claimed: list[str] = []
        failed: list[str] = []

        def watching(sql: str) -> None:
            command(sql)
            if is_claim(sql):
                claimed.append(sql)

        def failing(sql: str) -> Any:
            if claimed and not failed and not is_claim(sql):
                failed.append(sql)
                raise RuntimeError("the connection dropped")
            return (watching if call == "command" else original)(sql)

        monkeypatch.setattr(engine, "command", watching)
        monkeypatch.setattr(engine, call, failing)
        with pytest.raises(RuntimeError, match="the connection dropped"):
            OPERATIONS_THAT_CLAIM[operation](a)
        assert claimed
        monkeypatch.setattr(engine, "command", command)
        monkeypatch.setattr(engine, call, original)
        reader.write_changed("video", roots(3, audio={1: "r"}))
        asked = reader.resolve_update("transcript")
        assert changed_ids(asked) == [1]
        reader.write("transcript", rows(asked))
        assert reader.resolve_update("transcript").meta["mode"] == "in sync"


def as_written_before_claims(path: Path) -> None:
    """Make the store at ``path`` one that strata wrote before claims: video's first write numbered 1 and no claims.

    A write that took 2 and 3 then failed left ``seq`` 3 in the meta table and rows under 3 (never committed).
    """
    with st.ClickHouseStore(path, graph=graph_of()) as store:
        engine = store.to_native()
        video, old = ident("video"), ident("video_old")
        commits, meta = ident("strata$commits"), ident("strata$meta")
        for sql in (
            f"CREATE TABLE {old} AS {video}",
            f"INSERT INTO {old} SELECT * REPLACE (1 AS strata_seq) FROM {video}",  # noqa: S608
            f"INSERT INTO {old} SELECT * REPLACE (3 AS strata_seq, 'lost' AS strata_dv__audio) FROM {video}",  # noqa: S608
            f"DROP TABLE {video}",
            f"RENAME TABLE {old} TO {video}",
            f"TRUNCATE TABLE {commits}",
            f"INSERT INTO {commits} VALUES ('video', 1)",  # noqa: S608
            f"INSERT INTO {meta} VALUES ('seq', '3', 1)",  # noqa: S608
            f"DROP TABLE {ident('strata$claims')}",
            f"TRUNCATE TABLE {ident('strata$sync')}",
        ):
            engine.command(sql)


def test_a_store_written_before_claims_goes_on_its_new_numbers_above_its_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "ch"
    with st.ClickHouseStore(path, graph=graph_of()) as store:
        store.write("video", roots(3))
    as_written_before_claims(path)
    with st.ClickHouseStore(path, graph=graph_of()) as store:
        assert store.read("video", feature_version="all").to_native()["strata_seq"].to_list() == [1, 1, 1]
        assert changed_ids(store.resolve_update("video", samples=roots(3, audio={0: "x"}))) == [0]
        store.write_changed("video", roots(3, audio={0: "x"}))
        history = store.read("video", feature_version="all").to_native().sort("strata_seq")
        assert history["strata_seq"].to_list()[:3] == [1, 1, 1]
        assert len(history) == 4  # the rows under 3 never count
        assert history["strata_seq"][-1] > 3  # above the number the failed write took
        assert sorted(store.read("video").to_native()["strata_dv__audio"].to_list()) == ["a1", "a2", "x"]
        catch_up(store)
        assert both_paths(store) == dict.fromkeys(KEYS, "in sync")


HELD_WRITER = """
import sys
import strata as st
from strata.stores.clickhouse.engine import ServerEngine
from tests.stores.test_conformance import graph_of, roots
run = ServerEngine.command
def paused(self, sql):
    if sql.startswith("INSERT INTO") and "strata$commits" in sql:  # number taken, rows in: the commit waits
        print("before-commit", flush=True)
        sys.stdin.readline()
    return run(self, sql)
ServerEngine.command = paused
with st.ClickHouseStore(**{server!r}, graph=graph_of()) as store:
    store.write_changed("video", roots(3, audio={{1: "a"}}))
print("committed", flush=True)
"""


@pytest.mark.skipif(SERVER_URL is None, reason="STRATA_TEST_CLICKHOUSE_URL is not set: no ClickHouse server to test")
def test_on_a_server_a_write_of_another_process_committed_late_is_seen() -> None:
    """Another process takes its number and waits at its commit; this one writes, catches up, then lets it commit."""
    with server_database(f"strata_test_{os.getpid()}_writers") as server:
        with st.ClickHouseStore(**server, graph=graph_of()) as store:
            sync(store, roots(3))
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(HELD_WRITER.format(server=server))],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "before-commit", process.stderr.read() if process.stderr else ""
        with st.ClickHouseStore(**server, graph=graph_of()) as store:
            store.write_changed("video", roots(3, audio={2: "b"}))
            settled_while_held(store)
            out, err = process.communicate("\n", timeout=DEADLINE_S)
            assert process.returncode == 0, err
            assert out.strip() == "committed"
            assert changed_ids(store.resolve_update("transcript")) == [1]
            catch_up(store)
            assert store.read("video").sort("sample_uid")["strata_dv__audio"].to_list() == ["a0", "a", "b"]
            seqs = store.read("video", feature_version="all")["strata_seq"]
            assert seqs.n_unique() == 3  # the first sync, A and B: three writes of video, three numbers
