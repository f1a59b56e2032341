"""The ClickHouse store (chDB here; a server when STRATA_TEST_CLICKHOUSE_URL is set): what the conformance suite does not say.

Its data versions and increments are DuckDB's, byte for byte, on the same data (ids of several types
folded into an aggregation's versions, partial-field changes, deletions, a feature of three deps);
hostile column names go in and come back intact; a write that never committed is invisible; a server
that cannot be reached is one line naming the store, its password never shown.
"""

# ruff: noqa: SLF001, DTZ001 - the commit bookkeeping is what is under test; naive datetimes are an id type
from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import polars as pl
import pytest

import strata as st
from strata.resolve.plan import stored_code_version
from strata.resolve.sql import ident
from tests.helpers import Cli
from tests.stores.graphs import frames, summary, transcript, video

SERVER_URL = os.environ.get("STRATA_TEST_CLICKHOUSE_URL")
"""Read at import: the suite's autouse fixture clears STRATA_* variables inside tests."""

CHILDREN: dict[str, tuple[pl.DataType, list[Any]]] = {
    "int": (pl.Int64(), [3, -1, 2**40]),
    "text": (pl.String(), ["a'b", 'c"d', "e; DROP TABLE x"]),
    "double": (pl.Float64(), [1e-7, 1e20, 0.5, -2.0, 123456.789, 1e16]),
    "float": (pl.Float32(), [0.1, 3.0, 1e-5, 16777216.0, 2.5e20]),
    "datetime": (
        pl.Datetime("us"),
        [
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
            dt.datetime(2024, 1, 2, 3, 4, 5),
            dt.datetime(2024, 1, 2, 3, 4, 5, 100000),
        ],
    ),
    "zoned": (
        pl.Datetime("us", "UTC"),
        [dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC), dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC)],
    ),
    "bool": (pl.Boolean(), [True, False]),
    "date": (pl.Date(), [dt.date(2024, 2, 29), dt.date(1970, 1, 1)]),
}


def graph_of() -> st.FeatureGraph:
    """video -> transcript; video -> frames (expansion) -> summary (aggregation); report of video, transcript, summary."""
    graph = st.FeatureGraph()
    with graph.use():
        source = video("audio", "frames")
        text = transcript(source)
        means = summary(frames(source, "pixels"))

        class Report(st.Feature, spec=st.FeatureSpec("report", deps=[source, text, means], fields=["a", "b"])):
            pass

    return graph


def samples(uids: list[str], **dvs: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_uid": uids,
            "strata_dv__audio": [dvs.get("audio", {}).get(u, f"a-{u}") for u in uids],
            "strata_dv__frames": [dvs.get("frames", {}).get(u, f"f-{u}") for u in uids],
        }
    )


def snapshot(inc: st.Increment) -> dict[str, list[str]]:
    """The parts of an increment as sorted rows of sorted columns (types included, by value)."""
    out = {}
    for name in ("added", "changed", "removed"):
        frame = getattr(inc, name).to_native()
        frame = frame.select(sorted(frame.columns))
        out[name] = sorted(map(repr, frame.rows()))
        out[name + " schema"] = [repr(frame.schema)]
    return out


def catch_up(store: st.MetadataStore, key: str, children: list[Any], log: list[Any]) -> None:
    """Resolve ``key``, log the increment, and write what it asks for (frames: one row per child)."""
    inc = store.resolve_update(key)
    log.append((key, snapshot(inc)))
    rows = pl.concat(
        [inc.added.to_native(), inc.changed.to_native().drop([c for c in inc.changed.columns if "cause" in c])],
        how="vertical_relaxed",
    )
    if key == "frames":
        rows = rows.join(pl.DataFrame({"frame": children}), how="cross")
    if len(rows):
        store.write(key, rows)
    if len(inc.removed):
        store.delete(key, inc.removed.to_native())


def scenario(store: st.MetadataStore, dtype: pl.DataType, children: list[Any]) -> list[Any]:
    """One history of writes, changes and deletions; every increment and every stored data version."""
    log: list[Any] = []
    typed = pl.Series("frame", children, dtype=dtype).to_list()
    downstream = ("transcript", "frames", "summary", "report")

    def round_trip(roots: pl.DataFrame) -> None:
        inc = store.resolve_update("video", samples=roots)
        log.append(("video", snapshot(inc)))
        store.write_changed("video", roots)
        for key in downstream:
            catch_up(store, key, typed, log)
        for key in ("video", *downstream):
            versions = store.read(key).select(
                sorted(c for c in store.read(key).columns if "strata_dv" in c or "strata_in" in c)
            )
            log.append((key, sorted(map(repr, versions.rows()))))

    uids = ["s0", "s1", "s'2", "s 3"]
    round_trip(samples(uids))
    round_trip(samples(uids, audio={"s1": "changed"}))  # a partial-field change: audio only
    round_trip(samples(uids, frames={"s0": "changed"}))  # frames only
    store.delete(
        "frames",
        pl.DataFrame({"sample_uid": ["s1"], "frame": typed[:1]}, schema={"sample_uid": pl.String, "frame": dtype}),
    )
    for key in ("summary", "report"):
        catch_up(store, key, typed, log)
    round_trip(samples(uids[:3]))  # a sample removed at the root
    store.delete("video", pl.DataFrame({"sample_uid": ["s0"]}), soft=False)
    for key in downstream:
        catch_up(store, key, typed, log)
    return log


@pytest.mark.parametrize("kind", list(CHILDREN))
def test_versions_and_increments_are_duckdbs(tmp_path: Path, kind: str) -> None:
    dtype, children = CHILDREN[kind]
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as duck:
        expected = scenario(duck, dtype, children)
    with st.ClickHouseStore(tmp_path / "ch", graph=graph_of()) as ch:
        got = scenario(ch, dtype, children)
    assert len(got) == len(expected)
    for (key, want), (_, have) in zip(expected, got, strict=True):
        assert have == want, key


HOSTILE = ['it\'s "x"; DROP TABLE video --', "select", "a column", "from;where", "ü ñ"]


def test_hostile_columns_are_written_and_read_back_intact(tmp_path: Path) -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("select/drop-table", fields=["from"])):
            pass

        class Where(st.Feature, spec=st.FeatureSpec("where", deps=[Video], fields=["order"])):
            pass

    frame = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__from": ["x", "y"], **{c: [c, None] for c in HOSTILE}})
    with st.ClickHouseStore(tmp_path / "ch", graph=graph) as store:
        store.write("select/drop-table", frame)
        back = store.read("select/drop-table").sort("sample_uid")
        for column in HOSTILE:
            assert back[column].to_list() == [column, None]
        samples = frame.select("sample_uid", "strata_dv__from")
        assert store.resolve_update("select/drop-table", samples=samples).is_empty
        inc = store.resolve_update("where")
        assert sorted(inc.added.to_native()["sample_uid"].to_list()) == [1, 2]
        store.write("where", inc.added.to_native())
        assert store.resolve_update("where").is_empty


def test_backslashes_in_names_values_and_code_versions_are_kept_intact(tmp_path: Path) -> None:
    """ClickHouse reads a backslash in quoted SQL text as an escape: the store doubles it, and keeps it."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", id_columns=["id\\"], fields=["audio"])):
            pass

        class Transcript(
            st.Feature,
            spec=st.FeatureSpec(
                "transcript",
                id_columns=["id\\"],
                deps=[Video],
                fields=[st.FieldSpec("text", "v\\1", [st.FieldDep(Video, ["audio"])])],
            ),
        ):
            pass

    rows = pl.DataFrame({"id\\": ["a\\", "\\'"], "strata_dv__audio": ["x", "y"], "a\\b": ["c\\d", "\\"]})
    with st.ClickHouseStore(tmp_path / "ch", graph=graph, name="big") as store:
        store.write("video", rows)
        assert store.read("video").to_native().select(rows.columns).sort("id\\").equals(rows.sort("id\\"))
        added = store.resolve_update("transcript").added.to_native()
        assert sorted(added["id\\"].to_list()) == sorted(rows["id\\"].to_list())
        store.write("transcript", added)
        stored = stored_code_version("v\\1", tuple(graph.field_inputs("transcript", "text")))
        assert store.read("transcript")["strata_cv__text"].to_list() == [stored, stored]
        assert store.resolve_update("transcript").is_empty


def test_rows_of_a_write_never_committed_are_not_seen(tmp_path: Path) -> None:
    """A write that dies after its rows and before its commit row: no read, resolve or number counts them."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio"])):
            pass

        class Transcript(st.Feature, spec=st.FeatureSpec("transcript", deps=[Video], fields=["text"])):
            pass

    with st.ClickHouseStore(tmp_path / "ch", graph=graph) as store:
        store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["x", "y"]}))
        before = store.read("video", feature_version="all")
        seq = store._max_seq("video")
        assert seq is not None
        taken = store._claim("video").seq  # what a write killed before its commit leaves: a number taken, rows under it
        assert taken > seq
        engine = store.to_native()
        columns = ", ".join(ident(c) for c in before.columns)
        picked = columns.replace(ident("strata_seq"), str(taken))
        flags = f"{ident('strata$kind')}, {ident('strata$whole')}"
        engine.command(f"INSERT INTO video ({columns}, {flags}) SELECT {picked}, 0, false FROM video")  # noqa: S608
        assert store.read("video", feature_version="all").rows() == before.rows()
        assert store._max_seq("video") == seq
        assert len(store.resolve_update("transcript").added) == 2
        store.write("video", pl.DataFrame({"sample_uid": [3], "strata_dv__audio": ["z"]}))  # a retry takes a new number
        retried = store._max_seq("video")
        assert retried is not None
        assert retried > taken
        assert sorted(store.read("video")["sample_uid"].to_list()) == [1, 2, 3]
        assert len(store.read("video", feature_version="all")) == 3


def test_two_embedded_directories_in_one_process_take_turns_and_keep_their_own_rows(tmp_path: Path) -> None:
    """chDB opens one directory at a time: stores on two (a copy between them) take turns, each with its rows."""
    rows = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"], "strata_dv__frames": ["c", "d"]})
    with st.ClickHouseStore(tmp_path / "one", graph=graph_of()) as one:
        one.write("video", rows)
        with st.ClickHouseStore(tmp_path / "two", graph=graph_of()) as two:
            assert two.copy_from(one)["video"] == 2
            two.write("video", rows.with_columns(sample_uid=pl.lit(3)).head(1))
            one.delete("video", rows.head(1), soft=False)
            assert sorted(one.read("video")["sample_uid"].to_list()) == [2]
            assert sorted(two.read("video")["sample_uid"].to_list()) == [1, 2, 3]
            assert one.resolve_update("transcript").counts() == {"added": 1, "changed": 0, "removed": 0}
        assert sorted(one.read("video")["sample_uid"].to_list()) == [2]
    with st.ClickHouseStore(tmp_path / "two", graph=graph_of()) as two:
        assert sorted(two.read("video")["sample_uid"].to_list()) == [1, 2, 3]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_is_one_line_naming_the_store_without_the_password(
    strata: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    (project / "strata.yml").write_text(
        (project / "strata.yml").read_text(encoding="utf-8")
        + "stores:\n"
        + f'  big: {{type: clickhouse, host: 127.0.0.1, port: {port}, username: strata, password: "${{CH_PASSWORD}}"}}\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CH_PASSWORD", "s3cr3t-pw")
    result = strata("metadata", "compact", "--keep", "1", "--store", "big")
    assert result.code == 1, result.out + result.err
    assert "big" in result.err
    assert "s3cr3t-pw" not in result.err + result.out
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_path_and_host_together_are_refused_naming_the_line(strata: Cli, project: Path) -> None:
    (project / "strata.yml").write_text(
        (project / "strata.yml").read_text(encoding="utf-8")
        + "stores:\n  big: {type: clickhouse, host: h, path: ch}\n",
        encoding="utf-8",
    )
    result = strata("metadata", "compact", "--keep", "1", "--store", "big")
    assert result.code == 2
    assert "strata.yml:" in result.err
    assert "`big`" in result.err


@contextmanager
def server_database(name: str) -> Iterator[dict[str, Any]]:
    """The options of a store in a database ``name`` of its own on the test server, dropped afterwards."""
    assert SERVER_URL is not None
    url = urlparse(SERVER_URL)
    server = {"host": url.hostname, "port": url.port or 8123, "username": url.username, "password": url.password}
    with st.ClickHouseStore(**server) as admin:  # type: ignore[arg-type]
        admin.to_native().command(f"CREATE DATABASE IF NOT EXISTS {ident(name)}")
    try:
        yield {**server, "database": name}
    finally:
        with st.ClickHouseStore(**server) as admin:  # type: ignore[arg-type]
            admin.to_native().command(f"DROP DATABASE IF EXISTS {ident(name)}")


@pytest.mark.skipif(SERVER_URL is None, reason="STRATA_TEST_CLICKHOUSE_URL is not set: no ClickHouse server to test")
def test_a_server_resolves_as_duckdb_does(tmp_path: Path) -> None:
    with server_database(f"strata_test_{os.getpid()}") as server:
        dtype, children = CHILDREN["double"]
        with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as duck:
            expected = scenario(duck, dtype, children)
        with st.ClickHouseStore(**server, graph=graph_of()) as ch:
            assert scenario(ch, dtype, children) == expected


def test_a_read_only_store_on_a_missing_directory_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here"
    roots = samples(["s0", "s1"])
    with st.ClickHouseStore(path, graph=graph_of(), read_only=True) as store:
        assert not store.has_feature("video")
        assert len(store.resolve_update("video", samples=roots).added) == 2
        assert len(store.resolve_update("transcript").added) == 0
    assert not path.exists()


def test_a_column_another_connection_adds_is_read_and_kept_by_a_delete(tmp_path: Path) -> None:
    with (
        st.ClickHouseStore(tmp_path / "ch", graph=graph_of()) as first,
        st.ClickHouseStore(tmp_path / "ch", graph=graph_of()) as second,
    ):
        first.write("video", samples(["s0", "s1"]))
        assert "note" not in first.read("video").columns
        second.write("video", samples(["s1"]).with_columns(note=pl.lit("n")))
        assert first.read("video").sort("sample_uid")["note"].to_list() == [None, "n"]
        first.delete("video", pl.DataFrame({"sample_uid": ["s1"]}))
        gone = first.read("video", include_deleted=True).to_native().filter(pl.col("sample_uid") == "s1")
        assert gone["note"].to_list() == ["n"]
