"""A root's first resolve in the DuckDB store when its samples are a relation of the store's connection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import hypothesis.strategies as hs
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

import strata as st
from strata.errors import WriteError
from strata.stores.duckdb.store import DuckDBStore
from tests.stores.test_conformance import graph_of, roots
from tests.stores.test_duckdb_in_place import stored
from tests.stores.test_sync_paths import logged_statements

SAMPLES = "SELECT range::BIGINT AS sample_uid, 'a' || range AS strata_dv__audio, 'f' || range AS strata_dv__frames"


def test_a_lazy_first_resolve_of_a_relation_keeps_the_rows_in_duckdb_and_writes_what_the_eager_one_does(
    tmp_path: Path,
) -> None:
    with (
        DuckDBStore(tmp_path / "eager.duckdb", graph=graph_of()) as eager,
        DuckDBStore(tmp_path / "lazy.duckdb", graph=graph_of()) as lazy,
    ):
        inc = lazy.resolve_update("video", samples=lazy.con.sql(f"{SAMPLES} FROM range(7)"), lazy=True)
        parts = {p: getattr(inc, p).to_native() for p in ("added", "changed", "removed")}
        assert all(isinstance(part, duckdb.DuckDBPyRelation) for part in parts.values())  # not copied out
        assert inc.meta["mode"] == "first"
        want = eager.resolve_update("video", samples=eager.con.sql(f"{SAMPLES} FROM range(7)"))
        collected = inc.collect()
        for part in ("added", "changed", "removed"):
            got, expected = getattr(collected, part).to_native(), getattr(want, part).to_native()
            assert got.schema == expected.schema, part
            assert got.sort("sample_uid").equals(expected.sort("sample_uid")), part
        assert inc.counts() == {"added": 7, "changed": 0, "removed": 0}
        assert lazy.write("video", inc.added) + lazy.write("video", inc.changed) == 7
        eager.write("video", want.added)
        assert stored(lazy, "video").equals(stored(eager, "video"))
        again = lazy.resolve_update("video", samples=roots(7), lazy=True)  # a frame now: compared with what is stored
        assert again.counts() == {"added": 0, "changed": 0, "removed": 0}
        assert lazy.resolve_update("transcript").counts() == {"added": 7, "changed": 0, "removed": 0}


def test_a_relation_s_bad_samples_are_refused_at_the_first_resolve_and_its_rows_again_at_the_write(
    tmp_path: Path,
) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        repeated = store.con.sql(f"{SAMPLES} FROM (SELECT range % 3 AS range FROM range(6))")  # noqa: S608
        with pytest.raises(WriteError, match="repeated ids"):
            store.resolve_update("video", samples=repeated, lazy=True)
        store.con.execute(f"CREATE TABLE src AS {SAMPLES} FROM range(3)")
        inc = store.resolve_update("video", samples=store.con.sql("SELECT * FROM src"), lazy=True)
        store.con.execute("INSERT INTO src VALUES (1, 'again', 'again')")  # the lazy part reads src when written
        with pytest.raises(WriteError, match="repeated ids"):
            store.write("video", inc.added)
        assert not store.has_feature("video")
        assert store.read("video").is_empty()


def test_a_lazy_first_resolve_of_a_feature_with_nothing_stored_plans_changed_and_removed_as_empty(
    tmp_path: Path,
) -> None:
    """Nothing is stored for the feature: its ``changed`` and ``removed`` parts cannot hold rows,
    so DuckDB is asked for none, not for the whole comparison filtered down to nothing."""
    with DuckDBStore(tmp_path / "s.duckdb", graph=graph_of()) as store:
        store.write("video", store.resolve_update("video", samples=roots(50)).added)
        inc = store.resolve_update("transcript", lazy=True)
        for part in ("changed", "removed"):
            plan = getattr(inc, part).to_native().explain()
            assert "Empty Result" in plan, plan
            assert "Scan" not in plan, plan  # no table is read
            assert "Join" not in plan, plan
        assert inc.counts() == {"added": 50, "changed": 0, "removed": 0}
        store.write("transcript", inc.added)
        changed = roots(50, audio={3: "new", 7: "new"})
        store.write("video", store.resolve_update("video", samples=changed).changed)
        later = store.resolve_update("transcript", lazy=True)  # stored now: changed is asked for
        assert later.counts() == {"added": 0, "changed": 2, "removed": 0}


def test_writing_a_part_planned_empty_runs_no_statement(tmp_path: Path) -> None:
    """A first lazy increment's ``changed`` (and a feature's with nothing stored) cannot hold rows: writing it, as
    a first pass does after ``added``, asks DuckDB nothing (it made and dropped a write's tables before), and a
    resolve waiting for its ``added`` still settles with it. The first write makes the tables and their views
    without describing them."""
    with DuckDBStore(tmp_path / "e.duckdb", graph=graph_of()) as store:
        inc = store.resolve_update("video", samples=store.con.sql(f"{SAMPLES} FROM range(20)"), lazy=True)
        made = logged_statements(store, lambda: store.write("video", inc.added))  # tables made: their columns known
        assert not [s for s in made if s.startswith('DESCRIBE "video$')], made
        assert logged_statements(store, lambda: store.write("video", inc.changed)) == []
        inc = store.resolve_update("transcript", lazy=True)
        statements = logged_statements(store, lambda: store.write("transcript", inc.changed))
        assert statements == [], statements
        assert store.write("transcript", inc.added) == 20
        assert store.resolve_update("transcript").meta["mode"] == "in sync"
        assert len(store.read("transcript")) == len(store.read("video")) == 20


def test_a_lazy_increment_s_changed_part_written_after_its_added_describes_no_table(tmp_path: Path) -> None:
    """The parts of one increment hold the same columns but the causes (which are not written): the tables made
    ready for ``added`` are ready for ``changed``, so its write asks DuckDB about no table again."""
    with DuckDBStore(tmp_path / "d.duckdb", graph=graph_of()) as store:
        store.write("video", store.resolve_update("video", samples=roots(30)).added)
        store.write("transcript", store.resolve_update("transcript", lazy=True).added)
        store.write("video", store.resolve_update("video", samples=roots(31, audio={3: "new"})).added)
        store.write("video", store.resolve_update("video", samples=roots(31, audio={3: "new"})).changed)
        inc = store.resolve_update("transcript", lazy=True)
        assert inc.counts() == {"added": 1, "changed": 1, "removed": 0}
        assert store.write("transcript", inc.added) == 1
        statements = logged_statements(store, lambda: store.write("transcript", inc.changed))
        assert not [s for s in statements if s.startswith("DESCRIBE")], statements
        assert store.resolve_update("transcript").meta["mode"] == "in sync"


def two_id_graph() -> st.FeatureGraph:
    """A root keyed by two id columns."""
    graph = st.FeatureGraph()
    with graph.use():

        class Clip(st.Feature, spec=st.FeatureSpec("clip", id_columns=["video", "frame"], fields=["pixels"])):
            pass

    return graph


def two_id_rows(pairs: list[tuple[int, int | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"video": [p[0] for p in pairs], "frame": [p[1] for p in pairs], "strata_dv__pixels": ["p"] * len(pairs)},
        schema={"video": pl.Int64, "frame": pl.Int64, "strata_dv__pixels": pl.String},
    )


pairs_ = hs.lists(hs.tuples(hs.integers(0, 2), hs.one_of(hs.none(), hs.integers(0, 1))), max_size=8)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=pairs_, first=hs.booleans())
def test_rows_with_two_ids_in_a_relation_are_refused_or_written_as_a_frame_s_are(
    pairs: list[tuple[int, int | None]], first: bool
) -> None:
    """Repeats of a pair, of one id only, nulls in either: a relation's rows fare as a frame's do (its samples too)."""
    frame = two_id_rows(pairs)
    outcomes: list[str | pl.DataFrame] = []
    resolved: list[str | dict[str, int]] = []
    for as_relation in (False, True):
        with DuckDBStore(":memory:", graph=two_id_graph()) as store:
            if not first:
                store.write(
                    "clip", two_id_rows([(0, 0), (2, 1)]).with_columns(pl.lit("old").alias("strata_dv__pixels"))
                )
            given = store.con.sql("SELECT * FROM frame") if as_relation else frame
            try:
                resolved.append(store.resolve_update("clip", samples=given, lazy=as_relation).counts())
            except WriteError as exc:  # the samples' checks word some faults differently: compare the refusal
                resolved.append(str(exc).split(" have ")[0])
            try:
                store.write("clip", given)
                rows = store.read("clip", feature_version="all", include_deleted=True).to_native()
                rows = rows.drop("strata_written_at", strict=False)
                outcomes.append(rows.sort(rows.columns, nulls_last=True))
            except WriteError as exc:
                outcomes.append(str(exc))
    by_frame, by_relation = outcomes
    if isinstance(by_frame, pl.DataFrame) and isinstance(by_relation, pl.DataFrame):
        assert by_relation.equals(by_frame)
    else:
        assert by_relation == by_frame
    assert resolved[0] == resolved[1]


def test_integer_ids_are_told_apart_by_a_bitmap_and_spread_ones_by_a_hash_table(tmp_path: Path) -> None:
    """The checks of a relation's samples (first resolve) and of a first write's rows count distinct integer ids as
    bits between the least and the greatest (DuckDB's ``bitstring_agg``), not in a hash table (``count(DISTINCT)``):
    at 10M samples, 0.07 CPU s per check against 1.4. Ids too spread for a bitmap go to the hash table."""
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        dense = store.con.sql(f"{SAMPLES} FROM range(-500, 500)")

        def first_pass() -> None:
            store.write("video", store.resolve_update("video", samples=dense, lazy=True).added)

        statements = logged_statements(store, first_pass)
        assert len([s for s in statements if "bitstring_agg" in s]) == 2, statements  # the resolve's and the write's
        assert not [s for s in statements if "DISTINCT" in s], statements
        assert len(store.read("video")) == 1000
    with DuckDBStore(tmp_path / "s.duckdb", graph=graph_of()) as store:
        spread = store.con.sql(f"{SAMPLES} FROM (SELECT range * 1000003 AS range FROM range(1000))")  # noqa: S608

        def spread_pass() -> None:
            store.write("video", store.resolve_update("video", samples=spread, lazy=True).added)

        statements = logged_statements(store, spread_pass)
        assert not [s for s in statements if "bitstring_agg" in s], statements
        assert len([s for s in statements if "DISTINCT" in s]) == 2, statements
        assert len(store.read("video")) == 1000


INTEGERS = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
    "HUGEINT": (-(2**127), 2**127 - 1),
    "UTINYINT": (0, 2**8 - 1),
    "USMALLINT": (0, 2**16 - 1),
    "UINTEGER": (0, 2**32 - 1),
    "UBIGINT": (0, 2**64 - 1),
    "UHUGEINT": (0, 2**128 - 1),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=hs.sampled_from(sorted(INTEGERS)),
    end=hs.sampled_from(["low", "high"]),
    step=hs.sampled_from([1, 3, 1000]),
    offsets=hs.lists(hs.one_of(hs.none(), hs.integers(0, 30)), max_size=12),
    into_stored=hs.booleans(),
)
def test_integer_ids_of_every_type_and_spread_are_refused_or_written_by_their_nulls_and_repeats(
    kind: str, end: str, step: int, offsets: list[int | None], into_stored: bool
) -> None:
    """Ids at either end of each integer type, dense or spread: a relation's samples are refused at the first
    resolve, and its rows at the write (a first write, or one into stored rows), exactly when they hold a null
    or a repeated id, with the counts the messages give."""
    low, high = INTEGERS[kind]
    drawn = [None if o is None else (low + o * step if end == "low" else high - o * step) for o in offsets]
    values = [v for v in drawn if v is None or low <= v <= high]
    present = [v for v in values if v is not None]
    repeated_ids = len({v for v in present if present.count(v) > 1})
    repeated_rows = sum(1 for v in present if present.count(v) > 1)
    typed = ", ".join(f"(CAST({'NULL' if v is None else repr(str(v))} AS {kind}))" for v in values)
    rows = f"SELECT v AS sample_uid, 'a' AS strata_dv__audio, 'f' AS strata_dv__frames FROM (VALUES {typed}) t(v)"  # noqa: S608
    if not values:
        rows = (
            f"SELECT CAST(NULL AS {kind}) AS sample_uid, 'a' AS strata_dv__audio, 'f' AS strata_dv__frames WHERE false"
        )
    if None in values:
        fault = rows_fault = "nulls in id column `sample_uid`"
    elif repeated_rows:
        fault, rows_fault = f"{repeated_ids} repeated ids", f"{repeated_rows} rows with repeated ids"
    else:
        fault = rows_fault = ""
    with DuckDBStore(":memory:", graph=graph_of()) as store:
        if into_stored:  # not a first write: the rows are checked among the stored ones (the other end of the type)
            other = f"SELECT CAST('{high if end == 'low' else low}' AS {kind}) AS sample_uid, 'a' AS strata_dv__audio"
            store.write("video", store.con.sql(f"{other}, 'f' AS strata_dv__frames"))
        else:
            relation = store.con.sql(rows)
            if fault:
                with pytest.raises(WriteError, match=f"samples for `video` have {fault}"):
                    store.resolve_update("video", samples=relation, lazy=True)
            else:
                assert store.resolve_update("video", samples=relation, lazy=True).counts()["added"] == len(values)
        if rows_fault:
            with pytest.raises(WriteError, match=f"rows for `video` have {rows_fault}"):
                store.write("video", store.con.sql(rows))
        else:
            assert store.write("video", store.con.sql(rows)) == len(values)
            assert len(store.read("video")) == len(values) + into_stored
