"""Graph snapshots in every store: push, list, load back, rebuild (docs/stores.md, system tables)."""

from __future__ import annotations

import pytest

import strata as st
from strata.errors import SnapshotNotFoundError, UsageError, WriteError
from strata.features.diff import diff_graphs
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import graph_of

IN_MEMORY = ("memory", "duckdb-memory")


def test_a_pushed_graph_is_listed_loaded_back_and_rebuilt(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    first, second = graph_of(), graph_of(text_cv="2")
    store = store_factory(graph=first)
    with store:
        assert store.snapshots() == []
        pushed = store.push_graph(tags={"commit": "abc", "env": "ci"})
        assert pushed.added
        assert pushed.snapshot.version == first.snapshot_version
        again = store.push_graph(tags={"commit": "def"})
        assert not again.added
        assert again.snapshot == pushed.snapshot
        store.graph = second
        assert store.push_graph().added
        if request.node.callspec.params["store_factory"] not in IN_MEMORY:
            store.__exit__(None, None, None)
            store.__enter__()
        history = store.snapshots()
        assert [s.version for s in history] == [second.snapshot_version, first.snapshot_version]
        assert history[0].pushed_at > history[1].pushed_at
        assert history[1].tags == {"commit": "abc", "env": "ci"}
        assert history[1].feature_count == 3
        assert store.snapshot() == history[0]
        old = store.snapshot(first.snapshot_version)
        assert old == history[1]
        rebuilt = old.graph()
        assert rebuilt.snapshot_version == old.version == first.snapshot_version
        for key in first.keys:
            assert rebuilt.feature_version(key) == first.feature_version(key)
            assert rebuilt.field_versions(key) == first.field_versions(key)
            assert rebuilt.upstream(key) == first.upstream(key)
            for field in first.spec(key).fields:
                assert rebuilt.field_inputs(key, field.key) == first.field_inputs(key, field.key)
            entry = old.features[str(key)]
            assert entry["import_path"] == first.feature(key).import_path()
            assert entry["feature_version"] == first.feature_version(key)
        text = old.features["transcript"]["fields"]["text"]
        assert text == {
            "code_version": "1",
            "version": first.field_version("transcript", "text"),
            "inputs": ["video.audio"],
        }
        assert old.features["embedding"]["deps"] == {"transcript": ["text"], "video": ["frames"]}
        with pytest.raises(SnapshotNotFoundError, match="no snapshot `0000`"):
            store.snapshot("0000")


def test_going_back_to_an_earlier_graph_is_a_new_push(store_factory: StoreFactory) -> None:
    """History is what was pushed, in order: the graph of two pushes ago, pushed again, is the latest."""
    store = store_factory(graph=graph_of())
    with store:
        store.push_graph()
        store.graph = graph_of(audio_cv="2")
        store.push_graph()
        store.graph = graph_of()
        assert store.push_graph().added
        assert [s.version for s in store.snapshots()] == [
            graph_of().snapshot_version,
            graph_of(audio_cv="2").snapshot_version,
            graph_of().snapshot_version,
        ]


def test_a_read_only_store_refuses_a_push_and_lists_nothing(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of(), read_only=True)
    with store:
        with pytest.raises(WriteError, match="read-only"):
            store.push_graph()
        assert store.snapshots() == []
        with pytest.raises(SnapshotNotFoundError, match="no graph was pushed"):
            store.snapshot()


def test_a_chain_pushes_to_its_first_store_only() -> None:
    prod = st.InMemoryStore(graph=graph_of())
    dev = st.InMemoryStore(graph=graph_of(), fallbacks=[prod])
    with prod:
        prod.push_graph()
    with dev:
        dev.graph = graph_of(text_cv="3")
        assert dev.push_graph().added
        assert len(dev.snapshots()) == 1
    with prod:
        assert [s.version for s in prod.snapshots()] == [graph_of().snapshot_version]


def test_a_snapshot_is_found_by_a_unique_prefix_of_its_version(store_factory: StoreFactory) -> None:
    """As git finds a commit: enough leading characters to name one version; fewer is one clear error."""
    graphs = [graph_of(text_cv=str(n)) for n in range(1, 40)]
    store = store_factory(graph=graphs[0])
    with store:
        for graph in graphs:
            store.graph = graph
            store.push_graph()
        versions = [g.snapshot_version for g in graphs]
        first = versions[0]
        assert store.snapshot(first[:6]).version == first
        assert store.snapshot(first).version == first
        shared = next(v[:1] for v in versions[1:] if v[:1] == first[:1])  # 39 versions, 16 first digits
        with pytest.raises(UsageError, match=f"snapshot `{shared}` is ambiguous in .*: .*; give more characters"):
            store.snapshot(shared)
        with pytest.raises(SnapshotNotFoundError, match="no snapshot `zz`"):
            store.snapshot("zz")
        diff = diff_graphs(store.snapshot(versions[0][:8]).graph(), store.snapshot(versions[-1][:8]).graph())
        assert diff == diff_graphs(graphs[0], graphs[-1])
