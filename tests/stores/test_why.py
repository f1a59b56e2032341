"""``strata.why``: one sample's lineage and the exact causes of every difference, in every store."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

import strata as st
from strata.errors import FeatureNotFoundError, SampleNotFoundError, UsageError
from strata.views.why import Cause
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import lineage_graph
from tests.stores.test_chains import Make, make  # noqa: F401 - make: the fixture of chained stores
from tests.stores.test_conformance import graph_of, roots, rows, sync


def seen(found: st.Why) -> dict[str, Any]:
    """Per node ``feature ids``: its status, its sample causes and, per field, its causes with the samples behind them."""
    out: dict[str, Any] = {}
    for sample in found.samples:
        for node in sample.nodes:
            label = f"{node.feature} {','.join(f'{k}={v}' for k, v in node.ids.items())}"
            out[label] = (
                node.status,
                [(c.kind, changes(c)) for c in node.causes],
                {f.name: [(c.kind, c.input, changes(c)) for c in f.causes] for f in node.fields if f.causes},
            )
    return out


def changes(cause: Cause) -> list[tuple[str, str, str]]:
    return [(str(s.feature), ",".join(f"{k}={v}" for k, v in s.ids.items()), s.change) for s in cause.samples]


def test_a_root_field_change_is_the_cause_of_the_feature_reading_it(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.write("video", rows(store.resolve_update("video", samples=roots(3, audio={1: "new"}))))
        found = st.why(store, "embedding", {"sample_uid": 1})
        assert seen(found) == {
            "video sample_uid=1": ("present", [], {}),
            "transcript sample_uid=1": (
                "stale",
                [],
                {"text": [("input", "video.audio", [("video", "sample_uid=1", "changed")])]},
            ),
            "embedding sample_uid=1": ("up to date", [], {}),
        }
        text = found.samples[0].nodes[1].fields[0]
        assert (text.causes[0].stored, text.causes[0].now) == ("a1", "new")
        assert text.stored != text.expected
        assert seen(st.why(store, "transcript", 0)) == {
            "video sample_uid=0": ("present", [], {}),
            "transcript sample_uid=0": ("up to date", [], {}),
        }


def test_a_code_bump_and_an_upstream_change_are_both_named(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.write("video", rows(store.resolve_update("video", samples=roots(3, frames={2: "new"}))))
        store.graph = graph_of(vector_cv="2")
        found = st.why(store, "embedding", [1, "2"])
        assert seen(found)["embedding sample_uid=1"] == ("stale", [], {"vector": [("code", None, [])]})
        assert seen(found)["embedding sample_uid=2"] == (
            "stale",
            [],
            {"vector": [("code", None, []), ("input", "video.frames", [("video", "sample_uid=2", "changed")])]},
        )
        vector = found.samples[0].nodes[-1].fields[0]
        assert (vector.code_version, vector.expected_code_version) == ("1", "2")
        assert vector.causes[0].text == "code_version `1` -> `2`"


def test_a_root_code_bump_makes_the_root_stale(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(2))
        store.graph = graph_of(audio_cv="2")
        assert seen(st.why(store, "video", 1)) == {"video sample_uid=1": ("stale", [], {"audio": [("code", None, [])]})}


def test_a_deleted_root_sample_is_the_cause_of_a_removal_downstream(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.delete("video", pl.DataFrame({"sample_uid": [1]}))
        assert seen(st.why(store, "transcript", 1)) == {
            "video sample_uid=1": ("deleted", [], {}),
            "transcript sample_uid=1": ("to remove", [("gone", [("video", "sample_uid=1", "removed")])], {}),
        }


def test_a_sample_deleted_then_sent_again_waits_for_its_upstream_downstream(store_factory: StoreFactory) -> None:
    """Deleted, built (removed downstream), then the source sends it again: downstream waits, nothing is gone."""
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(3))
        store.delete("video", pl.DataFrame({"sample_uid": [1]}))
        sync(store, roots(3).filter(pl.col("sample_uid") != 1))
        store.write("video", roots(3).filter(pl.col("sample_uid") == 1))
        found = seen(st.why(store, "embedding", 1))
        assert found["transcript sample_uid=1"][:2] == ("to add", [("new", [("video", "sample_uid=1", "added")])])
        assert found["embedding sample_uid=1"] == (
            "missing",
            [("new", [("transcript", "sample_uid=1", "to add")])],
            {},
        )


def test_a_new_root_sample_is_to_add_downstream(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(2))
        store.write("video", rows(store.resolve_update("video", samples=roots(3))))
        found = seen(st.why(store, "embedding", 2))
        assert found["transcript sample_uid=2"] == ("to add", [("new", [("video", "sample_uid=2", "added")])], {})
        assert found["embedding sample_uid=2"] == (  # computed after transcript: nothing of it is gone
            "missing",
            [("new", [("transcript", "sample_uid=2", "to add")])],
            {},
        )


def lineage_store(store: st.MetadataStore) -> None:
    """video 1, 2 -> frames (three children each, pixels per child) -> summary, all in sync."""
    store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]}))
    parents = store.resolve_update("frames").added.to_native()
    store.write("frames", children(parents, [0, 1, 2]))
    store.write("summary", store.resolve_update("summary").added.to_native())


def children(parents: pl.DataFrame, frames: list[int], tag: str = "") -> pl.DataFrame:
    """Each parent's children ``frames``, each with its own data version (as a compute that hashes content gives)."""
    out = parents.join(pl.DataFrame({"frame": frames}), how="cross")
    pixels = pl.format("p{}-{}{}", "sample_uid", "frame", pl.lit(tag))
    return out.with_columns(pixels.alias("strata_dv__pixels"))


def test_an_expansion_child_names_its_parent(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        store.write("video", pl.DataFrame({"sample_uid": [2], "strata_dv__frames": ["v2-new"]}))
        found = st.why(store, "frames", {"sample_uid": 2, "frame": 1})
        assert seen(found) == {
            "video sample_uid=2": ("present", [], {}),
            "frames sample_uid=2,frame=1": (
                "stale",
                [],
                {"pixels": [("input", "video.frames", [("video", "sample_uid=2", "changed")])]},
            ),
        }
        link = found.samples[0].nodes[-1].upstreams[0]
        assert (str(link.feature), link.lineage, link.ids) == ("video", "expansion", ({"sample_uid": 2},))


def test_an_expansion_child_its_parents_last_write_left_out_is_dropped(store_factory: StoreFactory) -> None:
    """A child the parent's later write did not produce is missing for that reason, not for a gone upstream."""
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        parent = store.read("frames").to_native().filter(pl.col("sample_uid") == 2)
        parent = parent.select("sample_uid", "strata_in__video__frames").unique()
        store.write("frames", pl.concat([children(parent, [1], "-new"), children(parent, [3])]))
        found = st.why(store, "frames", {"sample_uid": 2, "frame": 0})
        assert seen(found) == {
            "video sample_uid=2": ("present", [], {}),
            "frames sample_uid=2,frame=0": ("missing", [("dropped", [])], {}),
        }
        assert "last write of `frames` for sample_uid=2 did not produce it" in found.samples[0].nodes[-1].causes[0].text
        assert seen(st.why(store, "frames", {"sample_uid": 2, "frame": 1}))["frames sample_uid=2,frame=1"] == (
            "up to date",
            [],
            {},
        )
        store.delete("video", pl.DataFrame({"sample_uid": [2]}))
        found = st.why(store, "frames", {"sample_uid": 2, "frame": 1})
        assert seen(found)["frames sample_uid=2,frame=1"] == (
            "to remove",
            [("gone", [("video", "sample_uid=2", "removed")])],
            {},
        )


def test_a_child_deleted_after_its_parents_last_write_is_deleted_not_dropped(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        parent = store.read("frames").to_native().filter(pl.col("sample_uid") == 2)
        parent = parent.select("sample_uid", "strata_in__video__frames").unique()
        store.write("frames", children(parent, [1, 2]))  # frame 0 left out by this write
        store.delete("frames", pl.DataFrame({"sample_uid": [2], "frame": [2]}))  # frame 2 deleted afterwards
        assert seen(st.why(store, "frames", {"sample_uid": 2, "frame": 0}))["frames sample_uid=2,frame=0"] == (
            "missing",
            [("dropped", [])],
            {},
        )
        deleted = st.why(store, "frames", {"sample_uid": 2, "frame": 2}).samples[0].nodes[-1]
        assert (deleted.status, [c.kind for c in deleted.causes]) == ("missing", ["deleted"])
        assert deleted.causes[0].text == "deleted from `frames` while its parent sample_uid=2 is still there"


def test_an_aggregation_names_the_children_changed_added_and_removed(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        parent = store.read("frames").to_native().filter(pl.col("sample_uid") == 2)
        parent = parent.select("sample_uid", "strata_in__video__frames").unique()
        redone = pl.concat([children(parent, [1], "-new"), children(parent, [3])])
        store.write("frames", redone)  # an expansion's rows replace the parent's: children 0 and 2 go
        found = st.why(store, "summary", 2)
        assert seen(found)["summary sample_uid=2"] == (
            "stale",
            [],
            {
                "mean": [
                    (
                        "input",
                        "frames.pixels",
                        [
                            ("frames", "sample_uid=2,frame=0", "removed"),
                            ("frames", "sample_uid=2,frame=1", "changed"),
                            ("frames", "sample_uid=2,frame=2", "removed"),
                            ("frames", "sample_uid=2,frame=3", "added"),
                        ],
                    )
                ]
            },
        )
        changed = found.samples[0].nodes[-1].fields[0].causes[0].samples[1]
        assert (changed.stored, changed.now) == ("p2-1", "p2-1-new")
        link = found.samples[0].nodes[-1].upstreams[0]
        assert (link.lineage, link.total) == ("aggregation", 4)
        assert seen(st.why(store, "summary", 1))["summary sample_uid=1"] == ("up to date", [], {})


def test_an_aggregation_whose_children_are_all_gone_is_to_remove(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        store.delete("frames", pl.DataFrame({"sample_uid": [1, 1, 1], "frame": [0, 1, 2]}))
        assert seen(st.why(store, "summary", 1))["summary sample_uid=1"] == (
            "to remove",
            [("gone", [("frames", "sample_uid=1", "removed")])],
            {},
        )


def test_an_aggregation_of_a_parent_with_no_children_says_so(store_factory: StoreFactory) -> None:
    """A video whose frames write produced no child: `summary` has no sample, and why says why, not 'no sample'."""
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        store.write("video", pl.DataFrame({"sample_uid": [3], "strata_dv__frames": ["v3"]}))
        none = {"sample_uid": [3], "frame": [None], "strata_in__video__frames": ["v3"], "strata_dv__pixels": ["-"]}
        store.write("frames", pl.DataFrame(none, schema_overrides={"frame": pl.Int64, "strata_dv__pixels": pl.String}))
        found = st.why(store, "summary", 3)
        assert seen(found)["summary sample_uid=3"] == (
            "missing",
            [("empty", [("frames", "sample_uid=3", "removed")])],
            {},
        )
        assert found.samples[0].nodes[-1].causes[0].text == (
            "`frames` holds no child of sample_uid=3: there is nothing to aggregate"
        )
        with pytest.raises(SampleNotFoundError):
            st.why(store, "summary", 7)


def test_the_json_holds_every_node_roots_first(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_of(), name="dev") as store:
        sync(store, roots(2))
        data = st.why(store, "embedding", 1).to_json()
        assert data["feature"] == "embedding"
        assert data["store"] == "dev"
        assert [n["feature"] for n in data["samples"][0]["lineage"]] == ["video", "transcript", "embedding"]
        assert data["samples"][0]["status"] == "up to date"


def test_bad_input_is_one_usage_error(store_factory: StoreFactory) -> None:
    with store_factory(graph=lineage_graph()) as store:
        lineage_store(store)
        with pytest.raises(SampleNotFoundError, match=r"no sample sample_uid=9 in `summary` nor its upstreams"):
            st.why(store, "summary", 9)
        with pytest.raises(SampleNotFoundError, match=r"no sample sample_uid=9 in `video`"):
            st.why(store, "video", "9")
        with pytest.raises(FeatureNotFoundError, match="no feature `nope`"):
            st.why(store, "nope", 1)
        with pytest.raises(UsageError, match=r"id `sample_uid` of `summary` is stored as Int64: 'x' is not one"):
            st.why(store, "summary", "x")
        with pytest.raises(UsageError, match=r"`frames` has id columns sample_uid, frame: no value for frame"):
            st.why(store, "frames", {"sample_uid": 1})
        with pytest.raises(UsageError, match=r"is one value, but `frames` has id columns"):
            st.why(store, "frames", 1)


def test_a_dev_store_answers_through_its_fallback(make: Make) -> None:  # noqa: F811 - the fixture
    graph = graph_of()
    prod = make("prod", graph=graph)
    with prod:
        sync(prod, roots(3))
    dev = make("dev", graph=graph, fallbacks=[prod])
    with dev:
        assert seen(st.why(dev, "transcript", 1)) == {
            "video sample_uid=1": ("present", [], {}),
            "transcript sample_uid=1": ("to add", [("new", [("video", "sample_uid=1", "added")])], {}),
        }  # dev holds no transcript: a build computes it there, as `lookup` and resolve_update say
        assert seen(st.why(dev, "transcript", "1")) == seen(
            st.why(dev, "transcript", 1)
        )  # ids typed as prod holds them
        with pytest.raises(SampleNotFoundError, match=r"no sample sample_uid=7 in `transcript` nor its upstreams"):
            st.why(dev, "transcript", 7)


def test_an_aggregation_in_a_dev_store_compares_its_children_in_the_fallback_by_time(make: Make) -> None:  # noqa: F811
    """Each store numbers its own writes: the children a dev row saw are found by when they were written."""
    prod = make("prod", graph=lineage_graph())
    with prod:
        lineage_store(prod)
        for tag in ("a", "b", "c"):  # prod's numbers run ahead of dev's
            prod.write("video", pl.DataFrame({"sample_uid": [1], "strata_dv__frames": [f"v1-{tag}"]}))
    dev = make("dev", graph=lineage_graph(), fallbacks=[prod])
    with dev:
        dev.write("summary", dev.resolve_update("summary").added.to_native())
        assert seen(st.why(dev, "summary", 2))["summary sample_uid=2"] == ("up to date", [], {})
    with prod:
        parent = prod.read("frames").to_native().filter(pl.col("sample_uid") == 2)
        parent = parent.select("sample_uid", "strata_in__video__frames").unique()
        prod.write(
            "frames",
            children(parent, [0, 1, 2]).with_columns(
                pl.when(pl.col("frame") == 1)
                .then(pl.lit("p2-1-new"))
                .otherwise(pl.col("strata_dv__pixels"))
                .alias("strata_dv__pixels")
            ),
        )
    with dev:
        found = st.why(dev, "summary", 2)
        assert seen(found)["summary sample_uid=2"] == (
            "stale",
            [],
            {"mean": [("input", "frames.pixels", [("frames", "sample_uid=2,frame=1", "changed")])]},
        )
        link = found.samples[0].nodes[-1].upstreams[0]
        assert (link.lineage, link.total) == ("aggregation", 3)


def test_a_field_reading_another_input_list_is_stale_by_code_shown_without_the_stored_hash(
    store_factory: StoreFactory,
) -> None:
    """The stored code version carries the field's input list; `why` names the change and shows plain versions."""
    from tests.stores.test_input_lists import build_b, pair, samples

    with store_factory(graph=pair(["x"], ["y"])) as store:
        store.write("a", store.resolve_update("a", samples=samples()).added)
        build_b(store)
        store.graph = pair(["x", "y"], ["y"])
        found = st.why(store, "b", 1)
        p, q = found.samples[0].nodes[-1].fields
        assert (p.code_version, p.expected_code_version, q.code_version) == ("1", "1", "1")
        assert [(c.kind, c.text) for c in p.causes] == [
            ("code", "the upstream fields it reads changed (code_version `1` as before)")
        ]
        assert q.causes == ()
