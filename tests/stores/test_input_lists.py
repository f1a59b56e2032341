"""A field that reads one more, or one fewer, upstream field is stale in every store.

Input columns (``strata_in__<upstream>__<field>``) belong to the feature, shared by its fields:
when a field starts reading an input a sibling reads already, or stops reading one, no stored
input differs. The field's stored code version carries its input list, so it is stale by
``code`` (its definition changed) and a build computes it again.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl

import strata as st
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import graph_of
from tests.stores.test_reconcile import stale

N = 4


def pair(p_reads: list[str], q_reads: list[str]) -> st.FeatureGraph:
    """a(x, y) -> b(p <- ``p_reads`` of a, q <- ``q_reads`` of a)."""
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", fields=["x", "y"])):
            pass

        fields = [
            st.FieldSpec("p", deps=[st.FieldDep(A, p_reads)]),
            st.FieldSpec("q", deps=[st.FieldDep(A, q_reads)]),
        ]

        class B(st.Feature, spec=st.FeatureSpec("b", deps=[A], fields=fields)):
            pass

    return graph


def samples() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sample_uid": list(range(N)),
            "strata_dv__x": [f"x{i}" for i in range(N)],
            "strata_dv__y": [f"y{i}" for i in range(N)],
        }
    )


def build_b(store: st.MetadataStore) -> pl.DataFrame:
    """Compute what ``b`` lacks (its added and changed samples), as a build does; what was written."""
    inc = store.resolve_update("b")
    rows: pl.DataFrame = pl.concat(
        [inc.added.to_native(), inc.changed.to_native().select(inc.added.columns)], how="vertical"
    )
    store.write("b", rows.with_columns(pl.lit(1).alias("value")))
    return rows


def versions(store: st.MetadataStore) -> pl.DataFrame:
    frame: pl.DataFrame = store.read("b").to_native()
    return frame.select("sample_uid", "strata_dv__p", "strata_dv__q").sort("sample_uid")


def written_fresh(graph: st.FeatureGraph) -> pl.DataFrame:
    """``b``'s data versions computed under ``graph`` from the start (every store hashes them alike)."""
    with st.InMemoryStore(graph=graph) as fresh:
        fresh.write("a", fresh.resolve_update("a", samples=samples()).added)
        build_b(fresh)
        return versions(fresh)


def switch(store_factory: StoreFactory, before: st.FeatureGraph, after: st.FeatureGraph) -> pl.DataFrame:
    """``b`` built under ``before``, then resolved and built under ``after``: the data versions it ends with."""
    with store_factory(graph=before) as store:
        store.write("a", store.resolve_update("a", samples=samples()).added)
        build_b(store)
        store.graph = after
        assert stale(store, "b", N) == {i: {"p": "code"} for i in range(N)}
        assert len(build_b(store)) == N
        assert stale(store, "b", N) == {}
        return versions(store)


def test_a_field_that_reads_an_input_a_sibling_already_reads_is_stale_by_code(store_factory: StoreFactory) -> None:
    after = pair(["x", "y"], ["y"])
    got = switch(store_factory, pair(["x"], ["y"]), after)
    assert got.equals(written_fresh(after))  # hashed over the new input list


def test_a_field_that_stops_reading_an_input_is_stale_by_code(store_factory: StoreFactory) -> None:
    after = pair(["x"], ["y"])
    assert switch(store_factory, pair(["x", "y"], ["y"]), after).equals(written_fresh(after))


def test_a_field_that_stops_reading_an_input_no_field_reads_any_more_is_stale_by_code(
    store_factory: StoreFactory,
) -> None:
    after = pair(["x"], ["x"])
    assert switch(store_factory, pair(["x", "y"], ["x"]), after).equals(written_fresh(after))


OLD_STORE = Path(__file__).parent / "data" / "old_layout" / "store.duckdb.gz"
"""A store file written by strata before code versions carried input lists (plain ``strata_cv__`` values)."""


def causes_of(store: st.MetadataStore, key: str) -> set[str]:
    """Every cause a resolve of ``key`` gives, over its changed samples and fields."""
    changed: pl.DataFrame = store.resolve_update(key).changed.to_native()
    columns = [c for c in changed.columns if c.startswith("strata_cause__")]
    return {cause for c in columns for value in changed[c].drop_nulls() for cause in value.split(",")}


def test_rows_written_before_code_versions_carried_input_lists_stay_in_sync(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    old = tmp_path / "old.duckdb"
    old.write_bytes(gzip.decompress(OLD_STORE.read_bytes()))
    with st.DuckDBStore(old, graph=graph_of(), read_only=True) as source, store_factory(graph=graph_of()) as store:
        store.copy_from(source)
        assert set(store.read("transcript")["strata_cv__text"].to_list()) == {"1"}
        assert "code" not in causes_of(store, "transcript") | causes_of(store, "embedding")
        store.graph = graph_of(text_cv="2")  # a plain stored version still names the code that computed the field
        assert "code" in causes_of(store, "transcript")


def test_a_field_that_reads_an_input_a_sibling_already_reads_is_reconciled_over_its_new_input_list(
    store_factory: StoreFactory,
) -> None:
    after = pair(["x", "y"], ["y"])
    with store_factory(graph=pair(["x"], ["y"])) as store:
        store.write("a", store.resolve_update("a", samples=samples()).added)
        build_b(store)
        store.graph = after
        assert store.reconcile("b").samples == N
        assert stale(store, "b", N) == {}
        assert versions(store).equals(written_fresh(after))
