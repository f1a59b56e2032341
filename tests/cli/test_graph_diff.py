"""``strata graph diff`` on a project with DuckDB stores: snapshots against the code and each other."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import strata as st
from tests.cli.conftest import MakeProject
from tests.cli.test_graph_snapshots import GRAPH as SNAPSHOT_GRAPH
from tests.cli.test_graph_snapshots import STORES, current_version, versions, write_definitions
from tests.helpers import Cli

GRAPH = (
    SNAPSHOT_GRAPH
    + """
class Embedding(
    st.Feature,
    spec=st.FeatureSpec(
        "embedding",
        deps=[Transcript, Video],
        fields=[st.FieldSpec("vector", deps=[st.FieldDep(Transcript, ["text"]), st.FieldDep(Video, ["frames"])])],
    ),
):
    pass
"""
)
CAPTIONS = """
class Captions(st.Feature, spec=st.FeatureSpec("captions", deps=[Video], fields=["lines"])):
    pass
"""


def write_graph(root: Path, audio: str = "1", extra: str = "") -> None:
    """Switch the project's definitions: ``video.audio`` at code version ``audio``, ``extra`` features added."""
    write_definitions(root, GRAPH.replace("{audio}", audio) + extra)


@pytest.fixture
def root(make_project: MakeProject) -> Path:
    return make_project({"feats/graph.py": GRAPH.replace("{audio}", "1")}, extra=STORES)


def test_the_latest_snapshot_against_the_code_in_text(strata: Cli, root: Path) -> None:
    assert strata("graph", "push").code == 0
    pushed = current_version(root)
    write_graph(root, audio="2", extra=CAPTIONS)
    code = current_version(root)
    result = strata("graph", "diff")
    assert result.code == 0, result.err
    lines = result.out.rstrip().splitlines()
    assert lines[0] == f"from snapshot {pushed} (latest in prod) to the code ({code})"
    assert lines[1] == "1 added, 1 changed, 2 reached"
    assert lines[2] == ""
    assert lines.count("") == 4  # a blank line before each feature
    text = "\n".join(lines[2:])
    assert "~ video (changed)  version " in text
    assert "    ~ audio  code_version 1 -> 2, version " in text
    assert "        reaches captions (lines), transcript (text), embedding (vector)" in text
    assert "    reaches:" not in text  # one field carries the reach
    assert "    deps: + video (identity)" in text
    assert "+ captions (added)  version " in text
    assert "    + lines  code_version 1, version " in text
    assert "^ transcript (reached)" in text
    assert "    ^ text  version " in text
    assert "        through video.audio" in text
    assert "^ embedding (reached)" in text
    assert text.index("~ video") < text.index("^ transcript") < text.index("^ embedding")


def test_json_is_the_diff_with_both_ends_named(strata: Cli, root: Path) -> None:
    assert strata("graph", "push").code == 0
    pushed = current_version(root)
    write_graph(root, audio="2")
    for args in (["graph", "diff", "--json"], ["graph", "diff", "--format", "json"], ["--json", "graph", "diff"]):
        result = strata(*args)
        assert result.code == 0, result.err
        data = json.loads(result.out)
        assert data["from"] == {"source": "snapshot", "store": "prod", "version": pushed}
        assert data["to"] == {"source": "code", "store": None, "version": current_version(root)}
        assert data["differs"] is True
        assert data["counts"] == {"added": 0, "removed": 0, "changed": 1, "reached": 2}
        assert [(f["feature"], f["kind"]) for f in data["features"]] == [
            ("video", "changed"),
            ("transcript", "reached"),
            ("embedding", "reached"),
        ]
        audio = data["features"][0]["fields"][0]
        assert audio["field"] == "audio"
        assert audio["code_version"] == {"old": "1", "new": "2"}
        assert audio["reach"] == {
            "features": ["transcript", "embedding"],
            "fields": ["transcript.text", "embedding.vector"],
        }


def test_no_differences_says_so(strata: Cli, root: Path) -> None:
    assert strata("graph", "push").code == 0
    result = strata("graph", "diff")
    assert result.code == 0, result.err
    pushed = current_version(root)
    assert result.out.strip() == f"no differences: snapshot {pushed} (latest in prod) and the code have the same graph"
    data = json.loads(strata("graph", "diff", "--json").out)
    assert (data["differs"], data["features"]) == (False, [])


def test_two_snapshots_by_prefix_need_no_importable_code(strata: Cli, root: Path) -> None:
    assert strata("graph", "push").code == 0
    first = current_version(root)
    write_graph(root, audio="2", extra=CAPTIONS)
    assert strata("graph", "push").code == 0
    second = current_version(root)
    (root / "feats" / "graph.py").write_text("raise RuntimeError('broken')\n", encoding="utf-8")
    sys.modules.pop("feats.graph", None)
    result = strata("graph", "diff", first[:7], "latest", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["from"]["version"] == first
    assert data["to"] == {"source": "snapshot", "store": "prod", "version": second}
    assert [(f["feature"], f["kind"]) for f in data["features"]][:2] == [("video", "changed"), ("captions", "added")]
    back = json.loads(strata("graph", "diff", second[:7], first[:7], "--json").out)
    assert [(f["feature"], f["kind"]) for f in back["features"]][:2] == [("video", "changed"), ("captions", "removed")]
    text = strata("graph", "diff", "latest", first)
    assert text.out.splitlines()[0] == f"from snapshot {second} (latest in prod) to snapshot {first} in prod"


def test_mermaid_marks_every_kind(strata: Cli, root: Path) -> None:
    write_graph(root, extra=CAPTIONS)
    assert strata("graph", "push").code == 0
    write_graph(root, audio="2")
    result = strata("graph", "diff", "--format", "mermaid")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0] == "graph TD"
    nodes = {line.split("[", 1)[0].strip(): line for line in lines if '["' in line}
    ids = {line.split('["', 1)[1].split(" ", 1)[0].split("<", 1)[0]: node for node, line in nodes.items()}
    assert set(ids) == {"video", "transcript", "embedding", "captions"}
    assert '["video (changed)<br/>~audio, frames"]' in nodes[ids["video"]]
    assert '["captions (removed)<br/>-lines"]' in nodes[ids["captions"]]
    assert f'    {ids["video"]} -.->|"audio, frames"| {ids["captions"]}' in lines
    assert f'    {ids["video"]} -->|"audio"| {ids["transcript"]}' in lines
    assert f"    class {ids['captions']} removed" in lines
    assert f"    class {ids['video']} changed" in lines
    assert f"    class {ids['transcript']},{ids['embedding']} reached" in lines
    assert any(line.startswith("    classDef reached ") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["zzz"], "no snapshot `zzz` in store `prod`; see `strata graph history` for the versions"),
        (["latest", "zzz"], "no snapshot `zzz` in store `prod`"),
        (["", "code"], "no snapshot `` in store `prod`"),
        (["--store", "nope"], "no store named `nope`"),
    ],
)
def test_an_unknown_snapshot_is_one_line_and_exit_2(strata: Cli, root: Path, args: list[str], message: str) -> None:
    assert strata("graph", "push").code == 0
    result = strata("graph", "diff", *args)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_an_ambiguous_prefix_is_one_line_and_exit_2(strata: Cli, root: Path) -> None:
    graphs = []
    for n in range(1, 40):
        graph = st.FeatureGraph()
        graph.add_spec(st.FeatureSpec("video", fields=[st.FieldSpec("audio", str(n))]))
        graphs.append(graph)
    with st.DuckDBStore(root / "prod.duckdb") as store:
        for graph in graphs:
            store.graph = graph
            store.push_graph()
    pushed = versions(root)
    shared = next(v[:1] for v in pushed[1:] if v[:1] == pushed[0][:1])
    result = strata("graph", "diff", shared)
    assert result.code == 2
    assert f"snapshot `{shared}` is ambiguous in " in result.err
    assert result.err.strip().endswith("give more characters of the version")
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_a_store_never_pushed_to_has_no_latest(strata: Cli, root: Path) -> None:
    result = strata("graph", "diff", "--store", "dev")
    assert result.code == 2
    assert "no graph was pushed to store `dev`; push one with `strata graph push`" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (root / "dev.duckdb").exists()
    same = strata("graph", "diff", "code", "code")
    assert same.code == 0, same.err
    assert same.out.strip().startswith("no differences: the code and the code have the same graph")
