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
