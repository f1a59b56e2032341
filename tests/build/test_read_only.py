"""Reporting commands never write to a store, and id types never depend on which tables exist yet."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.project.project import Project
from tests.helpers import run_strata, write_project

IDS: dict[str, dict[str, list[Any]]] = {
    "int": {"sample_uid": [1, 2, 3]},
    "string": {"sample_uid": ["a", "b", "c"]},
    "multi": {"shop": [7, 7, 8], "item": ["x", "y", "x"]},
}

FEATURES = """
import polars as pl
import strata as st

IDS = {ids!r}


class Source(st.Feature, spec=st.FeatureSpec("source", id_columns=IDS, fields=["body"])):
    pass


class Clean(st.Feature, spec=st.FeatureSpec("clean", id_columns=IDS, deps=[Source], fields=["text"])):
    def compute(self, inputs):
        return inputs[Source].select(*IDS, pl.col("body").str.to_uppercase().alias("text"))


class Summary(st.Feature, spec=st.FeatureSpec("summary", id_columns=IDS, deps=[Clean], fields=["length"])):
    def compute(self, inputs):
        return inputs[Clean].select(*IDS, pl.col("text").str.len_chars().alias("length"))
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ids", list(IDS))
def test_status_and_dry_run_leave_the_store_alone_and_later_builds_work(tmp_path: Path, ids: str) -> None:
    columns = IDS[ids]
    (tmp_path / "feats.py").write_text(textwrap.dedent(FEATURES.format(ids=list(columns))))
    write_project(tmp_path, "features: {entrypoints: [feats]}\n")
    project = Project(tmp_path)
    bodies = ["one", "two", "three"]
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed(
            "source",
            pl.DataFrame({**columns, "body": bodies, "strata_dv__body": [sample_hash("md5", [b]) for b in bodies]}),
        )
    store_file = tmp_path / ".strata" / "metadata.duckdb"
    before = _digest(store_file)

    status = run_strata("--json", "status", cwd=tmp_path)
    assert status.code == 0, status.err
    plan = run_strata("--json", "build", "--dry-run", cwd=tmp_path)
    assert plan.code == 0, plan.err
    assert [(f["feature"], f["added"]) for f in plan.json()["features"]] == [("clean", 3), ("summary", 0)]
    assert _digest(store_file) == before, "a reporting command wrote to the store"

    first = run_strata("--json", "build", cwd=tmp_path)
    assert first.code == 0, first.err
    assert [(f["feature"], f["written"]) for f in first.json()["features"]] == [("clean", 3), ("summary", 3)]
    again = run_strata("--json", "build", cwd=tmp_path)
    assert again.code == 0, again.err
    assert [(f["feature"], f["written"]) for f in again.json()["features"]] == [("clean", 0), ("summary", 0)]
    with make_store(project, graph=load_graph(project)) as store:
        lengths = store.read("summary").to_native().sort(list(columns))
        assert lengths["length"].to_list() == [3, 3, 5]
        assert lengths.select(list(columns)).to_dicts() == pl.DataFrame(columns).sort(list(columns)).to_dicts()


def test_status_of_a_project_whose_store_does_not_exist_yet_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "feats.py").write_text(textwrap.dedent(FEATURES.format(ids=["sample_uid"])))
    write_project(tmp_path, "features: {entrypoints: [feats]}\n")
    status = run_strata("--json", "status", cwd=tmp_path)
    assert status.code == 0, status.err
    assert [f["feature"] for f in status.json()["features"]] == ["source", "clean", "summary"]
    assert not (tmp_path / ".strata" / "metadata.duckdb").exists()


@pytest.fixture(params=["memory", "duckdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> st.MetadataStore:
    if request.param == "memory":
        return st.InMemoryStore()
    return st.DuckDBStore(tmp_path / "meta.duckdb")


def test_resolving_before_the_upstream_exists_does_not_break_later_resolves(store: st.MetadataStore) -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", fields=["x"])):
            pass

        class C(st.Feature, spec=st.FeatureSpec("c", deps=[A], fields=["y"])):
            pass

    store.graph = graph
    with store:
        early = store.resolve_update(C)
        assert early.is_empty
        inc = store.resolve_update(A, samples=pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["v1", "v2"]}))
        store.write(A, inc.added)
        for _ in range(2):
            later = store.resolve_update(C)
            assert sorted(later.added.to_native()["sample_uid"].to_list()) == [1, 2]
            assert later.added.to_native().schema["sample_uid"] == pl.Int64


def _two_roots_and_a_join(store: st.MetadataStore) -> None:
    """Roots ``a`` and ``b`` and ``c`` on both, as the store's graph."""
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", fields=["x"])):
            pass

        class B(st.Feature, spec=st.FeatureSpec("b", fields=["z"])):
            pass

        class C(st.Feature, spec=st.FeatureSpec("c", deps=[A, B], fields=["y"])):
            pass

    store.graph = graph


def test_an_increments_id_types_do_not_depend_on_whether_its_table_exists(store: st.MetadataStore) -> None:
    _two_roots_and_a_join(store)
    with store:
        store.write("a", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["v1", "v2"]}))
        store.write("b", pl.DataFrame({"sample_uid": [3], "strata_dv__z": ["w"]}))  # no id shared with A
        for _ in range(2):
            inc = store.resolve_update("c")
            assert inc.is_empty
            for part in (inc.added, inc.changed, inc.removed):
                assert part.to_native().schema["sample_uid"] == pl.Int64
        store.write("b", pl.DataFrame({"sample_uid": [1], "strata_dv__z": ["w"]}))
        assert store.resolve_update("c").added.to_native()["sample_uid"].to_list() == [1]


def test_ids_keep_their_type_when_a_second_upstream_was_never_written(store: st.MetadataStore) -> None:
    _two_roots_and_a_join(store)
    with store:
        assert store.resolve_update("c").is_empty  # recorded in sync before anything exists
        store.write("a", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["v1", "v2"]}))
        for lazy in (False, True, False):
            inc = store.resolve_update("c", lazy=lazy).collect()
            for part in (inc.added, inc.changed, inc.removed):
                assert part.to_native().schema["sample_uid"] == pl.Int64
