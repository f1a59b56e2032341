"""Migrations in every store: progress records in ``strata$migrations``, recompute and reconcile applied."""

from __future__ import annotations

import pytest

import strata as st
from strata.errors import SnapshotNotFoundError, UsageError, WriteError
from strata.features.diff import diff_graphs
from strata.features.migrations import Loaded, Migration, Operation, Progress, apply, operations
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import causes, graph_of, roots, sync
from tests.stores.test_reconcile import built_orders, orders, orders_graph, stale, users

IN_MEMORY = ("memory", "duckdb-memory")


def migration_of(store: st.MetadataStore, new: st.FeatureGraph, reconcile: list[str] | None = None) -> Loaded:
    """One migration from the store's latest snapshot to ``new``, as ``generate`` writes it."""
    diff = diff_graphs(store.snapshot(), new)
    ops = operations(diff, reconcile or [])
    return Loaded([Migration("0001_bump", None, diff.old_version, diff.new_version, "", ops)])


def reopen(store: st.MetadataStore, request: pytest.FixtureRequest) -> None:
    """Close and open a store that keeps its data on disk, as the next process would see it."""
    if request.node.callspec.params["store_factory"] not in IN_MEMORY:
        store.__exit__(None, None, None)
        store.__enter__()


def test_recompute_records_progress_leaves_samples_stale_and_is_idempotent(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(4))
        store.push_graph()
        new = graph_of(text_cv="2")
        loaded = migration_of(store, new)
        assert [(o.feature, o.op, o.fields) for o in loaded.chain[0].operations] == [
            ("transcript", "recompute", ["text"]),
            ("embedding", "recompute", ["vector"]),
        ]
        store.graph = new
        done = apply(store, loaded)
        assert [s.operation.feature for s in done.steps] == ["transcript", "embedding"]
        assert not any(s.skipped for s in done.steps)
        reopen(store, request)
        assert Progress.of(store).applied == {"0001_bump"}
        assert Progress.of(store).done == {"0001_bump": {1, 2}}
        assert store.snapshot().version == new.snapshot_version
        stale = store.resolve_update("transcript")
        assert stale.counts() == {"added": 0, "changed": 4, "removed": 0}
        assert set(causes(stale, "text").values()) == {"code"}
        assert store.resolve_update("embedding").is_empty  # stale only once transcript is recomputed
        again = apply(store, loaded)
        assert again.migrations == []
        assert len(store.migration_records()) == 3


def test_a_rerun_skips_the_operations_recorded_as_done(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(2))
        store.push_graph()
        new = graph_of(text_cv="2")
        loaded = migration_of(store, new)
        store.graph = new
        store.record_migration("0001_bump", {"kind": "operation", "migration": "0001_bump", "operation": 1})
        assert Progress.of(store).state(loaded.chain[0]) == "partial (1/2 operations)"
        done = apply(store, loaded)
        assert [s.skipped for s in done.steps] == [True, False]
        assert Progress.of(store).done == {"0001_bump": {1, 2}}


def test_a_from_snapshot_not_in_the_store_changes_nothing(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        other = graph_of(audio_cv="9")
        ops = operations(diff_graphs(other, graph_of()), [])  # a migration with no operations is refused first
        loaded = Loaded([Migration("0001_x", None, other.snapshot_version, graph_of().snapshot_version, "", ops)])
        with pytest.raises(SnapshotNotFoundError, match="starts from snapshot"):
            apply(store, loaded)
        assert store.migration_records() == []
        assert store.snapshots() == []


def test_a_read_only_store_records_nothing(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of(), read_only=True) as store:
        with pytest.raises(WriteError, match="read-only"):
            store.record_migration("0001_x", {"kind": "applied", "migration": "0001_x"})
        assert store.migration_records() == []


def test_a_chain_records_progress_in_its_first_store_only() -> None:
    prod = st.InMemoryStore(graph=graph_of())
    dev = st.InMemoryStore(graph=graph_of(), fallbacks=[prod])
    with prod, dev:
        sync(prod, roots(2))
        dev.push_graph()
        new = graph_of(text_cv="2")
        loaded = migration_of(dev, new)
        dev.graph = new
        apply(dev, loaded)
        assert Progress.of(dev).applied == {"0001_bump"}
        assert prod.migration_records() == []
        assert prod.snapshots() == []


def test_reconcile_puts_the_fields_in_sync_and_keeps_user_columns(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(3), transcript=lambda frame: frame.with_columns(note=frame["sample_uid"] * 10))
        store.push_graph()
        new = graph_of(text_cv="2")
        loaded = migration_of(store, new, reconcile=["transcript"])
        assert [o.op for o in loaded.chain[0].operations] == ["reconcile", "recompute"]
        store.graph = new
        done = apply(store, loaded)
        assert [s.samples for s in done.steps] == [3, None]
        assert store.resolve_update("transcript").is_empty
        notes = store.read("transcript").to_native().sort("sample_uid")["note"].to_list()
        assert notes == [0, 10, 20]
        stale = store.resolve_update("embedding")  # recompute: stale, through the reconciled text
        assert stale.counts() == {"added": 0, "changed": 3, "removed": 0}
        assert set(causes(stale, "vector").values()) == {"transcript.text"}


def test_reconciling_every_affected_feature_leaves_nothing_stale(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        sync(store, roots(3))
        store.push_graph()
        new = graph_of(audio_cv="2")
        loaded = migration_of(store, new, reconcile=["video", "transcript", "embedding"])
        store.graph = new
        done = apply(store, loaded)
        # a root's data versions are its caller's, so reading video.audio changed no data downstream
        assert [(s.operation.feature, s.samples) for s in done.steps] == [
            ("video", 3),
            ("transcript", 0),
            ("embedding", 0),
        ]
        assert store.resolve_update("video", samples=roots(3)).is_empty
        assert store.resolve_update("transcript").is_empty
        assert store.resolve_update("embedding").is_empty


def test_operations_name_what_reconcile_picks() -> None:
    diff = diff_graphs(graph_of(), graph_of(audio_cv="2"))
    ops = operations(diff, ["video.audio"])
    assert [(o.feature, o.op, o.fields) for o in ops] == [
        ("video", "reconcile", ["audio"]),
        ("transcript", "recompute", ["text"]),
        ("embedding", "recompute", ["vector"]),
    ]
    assert ops[0].reason == "code version of field audio 1 -> 2"
    assert ops[1].reason == "text: reached by video.audio"
    assert ops == [Operation(o.feature, o.op, o.fields, o.reason) for o in ops]


def test_a_parent_not_applied_changes_nothing(store_factory: StoreFactory) -> None:
    store = store_factory(graph=graph_of())
    with store:
        store.push_graph()
        version = graph_of().snapshot_version
        ops = operations(diff_graphs(graph_of(), graph_of(text_cv="2")), [])  # none: refused first
        loaded = Loaded(
            [Migration("0002_next", "0001_first", version, graph_of(text_cv="2").snapshot_version, "", ops)]
        )
        with pytest.raises(UsageError, match="migration 0002_next: parent 0001_first is not applied"):
            apply(store, loaded)
        assert store.migration_records() == []
        assert [s.version for s in store.snapshots()] == [version]


@pytest.mark.parametrize("order", ["reconcile-then-recompute", "recompute-then-reconcile"])
def test_a_field_recomputed_by_one_migration_of_an_apply_is_reconciled_by_none(
    store_factory: StoreFactory, order: str
) -> None:
    """Two pending migrations change one field: reconciling it to the code's versions would hide the real change."""
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.push_graph()
        first, second = graph_of(text_cv="2"), graph_of(text_cv="3")
        reconciled = ["transcript"]
        picks = (reconciled, []) if order == "reconcile-then-recompute" else ([], reconciled)
        one = diff_graphs(store.snapshot(), first)
        two = diff_graphs(first, second)
        loaded = Loaded(
            [
                Migration("0001_one", None, one.old_version, one.new_version, "", operations(one, picks[0])),
                Migration("0002_two", "0001_one", two.old_version, two.new_version, "", operations(two, picks[1])),
            ]
        )
        assert sorted(o.op for m in loaded.chain for o in m.operations if o.feature == "transcript") == [
            "recompute",
            "reconcile",
        ]
        store.graph = second
        applied = apply(store, loaded)
        reconcile = next(s for s in applied.steps if s.operation.op == "reconcile")
        assert (reconcile.superseded, reconcile.samples) == (("text",), 0)
        assert causes(store.resolve_update("transcript"), "text") == {0: "code", 1: "code", 2: "code"}


def test_generated_reconcile_of_one_field_applies_beside_a_recomputed_sibling(store_factory: StoreFactory) -> None:
    """Finding 4 of the trial: `--reconcile priced.region`, `net` recomputed, both reading `orders.country`."""
    with store_factory(graph=orders_graph()) as store:
        built_orders(store, 4)
        store.push_graph()
        store.write_changed("orders", orders(4, {0: "US"}))  # re-ingested after the build
        new = orders_graph(net_cv="2", region_cv="2")
        loaded = migration_of(store, new, reconcile=["priced.region"])
        assert [(o.op, o.fields) for o in loaded.chain[0].operations] == [
            ("reconcile", ["region"]),
            ("recompute", ["net"]),
        ]
        store.graph = new
        assert [s.samples for s in apply(store, loaded).steps] == [4, None]
        assert stale(store, "priced", 0) == {
            0: {"net": "code,orders.amount,orders.country", "region": "orders.country"},
            **{i: {"net": "code"} for i in (1, 2, 3)},
        }


def test_an_apply_keeps_data_reingested_since_the_build_stale(store_factory: StoreFactory) -> None:
    """Finding 2 of the trial, through a generated migration: `--reconcile priced` hid new amounts."""
    with store_factory(graph=orders_graph()) as store:
        before = built_orders(store, 5)
        store.push_graph()
        store.write_changed("orders", orders(5, {1: "999", 2: "999", 3: "999"}))
        new = orders_graph(net_cv="2", region_cv="2")
        loaded = migration_of(store, new, reconcile=["priced"])
        store.graph = new
        assert [s.samples for s in apply(store, loaded).steps] == [5]
        changed = {"net": "orders.amount,orders.country", "region": "orders.country"}
        assert stale(store, "priced", 0) == dict.fromkeys((1, 2, 3), changed)
        assert users(store, "priced").equals(before)
