"""The PostgreSQL store beyond the conformance suite: types, hostile names, DuckDB's answers, bad input, faults."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl
import psycopg
import pytest

import strata as st
from strata.errors import RuntimeFailure
from tests.servers import PostgresServer, free_port, postgres_bin_dir, running_postgres
from tests.stores import graphs
from tests.stores.graphs import lineage_graph
from tests.stores.test_conformance import graph_of
from tests.stores.test_sqlite import increments, sync_graph

POLL_TIMEOUT_S = 30.0


def test_ids_and_user_columns_read_back_with_the_types_they_were_written_with(postgres_schema: tuple[str, str]) -> None:
    uri, schema = postgres_schema
    graph = graphs.one_root("clip", id_columns=("day", "name"))
    frame = pl.DataFrame(
        {
            "day": [dt.date(2024, 1, 1), dt.date(2024, 2, 29)],
            "name": ["a", ""],
            "strata_dv__audio": ["x", 'y,"\n'],
            "count": [1, None],
            "big": pl.Series([2**64 - 1, 0], dtype=pl.UInt64),
            "small": pl.Series([-128, 127], dtype=pl.Int8),
            "score": [0.5, float("inf")],
            "tiny": pl.Series([0.1, 1e-7], dtype=pl.Float32),
            "ok": [True, False],
            "at": [dt.datetime(2024, 1, 1, 12, 30, 1, 250), None],  # noqa: DTZ001 - a naive column, kept naive
            "text": [None, "null"],
        }
    )
    with st.PostgresStore(uri, schema=schema, graph=graph) as store:
        store.write("clip", frame)
    with st.PostgresStore(uri, schema=schema, graph=graph, read_only=True) as store:
        back = store.read("clip").to_native().sort("name")
        assert back.select(frame.columns).equals(frame.sort("name"))
        assert {c: back.schema[c] for c in frame.columns} == dict(frame.schema)
        inc = store.resolve_update("clip", samples=frame.select("day", "name", "strata_dv__audio"))
        assert inc.is_empty
        assert inc.removed.to_native().schema["day"] == pl.Date


def test_a_hostile_key_and_column_are_stored_and_read_back_intact(postgres_schema: tuple[str, str]) -> None:
    uri, schema = postgres_schema
    hostile = 'it\'s "x"; DROP TABLE select -- %s'
    key = "select/drop-table"  # keys are checked (letters, digits, `_`, `-`): SQL keywords are what gets through
    graph = graphs.one_root(key)
    frame = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"], hostile: ["v1", "v';2"]})
    with st.PostgresStore(uri, schema=f'{schema} "; x', graph=graph) as store:
        store.write(key, frame)
        store.delete(key, pl.DataFrame({"sample_uid": [2]}))
    with st.PostgresStore(uri, schema=f'{schema} "; x', graph=graph) as store:
        back = store.read(key).to_native()
        assert back.select(frame.columns).to_dicts() == frame.head(1).to_dicts()
        assert len(store.read(key, include_deleted=True)) == 2
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute(f'DROP SCHEMA "{schema} ""; x" CASCADE')


def test_duckdb_and_postgres_give_identical_increments_and_data_versions(postgres_schema: tuple[str, str]) -> None:
    """Partial-field changes, deletions, an expansion, an aggregation, and three features with two deps each."""
    uri, schema = postgres_schema
    answers = []
    for store in (st.DuckDBStore(graph=lineage_graph()), st.PostgresStore(uri, schema=schema, graph=lineage_graph())):
        with store:
            answers.append(increments(store))
    assert answers[0] == answers[1]
    synced = []
    for store in (st.DuckDBStore(graph=graph_of()), st.PostgresStore(uri, schema=schema + "_b", graph=graph_of())):
        with store:
            synced.append(sync_graph(store))
    assert synced[0] == synced[1]


@pytest.mark.parametrize(
    "frame_ids",
    [
        pl.Series("frame", [True, False], pl.Boolean),
        pl.Series("frame", [1e20, 1e-7, 1e15, 1e16, 123456.75, 0.5, 2.0, -2.5, 0.0, float("inf")], pl.Float64),
        pl.Series("frame", [5.905711295312978e16, 1e-300, -1.5e300, 5e-324, 1.7976931348623157e308], pl.Float64),
        pl.Series("frame", [0.1, 2.5, 1e10, 1e-7], pl.Float32),
        pl.Series("frame", [1173392.25, -705937280.0, -34219448.0, 1e-45, 3.4028234663852886e38], pl.Float32),
        pl.Series("frame", [dt.date(2024, 2, 29), dt.date(1999, 1, 1)], pl.Date),
        pl.Series("frame", [dt.datetime(2024, 1, 1, 0, 0, 0, 500000), dt.datetime(2024, 1, 1)], pl.Datetime("us")),  # noqa: DTZ001
        pl.Series("frame", [-3, 2**40], pl.Int64),
        pl.Series("frame", [2**64 - 1, 7], pl.UInt64),
        pl.Series("frame", ["a b", "it's", ""], pl.String),
    ],
    ids=lambda s: f"{s.dtype}-{s[0]}",
)
def test_an_aggregation_hashes_its_ids_as_duckdb_does(frame_ids: pl.Series, postgres_schema: tuple[str, str]) -> None:
    """The ids folded into an aggregation's data version are text as DuckDB's ``CAST(... AS VARCHAR)`` writes it."""
    uri, schema = postgres_schema
    versions = {}
    for kind in ("duckdb", "postgres"):
        graph = st.FeatureGraph()
        with graph.use():
            graphs.summary(graphs.frames(None, "f"), "g")

        store: st.MetadataStore = (
            st.DuckDBStore(graph=graph) if kind == "duckdb" else st.PostgresStore(uri, schema=schema, graph=graph)
        )
        frames = pl.DataFrame([pl.Series("sample_uid", [1] * len(frame_ids)), frame_ids])
        with store:
            store.write("frames", frames.with_columns(pl.lit("v").alias("strata_dv__f")))
            versions[kind] = store.resolve_update("summary").added.to_native()["strata_dv__g"].to_list()
    assert versions["postgres"] == versions["duckdb"]


def test_ids_with_a_time_zone_read_back_as_the_same_instants(postgres_schema: tuple[str, str]) -> None:
    uri, schema = postgres_schema
    graph = graph_of()
    at = pl.Series("sample_uid", [dt.datetime(2026, 1, 1, 12), dt.datetime(2026, 6, 1, 12)])  # noqa: DTZ001 - zoned below
    frame = pl.DataFrame([at.dt.replace_time_zone("Europe/Paris")]).with_columns(
        strata_dv__audio=pl.lit("a"), strata_dv__frames=pl.lit("f")
    )
    instants = frame["sample_uid"].dt.convert_time_zone("UTC").to_list()
    with st.PostgresStore(uri, schema=schema, graph=graph) as store:
        store.write("video", frame)
        back = store.read("video").to_native().sort("sample_uid")["sample_uid"]
        assert back.dt.convert_time_zone("UTC").to_list() == instants
        assert store.resolve_update("video", samples=frame).is_empty


# -- bad input ---------------------------------------------------------------------------


def one_line_naming(exc: pytest.ExceptionInfo[RuntimeFailure], name: str, *hidden: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert f"`{name}`" in text
    for secret in hidden:
        assert secret not in text
    return text


def test_an_unreachable_server_is_one_line_naming_the_store() -> None:
    store = st.PostgresStore(f"postgresql://someone:pw-unreachable-77@127.0.0.1:{free_port()}/db", name="team")
    with pytest.raises(RuntimeFailure) as exc:
        store.__enter__()
    assert "connection failed while connecting" in one_line_naming(exc, "team", "pw-unreachable-77")


def test_wrong_credentials_are_one_line_without_the_password(postgres_server: PostgresServer) -> None:
    secret = "Wr0ng-Secret-Value-42"
    store = st.PostgresStore(postgres_server.dsn(password=secret))
    with pytest.raises(RuntimeFailure) as exc:
        store.__enter__()
    text = one_line_naming(exc, f"postgres store at {postgres_server.host}:{postgres_server.port}/postgres", secret)
    assert "password authentication failed" in text


def test_a_table_dropped_behind_the_stores_back_is_one_line(postgres_schema: tuple[str, str]) -> None:
    uri, schema = postgres_schema
    with st.PostgresStore(uri, schema=schema, graph=graph_of(), name="team") as store:
        store.write("video", pl.DataFrame({"sample_uid": [1], "strata_dv__audio": ["a"], "strata_dv__frames": ["f"]}))
    with psycopg.connect(uri, autocommit=True) as con:
        con.execute(f'DROP TABLE "{schema}"."video"')
    with (
        st.PostgresStore(uri, schema=schema, graph=graph_of(), name="team") as store,
        pytest.raises(RuntimeFailure) as exc,
    ):
        store.resolve_update("transcript")
    assert "table `video` is missing" in one_line_naming(exc, "team")


# -- faults ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of this module's own, which its tests stop and start (the session's server goes on)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed")
    with running_postgres(bin_dir, durable=True) as server:  # a commit before a stop must survive it
        yield server


def blocked_on(server: PostgresServer, table: str, action: Callable[[], Any]) -> BaseException | None:
    """Run ``action`` in a thread until it waits for a lock on ``table`` (held here), stop the server; its error."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    holder = psycopg.connect(server.dsn(), autocommit=True)
    try:
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + POLL_TIMEOUT_S
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        with psycopg.connect(server.dsn(), autocommit=True) as watcher:
            while not watcher.execute(waiting).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the action never waited for the lock"
                time.sleep(0.02)
        server.stop()
    finally:
        holder.close()
    thread.join(POLL_TIMEOUT_S)
    server.start()
    return outcome[0] if outcome else None


def test_a_server_stopped_mid_write_keeps_none_of_it_and_a_retry_succeeds(own_server: PostgresServer) -> None:
    videos = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"], "strata_dv__frames": ["f", "g"]})
    with st.PostgresStore(own_server.dsn(), graph=graph_of(), name="team") as store:
        store.write("video", videos)
    changed = videos.with_columns(strata_dv__audio=pl.Series(["a2", "b2"]))
    store = st.PostgresStore(own_server.dsn(), graph=graph_of(), name="team")
    store.__enter__()
    error = blocked_on(own_server, '"video"', lambda: store.write("video", changed))  # blocks moving rows to history
    store.__exit__(None, None, None)
    assert isinstance(error, RuntimeFailure)
    assert "connection failed while running a query" in str(error)
    assert "\n" not in str(error)
    with st.PostgresStore(own_server.dsn(), graph=graph_of(), name="team") as store:
        assert sorted(store.read("video").to_native()["strata_dv__audio"]) == ["a", "b"]  # none of it
        assert store.to_native().execute('SELECT count(*) FROM "video$history"').fetchone() == (0,)
        store.write("video", changed)
        assert sorted(store.read("video").to_native()["strata_dv__audio"]) == ["a2", "b2"]


def test_a_server_stopped_mid_resolve_is_one_line_and_a_retry_succeeds(own_server: PostgresServer) -> None:
    videos = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"], "strata_dv__frames": ["f", "g"]})
    with st.PostgresStore(own_server.dsn(), schema="resolve", graph=graph_of(), name="team") as store:
        store.write("video", videos)
    store = st.PostgresStore(own_server.dsn(), schema="resolve", graph=graph_of(), name="team")
    store.__enter__()
    error = blocked_on(own_server, '"resolve"."video"', lambda: store.resolve_update("transcript"))
    store.__exit__(None, None, None)
    assert isinstance(error, RuntimeFailure)
    assert "\n" not in str(error)
    with st.PostgresStore(own_server.dsn(), schema="resolve", graph=graph_of(), name="team") as store:
        assert len(store.resolve_update("transcript").added) == 2


def at_once(count: int, work: Callable[[int, threading.Barrier], None]) -> list[str]:
    """``work(index, start)`` in ``count`` threads (each waits on ``start`` where it means to race); their errors."""
    start = threading.Barrier(count)
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            work(index, start)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(str(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(POLL_TIMEOUT_S)
    return errors


def test_writers_opening_a_new_store_at_once_take_turns(postgres_schema: tuple[str, str]) -> None:
    """Four connections create the same schema, tables and function, then write: no race, every write kept."""
    uri, schema = postgres_schema

    def writer(index: int, start: threading.Barrier) -> None:
        start.wait(POLL_TIMEOUT_S)
        with st.PostgresStore(uri, schema=schema, graph=graph_of()) as store:
            frame = pl.DataFrame({"sample_uid": [index], "strata_dv__audio": ["a"], "strata_dv__frames": ["f"]})
            store.write("video", frame)

    assert at_once(4, writer) == []
    with st.PostgresStore(uri, schema=schema, graph=graph_of()) as store:
        assert sorted(store.read("video").to_native()["sample_uid"]) == [0, 1, 2, 3]


def test_writers_needing_the_same_new_types_at_once_take_turns(postgres_schema: tuple[str, str]) -> None:
    """Eight stores open, then write at once columns of the types PostgreSQL lacks: none trips over another's."""
    uri, schema = postgres_schema
    with st.PostgresStore(uri, schema=schema, graph=graph_of()):
        pass  # the schema and bookkeeping exist: the writers race only for the types

    def writer(index: int, start: threading.Barrier) -> None:
        with st.PostgresStore(uri, schema=schema, graph=graph_of()) as store:
            frame = pl.DataFrame(
                {
                    "sample_uid": [index],
                    "strata_dv__audio": ["a"],
                    "strata_dv__frames": ["f"],
                    "big": pl.Series([2**64 - 1], dtype=pl.UInt64),
                    "small": pl.Series([-1], dtype=pl.Int8),
                    "nested": [[index]],
                }
            )
            start.wait(POLL_TIMEOUT_S)
            store.write("video", frame)

    assert at_once(8, writer) == []
    with st.PostgresStore(uri, schema=schema, graph=graph_of()) as store:
        back = store.read("video").to_native()
    assert sorted(back["sample_uid"]) == list(range(8))
    assert back["big"].to_list() == [2**64 - 1] * 8
