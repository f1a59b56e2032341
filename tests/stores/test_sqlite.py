"""The SQLite store beyond the conformance suite: types, hostile names, DuckDB's answers, processes, kills."""

from __future__ import annotations

import datetime as dt
import decimal
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

import strata as st
from strata.errors import WriteError
from tests.stores import graphs
from tests.stores.graphs import lineage_graph
from tests.stores.test_conformance import graph_of, roots, rows, sync

ROOT = Path(__file__).resolve().parents[2]


def test_ids_and_user_columns_read_back_with_the_types_they_were_written_with(tmp_path: Path) -> None:
    graph = graphs.one_root("clip", id_columns=("day", "name"))
    frame = pl.DataFrame(
        {
            "day": [dt.date(2024, 1, 1), dt.date(2024, 2, 29)],
            "name": ["a", "b"],
            "strata_dv__audio": ["x", "y"],
            "count": [1, None],
            "score": [0.5, 2.0],
            "ok": [True, False],
            "at": [dt.datetime(2024, 1, 1, 12, 30, 1, 250), None],  # noqa: DTZ001 - a naive column, kept naive
        }
    )
    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph) as store:
        store.write("clip", frame)
    with st.SQLiteStore(path, graph=graph, read_only=True) as store:
        back = store.read("clip").to_native().sort("name")
        assert back.select(frame.columns).equals(frame)
        assert {c: back.schema[c] for c in frame.columns} == dict(frame.schema)
        inc = store.resolve_update("clip", samples=frame.select("day", "name", "strata_dv__audio"))
        assert inc.is_empty
        assert inc.removed.to_native().schema["day"] == pl.Date


def test_a_hostile_key_and_column_are_stored_and_read_back_intact(tmp_path: Path) -> None:
    hostile = 'it\'s "x"; DROP TABLE select --'
    key = "select/drop-table"  # keys are checked (letters, digits, `_`, `-`): SQL keywords are what gets through
    graph = graphs.one_root(key)
    frame = pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"], hostile: ["v1", "v2"]})
    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph) as store:
        store.write(key, frame)
        store.delete(key, pl.DataFrame({"sample_uid": [2]}))
    with st.SQLiteStore(path, graph=graph) as store:
        back = store.read(key).to_native()
        assert back.select(frame.columns).to_dicts() == frame.head(1).to_dicts()
        assert len(store.read(key, include_deleted=True)) == 2


def increments(store: st.MetadataStore) -> list[dict[str, list[dict[str, object]]]]:
    """Walk the lineage graph through changes, deletes and an expansion; every increment as sorted rows."""
    seen = []

    def note(inc: st.Increment) -> st.Increment:
        seen.append(
            {p: sorted(getattr(inc, p).to_native().to_dicts(), key=str) for p in ("added", "changed", "removed")}
        )
        return inc

    videos = pl.DataFrame({"sample_uid": [1, 2, 3], "strata_dv__frames": ["v1", "v2", "v3"]})
    store.write("video", videos)
    inc = note(store.resolve_update("frames"))
    store.write("frames", inc.added.to_native().join(pl.DataFrame({"frame": [0, 1, 2]}), how="cross"))
    store.write("summary", rows(note(store.resolve_update("summary"))))
    store.write("video", videos.with_columns(strata_dv__frames=pl.Series(["v1", "v2-new", "v3"])))
    store.delete("video", pl.DataFrame({"sample_uid": [3]}))
    inc = note(store.resolve_update("frames"))
    stale = inc.changed.to_native().drop("strata_cause__pixels").join(pl.DataFrame({"frame": [0, 1]}), how="cross")
    store.write("frames", stale)
    store.delete("frames", note(store.resolve_update("frames")).removed.to_native())
    note(store.resolve_update("summary"))
    return seen


def test_duckdb_and_sqlite_give_identical_increments_and_data_versions(tmp_path: Path) -> None:
    answers = []
    for store in (
        st.DuckDBStore(tmp_path / "meta.duckdb", graph=lineage_graph()),
        st.SQLiteStore(tmp_path / "meta.sqlite", graph=lineage_graph()),
    ):
        with store:
            answers.append(increments(store))
    assert answers[0] == answers[1]
    synced = []
    for store in (st.DuckDBStore(graph=graph_of()), st.SQLiteStore(tmp_path / "three.sqlite", graph=graph_of())):
        with store:
            synced.append(sync_graph(store))
    assert synced[0] == synced[1]


def sync_graph(store: st.MetadataStore) -> dict[str, list[dict[str, object]]]:
    """Three features with two deps each (graph_of) synced after a partial change: the data versions."""
    sync(store, st_roots := roots(5))
    sync(store, st_roots.with_columns(strata_dv__audio=pl.Series(["a0", "x", "a2", "a3", "a4"])))
    return {
        k: sorted(store.read(k).to_native().select("sample_uid", f"strata_dv__{f}").to_dicts(), key=str)
        for k, f in (("transcript", "text"), ("embedding", "vector"))
    }


def run_other_process(path: Path, code: str, *, stdin: int | None = None) -> subprocess.Popen[str]:
    script = textwrap.dedent(
        f"""
        import sys
        import polars as pl
        import strata as st
        from tests.stores.test_conformance import graph_of, roots, rows, sync
        store = st.SQLiteStore({str(path)!r}, graph=graph_of())
        """
    ) + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin
    )


@pytest.mark.parametrize(
    "frame_ids",
    [
        pl.Series("frame", [True, False], pl.Boolean),
        pl.Series("frame", [1e20, 0.5, 2.0, -2.5], pl.Float64),
        pl.Series("frame", [0.1, 2.5], pl.Float32),
    ],
    ids=lambda s: str(s.dtype),
)
def test_an_aggregation_over_boolean_or_float_ids_hashes_as_duckdb_and_memory_do(
    frame_ids: pl.Series, tmp_path: Path
) -> None:
    """The ids folded into an aggregation's data version are text the way DuckDB and Polars write them."""
    versions = {}
    for kind in ("memory", "duckdb", "sqlite"):
        graph = st.FeatureGraph()
        with graph.use():
            graphs.summary(graphs.frames(None, "f"), "g")

        store: st.MetadataStore
        if kind == "memory":
            store = st.InMemoryStore(graph=graph)
        elif kind == "duckdb":
            store = st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph)
        else:
            store = st.SQLiteStore(tmp_path / "meta.sqlite", graph=graph)
        frames = pl.DataFrame([pl.Series("sample_uid", [1] * len(frame_ids)), frame_ids])
        with store:
            store.write("frames", frames.with_columns(pl.lit("v").alias("strata_dv__f")))
            versions[kind] = store.resolve_update("summary").added.to_native()["strata_dv__g"].to_list()
    assert versions["sqlite"] == versions["duckdb"] == versions["memory"]


def test_ids_with_a_time_zone_read_back_as_the_same_instants(tmp_path: Path) -> None:
    """A zoned datetime id is kept as its UTC time and read back zoned, as DuckDB gives it: not a naive wall clock."""
    graph = graph_of()
    at = pl.Series("sample_uid", [dt.datetime(2026, 1, 1, 12), dt.datetime(2026, 6, 1, 12)])  # noqa: DTZ001 - zoned below
    frame = pl.DataFrame([at.dt.replace_time_zone("Europe/Paris")]).with_columns(
        strata_dv__audio=pl.lit("a"), strata_dv__frames=pl.lit("f")
    )
    instants = frame["sample_uid"].dt.convert_time_zone("UTC").to_list()
    with st.SQLiteStore(tmp_path / "meta.sqlite", graph=graph) as store:
        store.write("video", frame)
        back = store.read("video").to_native().sort("sample_uid")["sample_uid"]
        assert back.dtype.time_zone is not None
        assert back.dt.convert_time_zone("UTC").to_list() == instants
        assert store.resolve_update("video", samples=frame).is_empty
        with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph) as duck:
            duck.copy_from(store, ["video"])
            copied = duck.read("video").to_native().sort("sample_uid")["sample_uid"]
            assert copied.dt.convert_time_zone("UTC").to_list() == instants
            assert duck.resolve_update("video", samples=frame).is_empty


def test_two_processes_take_turns_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph_of()) as store:
        sync(store, roots(4))
        assert store.resolve_update("embedding").meta["mode"] == "in sync"
        other = run_other_process(  # writes while this store stays open: WAL lets them take turns
            path,
            """
            with store:
                store.write_changed("video", roots(5, audio={0: "x"}))
                sync(store, roots(5, audio={0: "x"}))
            """,
        )
        _, err = other.communicate(timeout=120)
        assert other.returncode == 0, err
        assert len(store.read("embedding")) == 5
        assert store.resolve_update("embedding").is_empty
        store.write_changed("video", roots(5, audio={0: "x", 1: "y"}))
        assert sorted(store.resolve_update("transcript").changed.to_native()["sample_uid"]) == [1]


def history(store: st.SQLiteStore) -> list[tuple[object, ...]]:
    """Every row of ``video`` ever written, latest and superseded, in order, read through the raw connection."""
    both = 'SELECT * FROM "video" UNION ALL SELECT * FROM "video$history" ORDER BY "strata_seq", "sample_uid"'
    return store.to_native().execute(both).fetchall()


def test_a_process_killed_mid_write_leaves_all_of_it_or_none(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph_of()) as store:
        sync(store, roots(3))
        before = history(store)
    writer = run_other_process(  # pauses inside its transaction, after its rows went in, until killed
        path,
        """
        run = store._run
        def paused(query, params=()):
            out = run(query, params)
            if query.startswith('INSERT INTO "video"'):
                print("mid-write", flush=True)
                sys.stdin.readline()
            return out
        store._run = paused
        with store:
            store.write_changed("video", roots(2000, audio={0: "x"}))
        """,
        stdin=subprocess.PIPE,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "mid-write"
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=60)  # reaps it and closes its pipes
    assert writer.returncode == -signal.SIGKILL
    with st.SQLiteStore(path, graph=graph_of()) as store:
        after = history(store)
        assert after == before
        assert store.resolve_update("embedding").is_empty
        assert store.write_changed("video", roots(2000, audio={0: "x"})) == {
            "added": 1997,
            "changed": 1,
            "unchanged": 2,
        }
        assert len(store.read("video")) == 2000


def test_a_read_only_store_creates_nothing_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph_of(), read_only=True) as reader:
        assert reader.read("video") is None or len(reader.read("video")) == 0
        assert len(reader.resolve_update("video", samples=roots(2)).added) == 2
    assert list(tmp_path.iterdir()) == []
    with st.SQLiteStore(path, graph=graph_of()) as store:
        sync(store, roots(3))
    before = path.read_bytes()
    with st.SQLiteStore(path, graph=graph_of(), read_only=True) as reader:
        assert reader.resolve_update("embedding").is_empty
        assert len(reader.read("embedding")) == 3
    assert path.read_bytes() == before


def test_an_unsigned_id_beyond_sqlites_integers_is_refused_in_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class Tick(st.Feature, spec=st.FeatureSpec("tick", id_columns=("n",), fields=["v"])):
            pass

    small = pl.DataFrame({"n": [1, 2]}, schema={"n": pl.UInt64}).with_columns(strata_dv__v=pl.lit("a"))
    huge = pl.DataFrame({"n": [3, 2**64 - 1]}, schema={"n": pl.UInt64}).with_columns(strata_dv__v=pl.lit("b"))
    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph) as store:
        store.write("tick", small)
        with pytest.raises(WriteError) as caught:
            store.write("tick", huge)
        assert "`n`" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert sorted(store.read("tick").to_native()["n"].to_list()) == [1, 2]


def test_a_decimal_beyond_the_digits_sqlite_keeps_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class Price(st.Feature, spec=st.FeatureSpec("price", id_columns=("n",), fields=["v"])):
            pass

    def prices(*values: str) -> pl.DataFrame:
        column = pl.Series("amount", [decimal.Decimal(v) for v in values], pl.Decimal(38, 2))
        return pl.DataFrame({"n": list(range(len(values))), "strata_dv__v": ["a"] * len(values)}).with_columns(column)

    path = tmp_path / "meta.sqlite"
    with st.SQLiteStore(path, graph=graph) as store:
        store.write("price", prices("1.50", "1234567890123.45"))
        with pytest.raises(WriteError) as caught:
            store.write("price", prices("1.50", "12345678901234.56"))
        assert "`amount`" in str(caught.value)
        assert "SQLite" in str(caught.value)
        back = store.read("price").to_native().sort("n")
        assert back["amount"].to_list() == [decimal.Decimal("1.50"), decimal.Decimal("1234567890123.45")]
        assert back.schema["amount"] == pl.Decimal(38, 2)
