"""A field added to (or removed from) a feature that already has stored rows, in every store.

The stored table has no ``strata_cv__`` / ``strata_dv__`` column of a new field, and a downstream
feature's table no ``strata_in__`` column of it: a column a table lacks reads as null, so every
stored sample is stale in the new field (its provenance is missing) and in the downstream fields
that read it (by ``code`` too: a field that reads one more input, or one fewer, has another
definition). A removed field's stored columns stay and are ignored.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

import strata as st
from strata.features.graph import FieldInput
from strata.features.keys import FieldKey
from strata.resolve.plan import stored_code_version
from tests.stores.conftest import StoreFactory
from tests.stores.graphs import frames, summary, video
from tests.stores.test_conformance import causes, graph_of, roots, rows, sync

N = 4
WORDS_INPUTS = (FieldInput(st.FeatureKey("video"), FieldKey("audio")),)
"""What ``transcript.words`` reads."""


def graph_with_words(*, vector_reads_words: bool = True) -> st.FeatureGraph:
    """:func:`graph_of` with a field ``words`` (from ``video.audio``) added to ``transcript``.

    ``vector_reads_words``: ``embedding.vector`` reads it too (its table lacks that input column).
    """
    graph = st.FeatureGraph()
    with graph.use():
        source = video(st.FieldSpec("audio", "1"), st.FieldSpec("frames", "1"))
        deps = [st.FieldDep(source, ["audio"])]

        class Transcript(
            st.Feature,
            spec=st.FeatureSpec(
                "transcript",
                deps=[source],
                fields=[st.FieldSpec("text", "1", deps=deps), st.FieldSpec("words", "1", deps=deps)],
            ),
        ):
            pass

        read = ["text", "words"] if vector_reads_words else ["text"]
        vector = st.FieldSpec("vector", "1", deps=[st.FieldDep(Transcript, read), st.FieldDep(source, ["frames"])])

        class Embedding(st.Feature, spec=st.FeatureSpec("embedding", deps=[Transcript, source], fields=[vector])):
            pass

    return graph


def in_sync(store: st.MetadataStore) -> bool:
    """Every feature of the graph resolves to nothing."""
    return store.resolve_update("video", samples=roots(N)).is_empty and all(
        store.resolve_update(key).is_empty for key in ("transcript", "embedding")
    )


def forget_sync(store: st.MetadataStore) -> None:
    """Clear every sync record without changing a row: the next resolves are full comparisons."""
    store.delete("video", pl.DataFrame({"sample_uid": [-1]}), soft=False)


def test_an_added_field_makes_exactly_its_samples_changed_then_a_build_brings_all_in_sync(
    store_factory: StoreFactory,
) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(N))
        assert in_sync(store)
        store.graph = graph_with_words()
        assert store.resolve_update("video", samples=roots(N)).is_empty
        transcript = store.resolve_update("transcript")
        assert transcript.meta["mode"] == "full"  # a definition change
        assert transcript.counts() == {"added": 0, "changed": N, "removed": 0}
        assert causes(transcript, "words") == dict.fromkeys(range(N), "code")
        assert causes(transcript, "text") == dict.fromkeys(range(N))
        store.write("transcript", rows(transcript))
        embedding = store.resolve_update("embedding")
        assert embedding.counts() == {"added": 0, "changed": N, "removed": 0}
        assert causes(embedding, "vector") == dict.fromkeys(range(N), "code,transcript.words")  # it reads one more
        store.write("embedding", rows(embedding))
        assert in_sync(store)
        forget_sync(store)
        assert in_sync(store)
        stored = store.read("transcript").to_native()
        assert stored["strata_cv__words"].to_list() == [stored_code_version("1", WORDS_INPUTS)] * N


def test_a_downstream_feature_whose_table_lacks_an_input_column_is_stale_in_the_reading_field(
    store_factory: StoreFactory,
) -> None:
    """Only ``embedding`` newly reads ``transcript.words``, which is already stored: its input column is missing."""
    with store_factory(graph=graph_with_words(vector_reads_words=False)) as store:
        sync(store, roots(N))
        store.graph = graph_with_words()
        assert store.resolve_update("transcript").is_empty
        embedding = store.resolve_update("embedding")
        assert causes(embedding, "vector") == dict.fromkeys(range(N), "code,transcript.words")
        store.write("embedding", rows(embedding))
        assert in_sync(store)


def test_a_downstream_resolved_before_its_upstream_computed_the_new_field_is_stale_on_the_sync_path(
    store_factory: StoreFactory,
) -> None:
    """``embedding`` resolved first reads the missing ``transcript.words`` as null: stale by code only (it reads one more).

    Computed so, then once ``transcript`` computes it, the sync record (not a full comparison) finds every sample stale.
    """
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(N))
        store.graph = graph_with_words()
        first = store.resolve_update("embedding")
        assert causes(first, "vector") == dict.fromkeys(range(N), "code")
        assert first.meta["mode"] == "full"
        store.write("embedding", rows(first))
        assert store.resolve_update("embedding").is_empty
        store.write("transcript", rows(store.resolve_update("transcript")))
        embedding = store.resolve_update("embedding")
        assert embedding.meta["mode"] == "since last sync"
        assert causes(embedding, "vector") == dict.fromkeys(range(N), "transcript.words")
        forget_sync(store)
        full = store.resolve_update("embedding")
        assert full.meta["mode"] == "full"
        assert causes(full, "vector") == causes(embedding, "vector")
        store.write("embedding", rows(full))
        assert in_sync(store)


def test_a_removed_field_leaves_its_columns_stored_and_ignored(store_factory: StoreFactory) -> None:
    with store_factory(graph=graph_with_words()) as store:
        sync(store, roots(N))
        store.graph = graph_of()
        assert store.resolve_update("transcript").is_empty  # its other fields read what they read
        embedding = store.resolve_update("embedding")
        assert causes(embedding, "vector") == dict.fromkeys(range(N), "code")  # it reads one input fewer
        store.write("embedding", rows(embedding))
        assert in_sync(store)  # no field reads the stored words columns any more
        forget_sync(store)
        assert in_sync(store)
        assert "strata_cv__words" in store.read("transcript").to_native().columns


def test_a_dev_store_resolves_an_added_field_over_a_fallback_that_lacks_its_columns(tmp_path: Path) -> None:
    """Prod written before ``words`` existed; dev (the new code) reads transcript from it, attached or as rows."""
    prod = st.DuckDBStore(tmp_path / "prod.duckdb", graph=graph_of(), name="prod")
    memory_prod = st.InMemoryStore(graph=graph_of(), name="prod")
    for fallback in (prod, memory_prod):
        with fallback:
            sync(fallback, roots(N))
    for fallback, how in ((prod, "attached"), (memory_prod, "read")):
        dev = st.DuckDBStore(tmp_path / f"dev-{how}.duckdb", graph=graph_with_words(), name="dev", fallbacks=[fallback])
        with dev:
            dev.write("video", roots(N))
            embedding = dev.resolve_update("embedding")
            assert embedding.meta["chain"] == how
            assert embedding.counts() == {"added": N, "changed": 0, "removed": 0}
            transcript = dev.resolve_update("transcript")
            assert transcript.counts() == {"added": N, "changed": 0, "removed": 0}  # dev holds no transcript yet


def test_reconciling_the_other_fields_of_a_feature_with_an_added_field_rewrites_nothing(
    store_factory: StoreFactory,
) -> None:
    with store_factory(graph=graph_of()) as store:
        sync(store, roots(N))
        store.graph = graph_with_words()
        assert store.reconcile("transcript", fields=["text"]).samples == 0
        assert causes(store.resolve_update("transcript"), "words") == dict.fromkeys(range(N), "code")


def expansion_graph(*fields: st.FieldSpec) -> st.FeatureGraph:
    """video -> frames (an expansion, ``fields``) -> summary (an aggregation reading every field of frames)."""
    graph = st.FeatureGraph()
    with graph.use():
        summary(frames(video("frames"), *fields))  # type: ignore[arg-type]
    return graph


def test_an_expansion_with_an_added_field_is_stale_per_parent_and_its_aggregation_after_it(
    store_factory: StoreFactory,
) -> None:
    with store_factory(graph=expansion_graph(st.FieldSpec("pixels", "1"))) as store:
        store.write("video", pl.DataFrame({"sample_uid": [0, 1, 2], "strata_dv__frames": ["x", "y", "z"]}))
        parents = store.resolve_update("frames").added.to_native()
        children = pl.DataFrame(
            {"sample_uid": [0, 0, 1, 2], "frame": [0, 1, 0, None]}, schema_overrides={"frame": pl.Int64}
        )
        store.write("frames", children.join(parents, on="sample_uid"))
        store.write("summary", store.resolve_update("summary").added)
        store.graph = expansion_graph(st.FieldSpec("pixels", "2"), st.FieldSpec("depth", "1"))
        # frames has no depth yet: the aggregation of its nulls is a version of its own, not null
        assert causes(store.resolve_update("summary"), "mean") == dict.fromkeys(range(2), "code,frames.depth")
        assert store.reconcile("frames", fields=["pixels"]).samples == 4  # each child, and the "no children" row
        stale = store.resolve_update("frames")
        assert causes(stale, "depth") == {0: "code", 1: "code", 2: "code"}
        assert causes(stale, "pixels") == {0: None, 1: None, 2: None}
        rewritten = children.join(
            stale.changed.to_native().drop("strata_cause__pixels", "strata_cause__depth"), on="sample_uid"
        )
        store.write("frames", rewritten)
        assert store.resolve_update("frames").is_empty
        assert causes(store.resolve_update("summary"), "mean") == dict.fromkeys(
            range(2), "code,frames.depth,frames.pixels"
        )
