"""The features the store, build and benchmark graphs share, each defined once.

Each function defines one feature in the active graph (call it inside ``with graph.use():``) and
returns its class, so a test composes the graph it needs from: ``video`` -> ``transcript`` ->
``embedding`` (text from audio, a vector from text and frames), and ``video`` -> ``frames`` (an
expansion: ids ``sample_uid``, ``frame``) -> ``summary`` (an aggregation back onto ``sample_uid``).
"""

from __future__ import annotations

from typing import Any

import narwhals as nw

import strata as st

Feature = type[st.Feature]


def video(*fields: str | st.FieldSpec) -> Feature:
    """The root: one sample per ``sample_uid``."""

    class Video(st.Feature, spec=st.FeatureSpec("video", fields=list(fields))):
        pass

    return Video


def transcript(source: Feature, code_version: str = "1") -> Feature:
    """``text``, from the ``audio`` of ``source`` (a video)."""

    class Transcript(
        st.Feature,
        spec=st.FeatureSpec(
            "transcript",
            deps=[source],
            fields=[st.FieldSpec("text", code_version, deps=[st.FieldDep(source, ["audio"])])],
        ),
    ):
        pass

    return Transcript


def embedding(text: Feature, source: Feature, code_version: str = "1", *, source_first: bool = False) -> Feature:
    """``vector``, from the ``text`` of ``text`` (a transcript) and the ``frames`` of ``source`` (a video).

    ``source_first``: the deps in the order video, transcript (the benchmark's graph), else the other way.
    """
    vector = st.FieldSpec("vector", code_version, deps=[st.FieldDep(text, ["text"]), st.FieldDep(source, ["frames"])])

    class Embedding(
        st.Feature,
        spec=st.FeatureSpec("embedding", deps=[source, text] if source_first else [text, source], fields=[vector]),
    ):
        pass

    return Embedding


def frames(parent: Feature | None, *fields: str) -> Feature:
    """Children ``(sample_uid, frame)``: an expansion of ``parent`` by ``sample_uid``, or a root when None."""
    deps = [] if parent is None else [st.FeatureDep(parent, st.Lineage.expansion(["sample_uid"]))]

    class Frames(
        st.Feature,
        spec=st.FeatureSpec("frames", id_columns=["sample_uid", "frame"], deps=deps, fields=list(fields)),
    ):
        pass

    return Frames


def summary(children: Feature, field: str = "mean") -> Feature:
    """One row per ``sample_uid``: an aggregation of ``children`` (frames)."""

    class Summary(
        st.Feature,
        spec=st.FeatureSpec(
            "summary", deps=[st.FeatureDep(children, st.Lineage.aggregation(["sample_uid"]))], fields=[field]
        ),
    ):
        pass

    return Summary


def lineage_graph() -> st.FeatureGraph:
    """video -> frames (expansion: ids sample_uid, frame) -> summary (aggregation back onto sample_uid)."""
    graph = st.FeatureGraph()
    with graph.use():
        summary(frames(video("frames"), "pixels"))
    return graph


def one_root(
    key: str, id_columns: tuple[str, ...] = ("sample_uid",), fields: tuple[str, ...] = ("audio",)
) -> st.FeatureGraph:
    """A graph of one root feature ``key``."""
    graph = st.FeatureGraph()
    with graph.use():

        class Root(st.Feature, spec=st.FeatureSpec(key, id_columns=id_columns, fields=list(fields))):
            pass

    return graph


def loader_graph(score_cv: str = "1") -> st.FeatureGraph:
    """clip, speaker -> match (``score``), whose own ``load_input`` matches every clip against speaker ann.

    A join no lineage describes: the store must resolve it through the loader.
    """
    graph = st.FeatureGraph()
    with graph.use():

        class Clip(st.Feature, spec=st.FeatureSpec("clip", id_columns=["clip_id"], fields=["audio"])):
            pass

        class Speaker(st.Feature, spec=st.FeatureSpec("speaker", id_columns=["speaker"], fields=["voice"])):
            pass

        class Match(
            st.Feature,
            spec=st.FeatureSpec(
                "match", id_columns=["clip_id"], deps=[Clip, Speaker], fields=[st.FieldSpec("score", score_cv)]
            ),
        ):
            @classmethod
            def load_input(cls, upstream: Any) -> Any:
                clips = upstream[Clip.key()]
                speakers = upstream[Speaker.key()].rename({"speaker": "who"})
                ann = speakers.filter(nw.col("who") == "ann").select("strata_in__speaker__voice")
                return clips.select("clip_id", "strata_in__clip__audio").join(ann, how="cross")

    return graph
