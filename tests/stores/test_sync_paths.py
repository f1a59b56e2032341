"""The sync-record path and the full comparison give the same increments, whatever happened in between.

A store answers "what changed since the last sync" from its bookkeeping (each table's last
sequence number) and from what it knows about its connection (which tables exist). These tests
mix both paths on one store — definition changes, hard deletes, rows written without a resolve,
another connection or process writing — and compare each sync-path increment with the full
comparison of the same data. A hard delete of an id that is not stored is how a test asks for
the full comparison through the public API: it clears every sync record and changes no row.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import strata as st
from strata.errors import WriteError
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import lineage_graph
from tests.stores.test_conformance import graph_of, roots, rows, sync
from tests.stores.test_duckdb_layout import to_older_layout

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("transcript", "embedding")


def summary(inc: st.Increment) -> tuple[list[int], dict[int, tuple[Any, ...]], list[int]]:
    """Added ids, changed ids with their causes, removed ids: what must be equal on both paths."""
    changed = inc.changed.to_native()
    causes = [c for c in changed.columns if c.startswith("strata_cause__")]
    return (
        sorted(inc.added.to_native()["sample_uid"].to_list()),
        {row[0]: tuple(row[1:]) for row in changed.select(["sample_uid", *sorted(causes)]).rows()},
        sorted(inc.removed.to_native()["sample_uid"].to_list()),
    )


def forget_sync(store: st.MetadataStore) -> None:
    """Clear every sync record without changing a row (a hard delete of an id that is not there)."""
    store.delete("video", pl.DataFrame({"sample_uid": [-1]}), soft=False)


def both_paths(store: st.MetadataStore) -> dict[str, str]:
    """Resolve the two computed features on the sync path, then in full; assert equal; return the first modes."""
    first = {key: store.resolve_update(key) for key in KEYS}
    forget_sync(store)
    for key in KEYS:
        full = store.resolve_update(key)
        assert full.meta["mode"] == "full"
        assert summary(first[key]) == summary(full), (key, first[key].meta["mode"])
    return {key: str(inc.meta["mode"]) for key, inc in first.items()}


def catch_up(store: st.MetadataStore) -> None:
    """Write what the computed features lack, as a build does; they end in sync."""
    for key in KEYS:
        inc = store.resolve_update(key)
        store.write(key, rows(inc))
        if len(inc.removed):
            store.delete(key, inc.removed)
    for key in KEYS:
        assert store.resolve_update(key).meta["mode"] == "in sync", key


def test_a_hard_delete_while_a_resolve_waits_is_never_taken_for_its_answer(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(3))
        store.write("video", roots(4).filter(pl.col("sample_uid") == 3))  # the newest rows are not the ones deleted
        inc = store.resolve_update("transcript")
        store.delete("video", pl.DataFrame({"sample_uid": [0]}), soft=False)
        store.write("transcript", rows(inc))  # exactly what the resolve asked for, but video lost sample 0 meanwhile
        again = store.resolve_update("transcript")
        assert summary(again)[2] == [0]
        forget_sync(store)
        assert summary(store.resolve_update("transcript")) == summary(again)


def test_the_sync_path_and_the_full_comparison_agree_through_every_kind_of_change(
    store_factory: StoreFactory,
) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(8))
        steps: list[tuple[str, Any]] = [
            ("root rows changed", lambda: store.write_changed("video", roots(8, audio={1: "x"}, frames={2: "y"}))),
            (
                "rows written without a resolve",
                lambda: store.write(
                    "transcript",
                    store.read("transcript")
                    .to_native()
                    .filter(pl.col("sample_uid").is_in([4, 5]))
                    .select("sample_uid", pl.lit("stale").alias("strata_in__video__audio"), "strata_dv__text"),
                ),
            ),
            ("soft delete", lambda: store.delete("video", pl.DataFrame({"sample_uid": [3]}))),
            ("hard delete", lambda: store.delete("video", pl.DataFrame({"sample_uid": [6]}), soft=False)),
            ("new samples", lambda: store.write_changed("video", roots(10).filter(pl.col("sample_uid") >= 8))),
            ("definition change", lambda: setattr(store, "graph", graph_of(text_cv="2"))),
            ("definition back", lambda: setattr(store, "graph", graph_of())),
            ("nothing", lambda: None),
        ]
        modes = {}
        for name, step in steps:
            step()
            modes[name] = both_paths(store)
            catch_up(store)
        assert modes["root rows changed"] == dict.fromkeys(KEYS, "since last sync")
        assert modes["rows written without a resolve"]["transcript"] == "since last sync"
        assert modes["soft delete"] == dict.fromkeys(KEYS, "since last sync")
        assert modes["hard delete"] == dict.fromkeys(KEYS, "full")
        assert modes["definition change"] == dict.fromkeys(KEYS, "full")
        assert modes["nothing"] == dict.fromkeys(KEYS, "in sync")


def test_a_write_that_fails_in_its_transaction_leaves_the_store_in_sync(tmp_path: Path) -> None:
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as store:
        store.write("video", roots(4).with_columns(pl.lit(1).alias("count")))
        sync(store, roots(4))
        bad = roots(5).with_columns(pl.lit("not a number").alias("count"))
        in_place = store.con.from_arrow(bad.to_arrow())  # rows DuckDB meets only as it inserts them
        with pytest.raises(WriteError, match="column `count` holds String, stored as Int32"):
            store.write("video", in_place)  # the rows cannot go in: the transaction rolls back
        assert store.resolve_update("embedding").meta["mode"] == "in sync"
        with pytest.raises(WriteError, match="column `count` holds String, stored as Int32"):
            store.write("video", bad)  # rows from Python: refused before the write
        assert store.resolve_update("embedding").meta["mode"] == "in sync"
        assert len(store.read("video")) == 4
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as store:
        assert store.resolve_update("embedding").meta["mode"] == "in sync"


def test_another_connection_creating_tables_and_writing_is_seen_by_an_open_store(tmp_path: Path) -> None:
    path = tmp_path / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as first:
        first.write("video", roots(4))
        assert summary(first.resolve_update("transcript"))[0] == [0, 1, 2, 3]  # it has no table yet
        assert summary(first.resolve_update("embedding")) == ([], {}, [])  # nor has its upstream transcript
        with st.DuckDBStore(path, graph=graph_of()) as second:  # the same file, another connection
            sync(second, roots(5, audio={0: "x"}))
        assert first.has_feature("transcript")
        assert summary(first.resolve_update("transcript")) == ([], {}, [])
        assert summary(first.resolve_update("embedding")) == ([], {}, [])
        both_paths(first)
        with st.DuckDBStore(path, graph=graph_of()) as second:
            second.write_changed("video", roots(5, frames={1: "y"}))
        assert summary(first.resolve_update("embedding"))[1] == {1: ("video.frames",)}
        both_paths(first)


def run_other_process(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import polars as pl
        import strata as st
        from tests.stores.test_conformance import graph_of, roots, rows
        with st.DuckDBStore({str(path)!r}, graph=graph_of()) as store:
        """
    ) + textwrap.indent(textwrap.dedent(code), "    ")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)


def test_two_processes_taking_turns_on_one_file_give_the_full_comparisons_answer(tmp_path: Path) -> None:
    path = tmp_path / "meta.duckdb"
    store = st.DuckDBStore(path, graph=graph_of())
    with store:
        sync(store, roots(6))
        held = store.resolve_update("embedding")
        assert held.meta["mode"] == "in sync"
        busy = run_other_process(path, "store.write_changed('video', roots(6, audio={0: 'x'}))")
        assert busy.returncode != 0  # DuckDB locks the file: no other process writes while a store holds it
        assert "lock" in busy.stderr
    done = run_other_process(
        path,
        """
        store.write_changed("video", roots(7, audio={0: "x"}, frames={1: "y"}))
        inc = store.resolve_update("transcript")
        store.write("transcript", rows(inc).filter(pl.col("sample_uid") != 6))
        store.write("transcript", store.read("transcript").to_native().filter(pl.col("sample_uid") == 2).select(
            "sample_uid", pl.lit("stale").alias("strata_in__video__audio"), "strata_dv__text"))
        """,
    )
    assert done.returncode == 0, done.stderr
    with store:
        modes = both_paths(store)
        assert modes == dict.fromkeys(KEYS, "since last sync")
        assert summary(store.resolve_update("transcript")) == ([6], {2: ("video.audio",)}, [])
        assert summary(store.resolve_update("embedding")) == ([], {0: ("transcript.text",), 1: ("video.frames",)}, [])


def test_a_store_written_before_the_bookkeeping_gets_it_on_its_first_writable_open(tmp_path: Path) -> None:
    path = tmp_path / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        sync(store, roots(5))
        store.write_changed("video", roots(5, audio={2: "x"}))
    with duckdb.connect(str(path)) as con:  # as an older strata left it: no per-table sequence numbers
        con.execute("""DELETE FROM "strata$meta" WHERE name LIKE 'seq@%' OR name = 'seq_by_table'""")
    with st.DuckDBStore(path, graph=graph_of(), read_only=True) as reader:
        inc = reader.resolve_update("transcript")
        assert summary(inc)[1] == {2: ("video.audio",)}
        assert inc.meta["mode"] == "since last sync"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        assert store.resolve_update("transcript").meta["mode"] == "since last sync"
        both_paths(store)
        catch_up(store)
    with duckdb.connect(str(path)) as con:
        kept = dict(con.execute("""SELECT name, value FROM "strata$meta" WHERE name LIKE 'seq@%'""").fetchall())
        for table in ("video", "transcript", "embedding"):
            highest = con.execute(f"SELECT max(strata_seq) FROM {table}").fetchone()  # noqa: S608 - fixed names
            assert highest is not None
            assert int(kept[f"seq@{table}"]) >= highest[0]


def test_a_write_by_a_strata_that_keeps_no_numbers_per_table_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        sync(store, roots(4))
    to_older_layout(path)  # tables as an older strata made them (every column in every row)
    with duckdb.connect(str(path)) as con:  # an older strata's write: the next number, no seq@video
        con.execute(
            """INSERT INTO "video$history" BY NAME SELECT * FROM video WHERE sample_uid = 1;
            UPDATE video SET strata_dv__audio = 'older', strata_seq = strata_seq + 100 WHERE sample_uid = 1;
            UPDATE "strata$meta" SET value = CAST(value::BIGINT + 100 AS VARCHAR) WHERE name = 'seq'"""
        )
    with st.DuckDBStore(path, graph=graph_of(), read_only=True) as reader:
        assert summary(reader.resolve_update("transcript"))[1] == {1: ("video.audio",)}
    with st.DuckDBStore(path, graph=graph_of()) as store:
        inc = store.resolve_update("transcript")
        assert inc.meta["mode"] == "since last sync"
        assert summary(inc)[1] == {1: ("video.audio",)}
        both_paths(store)
        catch_up(store)
        store.write_changed("video", roots(4, audio={1: "older", 2: "newer"}))  # numbered above the older write's
        assert summary(store.resolve_update("transcript"))[1] == {2: ("video.audio",)}


@pytest.mark.parametrize(
    "ids",
    [
        pl.Series("k", [1, 2], pl.Int64),
        pl.Series("k", [1, 2], pl.Int32),
        pl.Series("k", [1, 2], pl.Int16),
        pl.Series("k", [1, 2], pl.Int8),
        pl.Series("k", [1, 2], pl.UInt64),
        pl.Series("k", [1, 2], pl.UInt32),
        pl.Series("k", [1, 2], pl.UInt16),
        pl.Series("k", [1, 2], pl.UInt8),
        pl.Series("k", [1.5, 2.5], pl.Float64),
        pl.Series("k", [1.5, 2.5], pl.Float32),
        pl.Series("k", ["a", "b"], pl.String),
        pl.Series("k", [True, False], pl.Boolean),
        pl.Series("k", [dt.date(2026, 1, 1), dt.date(2026, 1, 2)], pl.Date),
        pl.Series("k", [dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)]),
        pl.Series(
            "k", [dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)]
        ).dt.replace_time_zone(None),
        pl.Series("k", [1, 2], pl.Decimal(18, 3)),
    ],
    ids=lambda s: str(s.dtype),
)
def test_an_in_sync_resolve_gives_the_stored_id_types(ids: pl.Series, tmp_path: Path) -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class Root(st.Feature, spec=st.FeatureSpec("root", id_columns=["k"], fields=["f"])):
            pass

        class Leaf(st.Feature, spec=st.FeatureSpec("leaf", id_columns=["k"], deps=[Root], fields=["g"])):
            pass

    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph) as store:
        store.write("root", pl.DataFrame([ids, pl.Series("strata_dv__f", ["x", "y"])]))
        store.write("leaf", rows(store.resolve_update("leaf")))
        stored = store.read("leaf").to_native().schema["k"]
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph) as store:  # a fresh connection
        inc = store.resolve_update("leaf")
        assert inc.meta["mode"] == "in sync"
        assert {part: getattr(inc, part).to_native().schema["k"] for part in ("added", "changed", "removed")} == {
            "added": stored,
            "changed": stored,
            "removed": stored,
        }


def logged_statements(store: st.DuckDBStore, action: Any) -> list[str]:
    """The SQL statements the store's connection ran during ``action()``, from DuckDB's own query log.

    Registering a frame (a temporary view over it) and dropping it again are left out.
    """
    store.con.execute("CALL enable_logging('QueryLog')")
    action()
    store.con.execute("CALL disable_logging()")
    logged = store.con.execute("SELECT message FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()
    store.con.execute("CALL truncate_duckdb_logs()")
    registering = ("CREATE TEMPORARY VIEW", "DROP VIEW")  # how DuckDB logs register() and unregister() of a frame
    return [str(m) for (m,) in logged if "_logging" not in str(m) and not str(m).startswith(registering)]


def test_a_batch_in_step_with_its_resolve_is_written_in_five_statements(tmp_path: Path) -> None:
    """What a build pays per batch: no catalog lookup, no bookkeeping read twice, no search for older rows.

    The resolve saw no ``transcript`` rows and nothing else was written since, so no batch can
    supersede a stored row; the sync bookkeeping is read and taken in the write's transaction.
    """
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as store:
        store.write("video", roots(30))
        batch = rows(store.resolve_update("transcript"))
        store.write("transcript", batch.slice(0, 10))  # the first batch creates the tables
        statements = logged_statements(store, lambda: store.write("transcript", batch.slice(10, 10)))
        assert len(statements) <= 5, statements
        assert not [s for s in statements if s.startswith("DESCRIBE") or "$history" in s], statements
        store.write("transcript", batch.slice(20))
        assert store.resolve_update("transcript").meta["mode"] == "in sync"
        assert len(store.read("transcript")) == 30
        assert len(store.read("transcript", feature_version="all")) == 30


def test_a_fresh_connection_knows_which_tables_are_split_from_its_first_query(tmp_path: Path) -> None:
    """A split table's layout is in the bookkeeping the store reads when it opens: no catalog lookup per table."""
    path = tmp_path / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        sync(store, roots(20))
        store.write_changed("video", roots(20, audio={3: "new"}))
    with st.DuckDBStore(path, graph=graph_of()) as store:
        statements = logged_statements(store, lambda: store.resolve_update("embedding"))
        assert not [s for s in statements if s.startswith("DESCRIBE") and "$writes" in s], statements
        store.write("transcript", rows(store.resolve_update("transcript")))
        assert summary(store.resolve_update("embedding"))[1] == {3: ("transcript.text",)}


def test_a_batch_of_samples_another_connection_wrote_after_the_resolve_still_replaces_their_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        store.write("video", roots(6))
        asked = rows(store.resolve_update("transcript"))  # transcript has no rows yet
        store.write("transcript", asked.slice(0, 2))
        with st.DuckDBStore(path, graph=graph_of()) as other:
            other.write("transcript", rows(other.resolve_update("transcript")).filter(pl.col("sample_uid") < 4))
        store.write("transcript", asked.slice(2))  # samples 2 and 3 now have rows: they must move to history
        live = store.read("transcript").to_native()
        assert sorted(live["sample_uid"].to_list()) == [0, 1, 2, 3, 4, 5]
        history = store.read("transcript", feature_version="all").to_native()
        assert sorted(history["sample_uid"].to_list()) == [0, 1, 2, 2, 3, 3, 4, 5]
        assert summary(store.resolve_update("transcript")) == ([], {}, [])
        both_paths(store)


def test_batches_after_another_connection_added_a_column_keep_every_column(tmp_path: Path) -> None:
    path = tmp_path / "meta.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        store.write("video", roots(3))
        store.write("video", roots(3).with_columns(pl.lit("n").alias("note")))
        with st.DuckDBStore(path, graph=graph_of()) as other:
            other.write("video", roots(3).with_columns(pl.lit(7).alias("count")))
        store.write("video", roots(3).with_columns(pl.lit("m").alias("note")))
        store.write("video", roots(3).with_columns(pl.lit(8).alias("count"), pl.lit("o").alias("note")))
        live = store.read("video").to_native().sort("sample_uid")
        assert live["count"].to_list() == [8, 8, 8]
        assert live["note"].to_list() == ["o", "o", "o"]


def test_a_delete_that_a_resolve_asked_for_reads_the_bookkeeping_only_in_its_transaction(tmp_path: Path) -> None:
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as store:
        sync(store, roots(6))
        store.delete("video", pl.DataFrame({"sample_uid": [1, 4]}))
        removed = store.resolve_update("transcript").removed
        statements = logged_statements(store, lambda: store.delete("transcript", removed))
        begin, commit = statements.index("BEGIN TRANSACTION"), statements.index("COMMIT")
        bookkeeping = [i for i, s in enumerate(statements) if "strata$meta" in s]
        assert bookkeeping, statements
        assert all(begin < i < commit for i in bookkeeping), statements
        assert store.resolve_update("transcript").meta["mode"] == "in sync"
        assert sorted(store.read("transcript").to_native()["sample_uid"].to_list()) == [0, 2, 3, 5]


def rows_scanned(store: st.DuckDBStore, part: Any) -> dict[str, int]:
    """Rows DuckDB read from each table to answer ``part`` (a lazy increment's part), from ``EXPLAIN ANALYZE``."""
    ((_, report),) = store.con.execute(f"EXPLAIN (ANALYZE, FORMAT json) {part.to_native().sql_query()}").fetchall()
    scanned: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        table = node.get("extra_info", {}).get("Table")
        if node["type"] == "TABLE_SCAN" and table:
            name = str(table).rsplit(".", 1)[-1].strip('"').removesuffix("$rows")  # a split table's rows: its feature's
            scanned[name] = scanned.get(name, 0) + int(node["rows_scanned"])
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(report)["operator"]:
        walk(node)
    return scanned


def test_a_resolve_since_the_last_sync_reads_only_the_new_rows_of_tables_rewritten_for_every_changed_sample(
    tmp_path: Path,
) -> None:
    """What a fixed-size change costs in a large store: the upstreams rewritten for exactly the changed samples.

    Audio changed for a few samples spread over the table: video and transcript hold a row
    written since the sync for each of them, so only their new rows are read (found by their
    sequence numbers); embedding's rows of those samples are old, found among all of its rows.
    """
    n = 300_000  # several of DuckDB's row groups (122,880 rows each)
    audio = dict.fromkeys(range(7, n, 50_000), "new")
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph_of()) as store:
        sync(store, roots(n))
        store.write_changed("video", roots(n, audio=audio))
        store.write("transcript", rows(store.resolve_update("transcript")))
        inc = store.resolve_update("embedding", lazy=True)
        scanned = rows_scanned(store, inc.changed)
        assert sorted(inc.changed.collect(backend="polars")["sample_uid"].to_list()) == sorted(audio)
        assert scanned["video"] < n // 2, scanned
        assert scanned["transcript"] < n // 2, scanned
        assert scanned["embedding"] > n // 2, scanned  # no index: its old rows are searched for among all of them
        first = summary(store.resolve_update("embedding"))
        forget_sync(store)
        assert summary(store.resolve_update("embedding")) == first


def test_an_aggregated_upstream_with_one_child_rewritten_is_read_with_every_child_of_the_parent(
    tmp_path: Path,
) -> None:
    """An upstream keyed finer than the resolve ids is never read through its new rows alone.

    One frame of sample 2 is rewritten: the frames table's rows written since hold every
    candidate (sample 2), but not every row of it; the summary aggregates all three frames.
    """
    graph = st.FeatureGraph()
    with graph.use():

        class Frames(st.Feature, spec=st.FeatureSpec("frames", id_columns=["sample_uid", "frame"], fields=["pixels"])):
            pass

        class Summary(
            st.Feature,
            spec=st.FeatureSpec(
                "summary", deps=[st.FeatureDep(Frames, st.Lineage.aggregation(["sample_uid"]))], fields=["mean"]
            ),
        ):
            pass

    frames = pl.DataFrame(
        {"sample_uid": [1, 1, 2, 2, 2], "frame": [0, 1, 0, 1, 2], "strata_dv__pixels": ["p", "q", "r", "s", "t"]}
    )
    with st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph) as store:
        store.write("frames", frames)
        store.write("summary", rows(store.resolve_update("summary")))
        store.write(
            "frames",
            frames.filter(pl.col("frame") == 1, pl.col("sample_uid") == 2).with_columns(strata_dv__pixels=pl.lit("s2")),
        )
        since = store.resolve_update("summary")
        assert since.meta["mode"] == "since last sync"
        store.delete("frames", pl.DataFrame({"sample_uid": [-1], "frame": [-1]}), soft=False)  # forgets the sync
        full = store.resolve_update("summary")
        assert full.meta["mode"] == "full"
        assert since.changed.to_native().equals(full.changed.to_native())
        assert since.changed.to_native()["sample_uid"].to_list() == [2]


@pytest.mark.parametrize("id_column", ["src", "strata$in0"])
def test_an_id_column_named_like_a_column_the_resolve_adds_gets_the_increment_the_in_memory_store_gives(
    tmp_path: Path, id_column: str
) -> None:
    """The resolve ids share the candidates table with the columns a resolve adds to them: no name may clash.

    Sample 1 of `score` is deleted since the sync, so it is a candidate that `edges` has no new
    row for: `edges` must be searched for it (it is to be added again), not read through its
    new rows alone.
    """
    graph = st.FeatureGraph()
    with graph.use():

        class Edges(st.Feature, spec=st.FeatureSpec("edges", id_columns=[id_column], fields=["weight"])):
            pass

        class Score(st.Feature, spec=st.FeatureSpec("score", id_columns=[id_column], deps=[Edges], fields=["value"])):
            pass

    seen = []
    for store in (st.InMemoryStore(graph=graph), st.DuckDBStore(tmp_path / "meta.duckdb", graph=graph)):
        with store:
            store.write("edges", pl.DataFrame({id_column: [0, 1, 2], "strata_dv__weight": ["a", "b", "c"]}))
            store.write("score", rows(store.resolve_update("score"), "added"))
            store.delete("score", pl.DataFrame({id_column: [1]}))
            inc = store.resolve_update("score")
            assert inc.meta["mode"] == "since last sync"
            seen.append((inc.added.to_native()[id_column].to_list(), inc.counts()))
    assert seen[1] == seen[0] == ([1], {"added": 1, "changed": 0, "removed": 0})


def test_a_tombstone_deleted_again_before_a_resolve_is_seen_on_the_sync_path(store_factory: StoreFactory) -> None:
    """A soft delete of a sample already deleted takes its tombstone out of the latest rows.

    No latest row then carries the numbers written since the last sync for that sample, yet the
    downstream features must still hear of it: video 3 deleted twice, transcript 5 deleted twice.
    """
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(8))
        for key, uid in (("video", 3), ("transcript", 5)):
            store.delete(key, pl.DataFrame({"sample_uid": [uid]}))
            store.delete(key, pl.DataFrame({"sample_uid": [uid]}))
        both_paths(store)
        catch_up(store)


def test_a_deleted_no_children_row_is_asked_for_again_on_the_sync_path(store_factory: StoreFactory) -> None:
    """Parent 1 computed with no children, then that row deleted: the next resolve asks for parent 1 again."""
    with store_factory(graph=lineage_graph()) as store:
        store.write("video", roots(3).drop("strata_dv__audio"))
        asked = rows(store.resolve_update("frames"))
        children = asked.filter(pl.col("sample_uid") != 1).join(pl.DataFrame({"frame": [0, 1]}), how="cross")
        none = asked.filter(pl.col("sample_uid") == 1).with_columns(frame=pl.lit(None, pl.Int64))
        store.write("frames", pl.concat([children, none.select(children.columns)]))
        assert store.resolve_update("frames").is_empty
        store.delete(
            "frames",
            pl.DataFrame({"sample_uid": [1], "frame": [None]}, schema={"sample_uid": pl.Int64, "frame": pl.Int64}),
        )
        again = store.resolve_update("frames")
        assert again.added.to_native()["sample_uid"].to_list() == [1], again.meta
