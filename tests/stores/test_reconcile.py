"""Reconcile in every store: a refactor's new versions written over the stored provenance, nothing computed.

``store.reconcile(feature, fields=...)`` is what a migration's **reconcile** operation calls
(docs/stores.md): the store's graph is the new code; each latest row stale in a reconciled field
takes the new graph's provenance, keeps its user columns, and its old row goes to history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from strata.errors import UsageError, WriteError
from strata.resolve.plan import shown_code_version, stored_code_version
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import embedding, frames, loader_graph, summary, video
from tests.stores.test_conformance import graph_of, roots

KEYS = ("video", "transcript", "embedding")


def fill(store: st.MetadataStore, n: int = 5) -> None:
    """Every feature computed for ``n`` samples, with a user column of each feature's own."""
    for key in KEYS:
        inc = store.resolve_update(key, samples=roots(n)) if key == "video" else store.resolve_update(key)
        new = pl.concat(
            [inc.added.to_native(), inc.changed.to_native().select(inc.added.columns)], how="vertical"
        ).sort("sample_uid")
        store.write(key, new.with_columns(pl.format(f"{key}-{{}}", pl.col("sample_uid")).alias("note")))


def stale(store: st.MetadataStore, key: str, n: int = 5) -> dict[int, dict[str, str]]:
    """Per sample a resolve lists as changed, its non-null causes."""
    inc = store.resolve_update(key, samples=roots(n)) if key == "video" else store.resolve_update(key)
    assert len(inc.added) == 0
    assert len(inc.removed) == 0
    out = {}
    for row in inc.changed.to_native().iter_rows(named=True):
        out[row["sample_uid"]] = {
            k.removeprefix("strata_cause__"): v for k, v in row.items() if k.startswith("strata_cause__") and v
        }
    return out


def stored(store: st.MetadataStore, key: str, field: str, code_version: str) -> str:
    """What ``strata_cv__<field>`` holds for a field of a non-root feature: its code version with its input list."""
    value = stored_code_version(code_version, tuple(store.graph.field_inputs(key, field)))
    assert shown_code_version(value) == code_version
    return value


def users(store: st.MetadataStore, key: str) -> pl.DataFrame:
    """The live rows without their provenance: what reconcile must leave as it is."""
    frame: pl.DataFrame = store.read(key).to_native()
    return frame.select([c for c in frame.columns if not c.startswith("strata_")]).sort("sample_uid")


def test_a_refactored_field_is_reconciled_root_first_and_everything_is_in_sync(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        fill(store)
        before = {key: users(store, key) for key in KEYS}
        store.graph = graph_of(text_cv="2")
        assert stale(store, "transcript") == {key: {"text": "code"} for key in range(5)}
        done = [store.reconcile(key) for key in KEYS]
        assert done == [
            st.Reconciled(st.FeatureKey("video"), 0, ("audio", "frames")),
            st.Reconciled(st.FeatureKey("transcript"), 5, ("text",)),
            st.Reconciled(st.FeatureKey("embedding"), 5, ("vector",)),  # its input, transcript.text, was rewritten
        ]
        for key in KEYS:
            assert stale(store, key) == {}
            assert users(store, key).equals(before[key])
        graph = store.graph
        for key in ("transcript", "embedding"):
            live = store.read(key).to_native()
            assert set(live["strata_feature_version"]) == {graph.feature_version(key)}
            assert set(live["strata_snapshot_version"]) == {graph.snapshot_version}
            every = store.read(key, feature_version="all").to_native()
            assert len(every) == 10  # the old rows went to history
            old = graph_of().feature_version(key)
            assert every.filter(pl.col("strata_feature_version") == old)["note"].sort().equals(before[key]["note"])
        assert store.read("transcript")["strata_cv__text"].to_list() == [stored(store, "transcript", "text", "2")] * 5
        assert store.reconcile("transcript").samples == 0  # nothing left to reconcile


def test_a_field_left_out_stays_stale_for_exactly_its_samples(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        fill(store)
        store.graph = graph_of(audio_cv="2", frames_cv="2")
        store.write("video", roots(5).filter(pl.col("sample_uid") < 2))  # recomputed under the new code
        assert stale(store, "video") == {key: {"audio": "code", "frames": "code"} for key in range(2, 5)}
        done = store.reconcile("video", fields=["audio"])
        assert done == st.Reconciled(st.FeatureKey("video"), 3, ("audio",))
        assert stale(store, "video") == {key: {"frames": "code"} for key in range(2, 5)}
        assert stale(store, "transcript") == {}  # a root's data versions are its caller's: nothing downstream moves


def test_a_dry_run_counts_and_writes_nothing(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        fill(store)
        store.graph = graph_of(text_cv="2")
        history = len(store.read("transcript", feature_version="all"))
        assert store.reconcile("transcript", dry_run=True) == st.Reconciled(st.FeatureKey("transcript"), 5, ("text",))
        assert len(store.read("transcript", feature_version="all")) == history
        assert stale(store, "transcript") == {key: {"text": "code"} for key in range(5)}


def test_a_read_only_store_refuses_and_a_wrong_field_is_one_line(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    with store_factory(graph=graph_of()) as store:
        fill(store)
        with pytest.raises(UsageError, match=r"`transcript` has no field `nope`; .*text"):
            store.reconcile("transcript", fields=["nope"])
        if request.node.callspec.params["store_factory"] in ("memory", "duckdb-memory"):
            return  # nothing outlives the store's connection
    with store_factory(graph=graph_of(text_cv="2"), read_only=True) as store:
        with pytest.raises(WriteError, match="read-only") as caught:
            store.reconcile("transcript")
        assert "\n" not in str(caught.value)
        assert store.reconcile("transcript", dry_run=True).samples == 5  # counting writes nothing


def test_a_shared_input_is_not_rewritten_for_one_field_only(store_factory: StoreFactory) -> None:
    """Fields reading one reconciled input: reconciling one alone would hide the other's staleness."""
    with store_factory(graph=mid_graph()) as store:
        store.write("base", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["a", "b"]}))
        for key in ("mid", "pair"):
            store.write(key, store.resolve_update(key).added)
        store.graph = mid_graph(m_cv="2")
        assert store.reconcile("mid").samples == 2  # m's data versions hash its new code version
        assert stale(store, "pair", 0) == {i: {"one": "mid.m", "two": "mid.m"} for i in (1, 2)}
        with pytest.raises(UsageError, match=r"fields `one` and `two` of `pair` both read `mid.m`"):
            store.reconcile("pair", fields=["one"])
        assert store.reconcile("pair") == st.Reconciled(st.FeatureKey("pair"), 2, ("one", "two"))
        assert stale(store, "pair", 0) == {}


def test_a_root_input_is_never_rewritten_so_a_field_left_out_keeps_its_staleness(
    store_factory: StoreFactory,
) -> None:
    """New data upstream is no refactor: reconcile absorbs code changes, a root's new data stays stale."""
    with store_factory(graph=mid_graph()) as store:
        store.write("base", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["a", "b"]}))
        for key in ("mid", "pair"):
            store.write(key, store.resolve_update(key).added)
        store.graph = mid_graph(m_cv="2")
        store.write("base", pl.DataFrame({"sample_uid": [1], "strata_dv__x": ["new"]}))
        assert store.reconcile("mid") == st.Reconciled(st.FeatureKey("mid"), 2, ("m",))
        assert stale(store, "mid", 0) == {1: {"m": "base.x"}}  # its code change absorbed, its new data not


def pair_graph(x_cv: str = "1") -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():
        graph.add_spec(st.FeatureSpec("base", fields=[st.FieldSpec("x", x_cv)]))
        graph.add_spec(st.FeatureSpec("pair", deps=["base"], fields=["one", "two"]))
    return graph


def mid_graph(m_cv: str = "1") -> st.FeatureGraph:
    """base(x) -> mid(m <- x) -> pair(one, two <- m)."""
    graph = st.FeatureGraph()
    with graph.use():
        graph.add_spec(st.FeatureSpec("base", fields=["x"]))
        graph.add_spec(st.FeatureSpec("mid", deps=["base"], fields=[st.FieldSpec("m", m_cv)]))
        graph.add_spec(st.FeatureSpec("pair", deps=["mid"], fields=["one", "two"]))
    return graph


HOSTILE_KEY = "select/drop-table"
HOSTILE_ID = 'it\'s "id"; drop table x;--'
HOSTILE_COLUMN = 'note; it\'s "quoted" \\ DROP TABLE video;--'


def hostile_graph(cv: str = "1") -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():
        graph.add_spec(st.FeatureSpec("table/where", id_columns=[HOSTILE_ID], fields=["from"]))
        graph.add_spec(
            st.FeatureSpec(
                HOSTILE_KEY, id_columns=[HOSTILE_ID], deps=["table/where"], fields=[st.FieldSpec("union", cv)]
            )
        )
    return graph


def test_a_hostile_key_and_column_survive(store_factory: StoreFactory) -> None:
    ids = ["'; DROP TABLE x;--", 'a "b" \\ c', "ü 𝄞"]
    with store_factory(graph=hostile_graph()) as store:
        store.write("table/where", pl.DataFrame({HOSTILE_ID: ids, "strata_dv__from": ["1", "2", "3"]}))
        inc = store.resolve_update(HOSTILE_KEY)
        store.write(HOSTILE_KEY, inc.added.to_native().with_columns(pl.col(HOSTILE_ID).alias(HOSTILE_COLUMN)))
        store.graph = hostile_graph("2")
        assert store.reconcile(HOSTILE_KEY).samples == 3
        assert store.resolve_update(HOSTILE_KEY).is_empty
        live: dict[str, Any] = store.read(HOSTILE_KEY).to_native().sort(HOSTILE_ID).to_dict(as_series=False)
        assert live[HOSTILE_COLUMN] == sorted(ids)
        assert live["strata_cv__union"] == [stored(store, HOSTILE_KEY, "union", "2")] * 3


def lineage(pixels_cv: str = "1") -> st.FeatureGraph:
    """video -> frames (an expansion, field ``pixels``) -> summary (an aggregation of the frames)."""
    graph = st.FeatureGraph()
    with graph.use():
        summary(frames(video("frames"), st.FieldSpec("pixels", pixels_cv)))  # type: ignore[arg-type]
    return graph


def test_an_expansion_is_reconciled_child_by_child(store_factory: StoreFactory) -> None:
    """Each child of a stale parent is rewritten, and so is the row saying a parent has none."""
    with store_factory(graph=lineage()) as store:
        store.write("video", pl.DataFrame({"sample_uid": [0, 1, 2], "strata_dv__frames": ["x", "y", "z"]}))
        parents = store.resolve_update("frames").added.to_native()
        children = pl.DataFrame(
            {"sample_uid": [0, 0, 1, 2], "frame": [0, 1, 0, None]}, schema_overrides={"frame": pl.Int64}
        )
        store.write("frames", children.join(parents, on="sample_uid").with_columns(pl.col("frame").alias("seen")))
        store.write("summary", store.resolve_update("summary").added)
        before = users(store, "frames")
        store.graph = lineage("2")
        assert [store.reconcile(key).samples for key in ("video", "frames", "summary")] == [0, 4, 2]
        for key in ("frames", "summary"):
            assert store.resolve_update(key).is_empty
        assert users(store, "frames").sort("sample_uid", "frame").equals(before.sort("sample_uid", "frame"))


def test_a_field_never_written_is_left_to_a_recompute(store_factory: StoreFactory) -> None:
    """A field the code added has no stored values to keep: reconcile refuses it by name (and skips it unnamed)."""
    with store_factory(graph=pair_graph()) as store:
        store.write("base", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__x": ["a", "b"]}))
        store.write("pair", store.resolve_update("pair").added)
        graph = st.FeatureGraph()
        with graph.use():
            graph.add_spec(st.FeatureSpec("base", fields=["x"]))
            graph.add_spec(st.FeatureSpec("pair", deps=["base"], fields=["one", st.FieldSpec("two", "2"), "three"]))
        store.graph = graph
        with pytest.raises(UsageError, match=r"field `three` of `pair` was never written, .*; recompute it"):
            store.reconcile("pair", fields=["two", "three"])
        assert store.reconcile("pair", fields=["two"]) == st.Reconciled(st.FeatureKey("pair"), 2, ("two",))
        live = store.read("pair").to_native()
        assert live["strata_cv__two"].to_list() == [stored(store, "pair", "two", "2")] * 2
        assert "strata_dv__three" not in live.columns


def test_a_feature_with_its_own_input_loader_is_reconciled_through_it(store_factory: StoreFactory) -> None:
    with store_factory(graph=loader_graph()) as store:
        store.write("clip", pl.DataFrame({"clip_id": [1, 2], "strata_dv__audio": ["c1", "c2"]}))
        store.write("speaker", pl.DataFrame({"speaker": ["ann", "bob"], "strata_dv__voice": ["v-ann", "v-bob"]}))
        store.write("match", store.resolve_update("match").added.to_native().with_columns(pl.lit("kept").alias("note")))
        store.graph = loader_graph("2")
        assert store.reconcile("match") == st.Reconciled(st.FeatureKey("match"), 2, ("score",))
        assert store.resolve_update("match").is_empty
        assert store.read("match")["note"].to_list() == ["kept", "kept"]


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_a_chain_reconciles_its_first_store_reading_upstreams_through(kind: str, tmp_path: Path) -> None:
    """dev holds transcript, prod the video it reads: dev's rows are reconciled, prod's are left alone."""

    def make(name: str, **kwargs: Any) -> st.MetadataStore:
        if kind == "memory":
            return st.InMemoryStore(graph=graph_of(), name=name, **kwargs)
        return st.DuckDBStore(tmp_path / f"{name}.duckdb", graph=graph_of(), name=name, **kwargs)

    prod = make("prod")
    with prod:
        prod.write("video", roots(5))
    dev = make("dev", fallbacks=[prod])
    with dev:
        dev.write("transcript", dev.resolve_update("transcript").added)
        dev.graph = graph_of(text_cv="2")
        assert dev.reconcile("transcript").samples == 5
        assert dev.resolve_update("transcript").is_empty
        assert dev.reconcile("video").samples == 0  # prod's rows: not this store's to rewrite


def graph_text_reads_frames() -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():
        source = video(st.FieldSpec("audio", "1"), st.FieldSpec("frames", "1"))

        class Transcript(
            st.Feature,
            spec=st.FeatureSpec(
                "transcript",
                deps=[source],
                fields=[st.FieldSpec("text", "2", deps=[st.FieldDep(source, ["audio", "frames"])])],
            ),
        ):
            pass

        embedding(Transcript, source, "1")
    return graph


def test_a_field_reading_a_new_input_is_reconciled(store_factory: StoreFactory) -> None:
    """A refactor that passes a field one more input: its rows gain that column, every user column kept."""
    with store_factory(graph=graph_of()) as store:
        fill(store)
        before = users(store, "transcript")
        store.graph = graph_text_reads_frames()
        assert set(stale(store, "transcript")) == set(range(5))
        store.reconcile("video")
        done = store.reconcile("transcript")
        assert done.samples == 5
        assert stale(store, "transcript") == {}
        assert users(store, "transcript").equals(before)


def orders_graph(net_cv: str = "1", region_cv: str = "1") -> st.FeatureGraph:
    """orders(amount, country) -> priced(net <- amount, country; region <- country), as the trial's project."""
    graph = st.FeatureGraph()
    with graph.use():
        graph.add_spec(st.FeatureSpec("orders", fields=["amount", "country"]))
        net = st.FieldSpec("net", net_cv, deps=[st.FieldDep("orders", ["amount", "country"])])
        region = st.FieldSpec("region", region_cv, deps=[st.FieldDep("orders", ["country"])])
        graph.add_spec(st.FeatureSpec("priced", deps=["orders"], fields=[net, region]))
    return graph


def orders(n: int, changed: dict[int, str] | None = None) -> pl.DataFrame:
    """``n`` orders; ``changed``: orders re-ingested with another amount and country."""
    changed = changed or {}
    return pl.DataFrame(
        {
            "sample_uid": list(range(n)),
            "strata_dv__amount": [changed.get(i, f"amount{i}") for i in range(n)],
            "strata_dv__country": [changed.get(i, f"country{i}") for i in range(n)],
        }
    )


def built_orders(store: st.MetadataStore, n: int) -> pl.DataFrame:
    """Orders ingested and ``priced`` built, with a user column; its user columns."""
    store.write("orders", store.resolve_update("orders", samples=orders(n)).added)
    inc = store.resolve_update("priced")
    store.write("priced", inc.added.to_native().with_columns(pl.format("net-{}", pl.col("sample_uid")).alias("net")))
    return users(store, "priced")


def test_orders_reingested_between_a_build_and_a_reconcile_stay_stale(store_factory: StoreFactory) -> None:
    """Finding 2 of the trial: a reconcile took the new amounts of re-ingested orders as computed."""
    with store_factory(graph=orders_graph()) as store:
        before = built_orders(store, 6)
        store.write_changed("orders", orders(6, {1: "999", 2: "999", 3: "999"}))  # after the build
        store.graph = orders_graph(net_cv="2", region_cv="2")
        assert store.reconcile("priced").samples == 6
        changed = {"net": "orders.amount,orders.country", "region": "orders.country"}
        assert stale(store, "priced", 0) == dict.fromkeys((1, 2, 3), changed)  # the others absorbed the refactor
        assert users(store, "priced").equals(before)
        assert store.reconcile("priced").samples == 0  # nothing left it may absorb


def test_a_field_left_out_because_it_is_recomputed_does_not_block_its_sibling(store_factory: StoreFactory) -> None:
    """Finding 4 of the trial: `--reconcile priced.region` with `net` recomputed was refused (they share a root input)."""
    with store_factory(graph=orders_graph()) as store:
        built_orders(store, 4)
        store.write_changed("orders", orders(4, {0: "US", 1: "US"}))
        store.graph = orders_graph(net_cv="2", region_cv="2")
        assert store.reconcile("priced", fields=["region"]).samples == 4
        net = {"net": "code,orders.amount,orders.country"}
        assert stale(store, "priced", 0) == {
            **{i: {**net, "region": "orders.country"} for i in (0, 1)},
            **{i: {"net": "code"} for i in (2, 3)},
        }


def test_a_downstream_reconcile_after_an_upstream_one_keeps_upstream_data_changes_stale(
    store_factory: StoreFactory,
) -> None:
    """The chain's reconciled inputs are taken, a root's new data is not; a build then recomputes just those samples."""
    with store_factory(graph=graph_of()) as store:
        fill(store)
        store.write_changed("video", roots(5, audio={1: "new"}, frames={3: "new"}))
        store.graph = graph_of(text_cv="2", vector_cv="2")
        assert [store.reconcile(key).samples for key in KEYS] == [0, 5, 5]
        assert stale(store, "transcript") == {1: {"text": "video.audio"}}
        assert stale(store, "embedding") == {3: {"vector": "video.frames"}}  # transcript.text taken as reconciled
        inc = store.resolve_update("transcript")
        store.write("transcript", inc.changed.to_native().with_columns(pl.lit("again").alias("note")))
        assert stale(store, "embedding") == {1: {"vector": "transcript.text"}, 3: {"vector": "video.frames"}}


def test_upstream_names_the_fields_reconciled_before(store_factory: StoreFactory) -> None:
    """``upstream=``: only those upstream fields' new data versions are taken; an empty one takes none."""
    with store_factory(graph=graph_of()) as store:
        fill(store)
        store.graph = graph_of(text_cv="2", vector_cv="2")
        store.reconcile("transcript")
        assert store.reconcile("embedding", upstream=[]).samples == 5
        assert stale(store, "embedding") == {i: {"vector": "transcript.text"} for i in range(5)}
        assert store.reconcile("embedding", upstream=[("transcript", "text")]).samples == 5
        assert stale(store, "embedding") == {}
