"""Feature definitions, the graph, versions and snapshots."""

from __future__ import annotations

import pytest

import strata as st
from strata.errors import DefinitionError, FeatureNotFoundError
from strata.features.versions import definition_hash, encode, sample_hash


def reference_graph(audio_cv: str = "1", frames_cv: str = "1", text_cv: str = "1") -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():

        class Video(
            st.Feature,
            spec=st.FeatureSpec(
                "media/video", fields=[st.FieldSpec("audio", audio_cv), st.FieldSpec("frames", frames_cv)]
            ),
        ):
            """Raw videos."""

        class Transcript(
            st.Feature,
            spec=st.FeatureSpec(
                "transcript", deps=[Video], fields=[st.FieldSpec("text", text_cv, deps=[st.FieldDep(Video, ["audio"])])]
            ),
        ):
            pass

        class Embedding(
            st.Feature,
            spec=st.FeatureSpec(
                "embedding",
                deps=[Transcript, Video],
                fields=[
                    st.FieldSpec("vector", deps=[st.FieldDep(Transcript, ["text"]), st.FieldDep(Video, ["frames"])])
                ],
            ),
        ):
            pass

    return graph


def test_keys_are_paths_and_are_checked() -> None:
    assert str(st.FeatureKey("media/video")) == "media/video"
    assert st.FeatureKey(["media", "video"]) == st.FeatureKey("media/video")
    assert st.FeatureKey("media/video").table_name == "media__video"
    for bad in ("", "a//b", "a/../b", "a__b", 'a"b', "a b"):
        with pytest.raises(DefinitionError, match=r"not a valid feature key|cannot be empty"):
            st.FeatureKey(bad)
    for bad in ("1x", "a-b", "a__b", ""):
        with pytest.raises(DefinitionError, match="not a valid field key"):
            st.FieldKey(bad)


def test_graph_order_downstream_and_inputs() -> None:
    graph = reference_graph()
    assert [str(k) for k in graph.topological_order()] == ["media/video", "transcript", "embedding"]
    assert [str(k) for k in graph.downstream("media/video")] == ["transcript", "embedding"]
    assert [str(k) for k in graph.downstream("transcript")] == ["embedding"]
    assert [i.dotted for i in graph.field_inputs("embedding", "vector")] == ["media.video.frames", "transcript.text"]
    assert graph.spec("media/video").description == "Raw videos."
    assert graph.spec("media/video").id_columns == ("sample_uid",)


def test_a_field_without_deps_depends_on_every_upstream_field() -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", fields=["x", "y"])):
            pass

        class B(st.Feature, spec=st.FeatureSpec("b", deps=[A], fields=["z"])):
            pass

    assert [i.dotted for i in graph.field_inputs(B, "z")] == ["a.x", "a.y"]


def test_field_version_follows_only_what_the_field_depends_on() -> None:
    base = reference_graph()
    frames_bumped = reference_graph(frames_cv="2")
    audio_bumped = reference_graph(audio_cv="2")
    assert base.field_version("transcript", "text") == frames_bumped.field_version("transcript", "text")
    assert base.feature_version("transcript") == frames_bumped.feature_version("transcript")
    assert base.feature_version("embedding") != frames_bumped.feature_version("embedding")
    assert base.field_version("transcript", "text") != audio_bumped.field_version("transcript", "text")
    assert base.snapshot_version != audio_bumped.snapshot_version
    assert base.snapshot_version == reference_graph().snapshot_version


def test_version_formulas_match_the_documented_encoding() -> None:
    graph = reference_graph()
    audio = definition_hash(["field", "media/video", "audio", "1"])
    assert graph.field_version("media/video", "audio") == audio
    text = definition_hash(["field", "transcript", "text", "1", "media.video.audio", audio])
    assert graph.field_version("transcript", "text") == text
    assert graph.feature_version("transcript") == definition_hash(["feature", "text", text])
    assert len(text) == 16
    assert encode(["ab", "c"]) != encode(["a", "bc"])
    assert encode(["", None]) == "0:-1:"
    assert encode(["é"]) == "2:é"
    assert sample_hash("md5", ["text", "1", "v.a", "x"]) != sample_hash("sha256", ["text", "1", "v.a", "x"])


def test_snapshot_round_trip_rebuilds_versions_even_without_the_code() -> None:
    graph = reference_graph()
    snapshot = graph.to_snapshot()
    rebuilt = st.FeatureGraph.from_snapshot(snapshot, import_classes=False)
    assert rebuilt.snapshot_version == graph.snapshot_version
    assert rebuilt.spec("embedding") == graph.spec("embedding")
    assert rebuilt.feature("embedding").import_path() == graph.feature("embedding").import_path()
    assert rebuilt.to_snapshot() == snapshot


def test_graphs_are_isolated_by_the_context_variable() -> None:
    outer = st.current_graph()
    graph = reference_graph()
    assert st.current_graph() is outer
    assert "transcript" in graph
    with graph.use():
        assert st.current_graph() is graph
    assert "nope" not in graph


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a: st.FeatureSpec("b", deps=["missing"], fields=["z"]), "depends on `missing`, which is not defined"),
        (
            lambda a: st.FeatureSpec("b", deps=[a], fields=[st.FieldSpec("z", deps=[st.FieldDep(a, ["nope"])])]),
            "has no such field",
        ),
        (lambda a: st.FeatureSpec("b", deps=[a], fields=["z", "z"]), "declares field `z` twice"),
        (lambda a: st.FeatureSpec("b", deps=[a, a], fields=["z"]), "same upstream twice"),
        (
            lambda a: st.FeatureSpec("b", fields=[st.FieldSpec("z", deps=[st.FieldDep(a, ["x"])])]),
            "not an upstream of `b`",
        ),
        (lambda a: st.FeatureSpec("b", id_columns=[], fields=["z"]), "distinct, non-empty id_columns"),
        (lambda a: st.FeatureSpec("b", id_columns=["strata_x"], fields=["z"]), "cannot be an id column"),
        (
            lambda a: st.FeatureSpec("b", deps=[a], id_columns=["other"], fields=["z"]),
            "identity lineage needs the same id columns",
        ),
        (
            lambda a: st.FeatureSpec("b", deps=[a], fields=[st.FieldSpec("z", deps=[st.FieldDep(a, "x")])]),
            "fields must be a list",
        ),
    ],
)
def test_bad_definitions_are_clear_errors(build: object, message: str) -> None:
    graph = st.FeatureGraph()
    with pytest.raises(DefinitionError, match=message), graph.use():  # noqa: PT012 - definition and use both may raise

        class A(st.Feature, spec=st.FeatureSpec("a", fields=["x"])):
            pass

        class B(st.Feature, spec=build(A)):  # type: ignore[operator]
            pass

        graph.validate()


def test_cycles_and_duplicate_keys_are_refused() -> None:
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", deps=["c"], fields=["x"])):
            pass

        class B(st.Feature, spec=st.FeatureSpec("b", deps=[A], fields=["x"])):
            pass

        class C(st.Feature, spec=st.FeatureSpec("c", deps=[B], fields=["x"])):
            pass

    with pytest.raises(DefinitionError, match="dependency cycle: a -> c -> b -> a"):
        graph.validate()
    other = st.FeatureGraph()
    with other.use():

        class First(st.Feature, spec=st.FeatureSpec("dup", fields=["x"])):
            pass

        with pytest.raises(DefinitionError, match="feature key `dup` is defined twice"):

            class Second(st.Feature, spec=st.FeatureSpec("dup", fields=["x"])):
                pass


def test_unknown_feature_lookup() -> None:
    with pytest.raises(FeatureNotFoundError, match="no feature `nope` in the graph"):
        reference_graph().spec("nope")
