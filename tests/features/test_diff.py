"""Graph diffs through the Python API: hand-built graphs for each kind of change, and a Hypothesis property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import strata as st
from strata.errors import DefinitionError
from strata.features.diff import DepDiff, FieldDiff, Reach, diff_graphs
from tests.stores.test_properties import FeatureDef, build, graphs


def media(
    *, audio: str = "audio", audio_cv: str = "1", transcript: bool = True, speaker: bool = False
) -> st.FeatureGraph:
    """video(audio, frames) -> transcript(text <- audio) -> embedding(vector <- text, frames); options edit it."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", fields=[st.FieldSpec(audio, audio_cv), "frames"])):
            pass

        class Speaker(st.Feature, spec=st.FeatureSpec("speaker", fields=["name"])):
            pass

        class Transcript(
            st.Feature,
            spec=st.FeatureSpec(
                "transcript",
                deps=[Video, Speaker] if speaker else [Video],
                fields=[
                    st.FieldSpec(
                        "text",
                        deps=[st.FieldDep(Video, [audio]), *([st.FieldDep(Speaker, ["name"])] if speaker else [])],
                    )
                ],
            ),
        ):
            pass

        deps: list[Any] = [Video]
        inputs = [st.FieldDep(Video, ["frames"])]
        if transcript:
            deps.insert(0, Transcript)
            inputs.insert(0, st.FieldDep(Transcript, ["text"]))

        class Embedding(
            st.Feature, spec=st.FeatureSpec("embedding", deps=deps, fields=[st.FieldSpec("vector", deps=inputs)])
        ):
            pass

        if not transcript:
            graph.remove("transcript")
    return graph


def chain(root_cv: str = "1") -> st.FeatureGraph:
    """a(x, y) -> b(x <- a.x; y <- a.y) -> c(x <- b.x) -> d(x <- c.x; y <- a.y)."""
    graph = st.FeatureGraph()
    with graph.use():

        class A(st.Feature, spec=st.FeatureSpec("a", fields=[st.FieldSpec("x", root_cv), "y"])):
            pass

        class B(
            st.Feature,
            spec=st.FeatureSpec(
                "b",
                deps=[A],
                fields=[
                    st.FieldSpec("x", deps=[st.FieldDep(A, ["x"])]),
                    st.FieldSpec("y", deps=[st.FieldDep(A, ["y"])]),
                ],
            ),
        ):
            pass

        class C(
            st.Feature, spec=st.FeatureSpec("c", deps=[B], fields=[st.FieldSpec("x", deps=[st.FieldDep(B, ["x"])])])
        ):
            pass

        class D(
            st.Feature,
            spec=st.FeatureSpec(
                "d",
                deps=[C, A],
                fields=[
                    st.FieldSpec("x", deps=[st.FieldDep(C, ["x"])]),
                    st.FieldSpec("y", deps=[st.FieldDep(A, ["y"])]),
                ],
            ),
        ):
            pass

    return graph


def test_the_same_graph_has_no_differences() -> None:
    diff = st.diff_graphs(media(), media())
    assert isinstance(diff, st.GraphDiff)
    assert not diff
    assert diff.features == ()
    assert diff.old_version == diff.new_version == media().snapshot_version
    assert diff.to_json()["differs"] is False


def test_a_root_code_bump_reaches_three_levels_down_through_field_lineage_only() -> None:
    old, new = chain(), chain(root_cv="2")
    diff = diff_graphs(old, new)
    assert [(f.key, f.kind) for f in diff.features] == [
        ("a", "changed"),
        ("b", "reached"),
        ("c", "reached"),
        ("d", "reached"),
    ]
    a = diff.feature("a")
    assert a.fields == (
        FieldDiff(
            "a",
            "x",
            "changed",
            "1",
            "2",
            old.field_version("a", "x"),
            new.field_version("a", "x"),
            reach=Reach(("b", "c", "d"), ("b.x", "c.x", "d.x")),
        ),
    )
    assert a.reach == Reach(("b", "c", "d"), ("b.x", "c.x", "d.x"))
    assert a.old_version == old.feature_version("a")
    assert a.new_version == new.feature_version("a")
    # b.y and d.y read a.y only: the same versions, not listed
    for key in ("b", "c", "d"):
        entry = diff.feature(key)
        assert [(f.field, f.kind, f.reached_by) for f in entry.fields] == [("x", "reached", ("a.x",))]
        assert entry.fields[0].old_code_version == entry.fields[0].new_code_version == "1"
        assert entry.fields[0].old_version != entry.fields[0].new_version
    assert [f.dotted for f in diff.fields_with_new_versions()] == ["a.x", "b.x", "c.x", "d.x"]
    assert diff.counts() == {"added": 0, "removed": 0, "changed": 1, "reached": 3}


def test_a_renamed_field_is_one_removed_and_one_added_and_its_readers_change_inputs() -> None:
    diff = diff_graphs(media(), media(audio="sound"))
    video = diff.feature("video")
    assert video.kind == "changed"
    assert [(f.field, f.kind, f.old_code_version, f.new_code_version) for f in video.fields] == [
        ("sound", "added", None, "1"),
        ("audio", "removed", "1", None),
    ]
    assert video.field_diff("audio").reach == Reach(
        ("transcript", "embedding"), ("transcript.text", "embedding.vector")
    )
    assert video.field_diff("sound").reach == Reach(
        ("transcript", "embedding"), ("transcript.text", "embedding.vector")
    )
    text = diff.feature("transcript").field_diff("text")
    assert text.kind == "changed"
    assert text.old_code_version == text.new_code_version == "1"
    assert text.inputs_added == ("video.sound",)
    assert text.inputs_removed == ("video.audio",)
    assert text.reached_by == ("video.audio", "video.sound")
    assert text.reach == Reach(("embedding",), ("embedding.vector",))
    vector = diff.feature("embedding").field_diff("vector")
    assert vector.kind == "reached"
    assert vector.reached_by == ("transcript.text", "video.audio", "video.sound")
    assert diff.feature("embedding").kind == "reached"


def test_an_added_dependency_is_listed_with_the_field_inputs_it_brings() -> None:
    diff = diff_graphs(media(), media(speaker=True))
    transcript = diff.feature("transcript")
    assert transcript.kind == "changed"
    assert transcript.deps == (DepDiff("speaker", "added", None, "identity"),)
    text = transcript.field_diff("text")
    assert (text.kind, text.inputs_added, text.inputs_removed) == ("changed", ("speaker.name",), ())
    assert transcript.reach == Reach(("embedding",), ("embedding.vector",))
    assert diff.feature("embedding").field_diff("vector").reached_by == ("transcript.text",)
    assert [f.key for f in diff.features] == ["transcript", "embedding"]


def test_a_removed_feature_names_what_depended_on_it_and_those_lose_the_dependency() -> None:
    old, new = media(), media(transcript=False)
    diff = diff_graphs(old, new)
    assert [(f.key, f.kind) for f in diff.features] == [("transcript", "removed"), ("embedding", "changed")]
    gone = diff.feature("transcript")
    assert gone.old_version == old.feature_version("transcript")
    assert gone.new_version is None
    assert gone.fields == (
        FieldDiff(
            "transcript",
            "text",
            "removed",
            "1",
            None,
            old.field_version("transcript", "text"),
            None,
            reach=Reach(("embedding",), ("embedding.vector",)),
        ),
    )
    assert gone.deps == (DepDiff("video", "removed", "identity", None),)
    assert gone.reach == Reach(("embedding",), ("embedding.vector",))
    embedding = diff.feature("embedding")
    assert embedding.deps == (DepDiff("transcript", "removed", "identity", None),)
    vector = embedding.field_diff("vector")
    assert (vector.kind, vector.inputs_removed, vector.reached_by) == (
        "changed",
        ("transcript.text",),
        ("transcript.text",),
    )


def test_an_added_feature_lists_its_fields_and_the_reverse_diff_removes_it() -> None:
    old, new = media(transcript=False), media()
    diff = diff_graphs(old, new)
    added = diff.feature("transcript")
    assert added.kind == "added"
    assert [(f.field, f.kind, f.new_code_version, f.new_version) for f in added.fields] == [
        ("text", "added", "1", new.field_version("transcript", "text"))
    ]
    assert added.deps == (DepDiff("video", "added", None, "identity"),)
    back = diff_graphs(new, old)
    assert [f.key for f in back.of_kind("removed")] == [f.key for f in diff.of_kind("added")] == ["transcript"]


def test_attributes_that_change_no_version_are_listed() -> None:
    def one(ids: list[str], tags: dict[str, str]) -> st.FeatureGraph:
        graph = st.FeatureGraph()
        graph.add_spec(st.FeatureSpec("video", id_columns=ids, fields=["audio"], metadata=tags), "pkg.old:Video")
        return graph

    diff = diff_graphs(one(["sample_uid"], {}), one(["uid"], {"team": "ml"}))
    video = diff.feature("video")
    assert video.kind == "changed"
    assert video.fields == ()
    assert [(a.name, a.old, a.new) for a in video.attributes] == [
        ("id_columns", ["sample_uid"], ["uid"]),
        ("tags", {}, {"team": "ml"}),
    ]


# -- the property: exactly the fields with new versions, each reached field named by its origins --


@hs.composite
def edits(draw: hs.DrawFn, defs: list[FeatureDef]) -> list[FeatureDef]:
    """``defs`` with code bumps, a field added, a dependency added, and maybe a feature dropped.

    A dropped feature leaves the deps and field inputs of the features that read it (a field
    left with no explicit input reads every upstream field).
    """
    out = [FeatureDef(d.name, list(d.deps), dict(d.fields), dict(d.code)) for d in defs]
    for index, field in draw(hs.lists(hs.tuples(hs.integers(0, 3), hs.integers(0, 2)), max_size=3)):
        if index < len(out):
            names = list(out[index].code)
            out[index].code[names[field % len(names)]] = "2"
    grow = draw(hs.integers(-1, len(out) - 1))
    if grow >= 0:
        out[grow].fields["extra"] = None
        out[grow].code["extra"] = "1"
    later, earlier = draw(hs.integers(0, len(out) - 1)), draw(hs.integers(0, len(out) - 1))
    if earlier < later and out[earlier].name not in out[later].deps:
        out[later].deps.append(out[earlier].name)
    drop = draw(hs.integers(0, len(out) - 1)) if draw(hs.booleans()) else -1
    if drop >= 0:
        gone = out.pop(drop).name
        for d in out:
            d.deps = [u for u in d.deps if u != gone]
            for name, inputs in d.fields.items():
                kept = None if inputs is None else [(u, g) for u, g in inputs if u != gone]
                d.fields[name] = kept if kept and d.deps else None
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hs.data(), defs=graphs())
def test_the_diff_lists_exactly_the_fields_with_new_versions(data: hs.DataObject, defs: list[FeatureDef]) -> None:
    old, new = build(defs), build(data.draw(edits(defs)))
    assert not diff_graphs(old, old)
    diff = diff_graphs(old, new)
    assert bool(diff) == (old.snapshot_version != new.snapshot_version)
    renewed = {f.dotted for f in diff.fields_with_new_versions()}
    both = [
        (str(k), f.key.name)
        for k in new.keys
        if k in old
        for f in new.spec(k).fields
        if f.key.name in {g.key.name for g in old.spec(k).fields}
    ]
    assert renewed == {f"{k}.{n}" for k, n in both if old.field_version(k, n) != new.field_version(k, n)}
    reaches = {f.dotted: f.reach for entry in diff.features for f in entry.fields}
    for field in diff.fields_with_new_versions():
        if field.kind == "reached":
            assert field.reached_by
            for origin in field.reached_by:
                assert field.dotted in reaches[origin].fields
    assert {f.key for f in diff.of_kind("added")} == {str(k) for k in new.keys if k not in old}
    assert {f.key for f in diff.of_kind("removed")} == {str(k) for k in old.keys if k not in new}
    back = diff_graphs(new, old)
    assert {f.key for f in back.of_kind("removed")} == {f.key for f in diff.of_kind("added")}
    assert {f.dotted for f in back.fields_with_new_versions()} == renewed


def test_a_pushed_graph_with_a_custom_input_loader_diffs_against_the_code() -> None:
    """A loader of its own lets a feature's ids differ from its upstream's; the rebuilt graph must accept that too."""
    graph = st.FeatureGraph()
    with graph.use():

        class Clip(st.Feature, spec=st.FeatureSpec("clip", fields=["audio"])):
            pass

        class Scene(st.Feature, spec=st.FeatureSpec("scene", id_columns=["scene_id"], deps=[Clip], fields=["label"])):
            @classmethod
            def load_input(cls, upstream: Any) -> Any:
                return upstream[Clip.key()]

    with st.InMemoryStore(graph=graph) as store:
        store.push_graph()
        pushed = store.snapshot()
    assert not diff_graphs(pushed.graph(), graph)
    assert not diff_graphs(pushed, graph)
    with pytest.raises(DefinitionError, match="its input loader is in the code; import its class"):
        pushed.graph().feature("scene").load_input({})
    plain = st.FeatureGraph()
    plain.add_spec(Clip.spec)
    plain.add_spec(
        st.FeatureSpec("scene", id_columns=["scene_id"], deps=["clip"], fields=["label"]), custom_loader=True
    )
    moved = diff_graphs(graph, plain).feature("scene")
    assert [(a.name, a.old, a.new) for a in moved.attributes] == [
        ("class", Scene.import_path(), "strata.snapshot:scene"),
    ]
