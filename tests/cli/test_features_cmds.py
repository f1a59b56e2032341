"""``strata features list | show`` and ``strata graph render``, through the CLI, on real projects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import MakeProject
from tests.helpers import Cli

HEAVY = ("polars", "duckdb", "narwhals", "pyarrow", "pandas", "numpy", "sqlalchemy", "rich")

ODD_KEYS = """
    import strata as st

    class Raw(st.Feature, spec=st.FeatureSpec("media/raw-video", id_columns=["video_id"], fields=["audio", "frames"])):
        '''Videos as uploaded.'''

    class Clips(
        st.Feature,
        spec=st.FeatureSpec(
            "media/clips",
            id_columns=["video_id", "clip"],
            deps=[st.FeatureDep(Raw, st.Lineage.expansion(["video_id"]))],
            fields=[st.FieldSpec("pixels", "3", deps=[st.FieldDep(Raw, ["frames"])])],
        ),
    ):
        pass

    class Summary(st.Feature, spec=st.FeatureSpec("summary", id_columns=["video_id"], deps=[Raw], fields=["text"])):
        pass
"""


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    code = (
        "import sys\n"
        "from strata.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "args",
    [["features", "list"], ["features", "show", "embedding"], ["graph", "render", "--format", "mermaid"]],
)
def test_definition_commands_load_no_heavy_library(reference: Path, args: list[str]) -> None:
    loaded = _modules_after(args, reference)
    assert "features.video" in loaded  # the project's feature module really was imported
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_features_list(strata: Cli, reference: Path) -> None:
    result = strata("features", "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["feature", "fields", "upstreams", "version"]
    assert [line.split()[0] for line in lines[1:]] == ["video", "transcript", "embedding"]
    assert re.fullmatch(r"embedding\s+vector\s+transcript, video\s+[0-9a-f]{16}", lines[3])
    rows = strata("features", "list", "--json").json()
    assert rows[0] == {
        "key": "video",
        "fields": ["audio", "frames"],
        "upstreams": [],
        "feature_version": rows[0]["feature_version"],
    }
    assert strata("--json", "features", "list").json() == rows


def test_features_show(strata: Cli, reference: Path) -> None:
    result = strata("features", "show", "embedding")
    assert result.code == 0, result.err
    assert "A small vector per video" in result.out
    assert "class:       features.video:Embedding" in result.out
    assert "id columns:  sample_uid" in result.out
    assert "transcript  (identity)" in result.out
    assert re.search(
        r"vector  code_version 1  version [0-9a-f]{16}\n      <- transcript\.text, video\.frames", result.out
    )
    data = strata("features", "show", "transcript", "--json").json()
    assert data["key"] == "transcript"
    assert data["deps"] == [{"feature": "video", "lineage": "identity", "on": [], "optional": False}]
    assert data["fields"][0]["key"] == "text"
    assert data["fields"][0]["inputs"] == ["video.audio"]
    assert data["fields"][0]["code_version"] == "1"
    assert len(data["fields"][0]["field_version"]) == 16
    assert data["downstream"] == ["embedding"]
    root = strata("features", "show", "video").out
    assert "upstreams:   none (root feature" in root


def test_lineage_and_path_keys_in_show_and_render(strata: Cli, make_project: MakeProject) -> None:
    make_project({"feats/media.py": ODD_KEYS})
    shown = strata("features", "show", "media/clips")
    assert shown.code == 0, shown.err
    assert "media/raw-video  (expansion on video_id)" in shown.out
    assert "pixels  code_version 3" in shown.out
    assert "<- media.raw-video.frames" in shown.out
    text = strata("graph", "render").out
    assert text.splitlines()[0] == "media/raw-video  (root)"
    assert "media/clips  <- media/raw-video (expansion on video_id)" in text
    assert "  text  v1  <- media.raw-video.audio, media.raw-video.frames" in text


def test_graph_render_mermaid(strata: Cli, reference: Path) -> None:
    result = strata("graph", "render", "--format", "mermaid")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "graph TD",
        '    f0["video<br/>audio, frames"]',
        '    f1["transcript<br/>text"]',
        '    f2["embedding<br/>vector"]',
        '    f0 -->|"audio"| f1',
        '    f1 -->|"text"| f2',
        '    f0 -->|"frames"| f2',
    ]


def test_graph_render_dot_is_a_quoted_digraph(strata: Cli, make_project: MakeProject) -> None:
    make_project({"feats/media.py": ODD_KEYS})
    result = strata("graph", "render", "--format", "dot")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "digraph strata {"
    assert lines[-1] == "}"
    quoted = r'"(?:[^"\\]|\\.)*"'
    statement = re.compile(
        rf"    (?:rankdir=TB|node \[shape=box\]|{quoted} \[label={quoted}\]|{quoted} -> {quoted}( \[label={quoted}\])?);"
    )
    for line in lines[1:-1]:
        assert statement.fullmatch(line), line
    assert '    "media/raw-video" [label="media/raw-video\\naudio, frames"];' in lines
    assert '    "media/raw-video" -> "media/clips" [label="frames"];' in lines
    assert '    "media/raw-video" -> "summary" [label="audio, frames"];' in lines


def test_graph_render_text_and_json(strata: Cli, reference: Path) -> None:
    text = strata("graph", "render").out
    assert text.splitlines() == [
        "video  (root)",
        "  audio   v1",
        "  frames  v1",
        "transcript  <- video",
        "  text  v1  <- video.audio",
        "embedding  <- transcript, video",
        "  vector  v1  <- transcript.text, video.frames",
    ]
    data = strata("--json", "graph", "render", "--format", "dot").json()
    assert data["format"] == "dot"
    assert data["graph"].startswith("digraph strata {")


def test_no_features(strata: Cli, make_project: MakeProject) -> None:
    make_project({}, entrypoints=[])
    assert "no features" in strata("features", "list").out
    assert strata("features", "list", "--json").json() == []
    assert strata("graph", "render", "--format", "mermaid").out == "graph TD\n"


def test_unknown_feature_is_exit_2(strata: Cli, reference: Path) -> None:
    result = strata("features", "show", "audio")
    assert result.code == 2
    assert (
        result.err
        == "strata: error: no feature `audio` in the graph (features: embedding, transcript, video); check the key\n"
    )
    assert strata("features", "show", "../x").code == 2


@pytest.mark.parametrize(
    ("modules", "entrypoints", "message"),
    [
        (
            {"feats/broken.py": "import strata as st\n\nraise RuntimeError('no GPU\\nhere')\n"},
            None,
            (
                "strata: error: feature module `feats.broken` failed to import (feats/broken.py:3): RuntimeError: no GPU here; "
                "fix the module; run with --debug for the traceback\n"
            ),
        ),
        (
            {"feats/outer.py": "import feats.inner\n", "feats/inner.py": "x = 1 / 0\n"},
            ["feats.outer"],
            (
                "strata: error: feature module `feats.outer` failed to import (feats/inner.py:1): ZeroDivisionError: "
                "division by zero; fix the module; run with --debug for the traceback\n"
            ),
        ),
        (
            {"feats/syntax.py": "def broken(:\n    pass\n"},
            None,
            (
                "strata: error: feature module `feats.syntax` has a syntax error (feats/syntax.py:1): invalid syntax; "
                "fix the module\n"
            ),
        ),
        (
            {"feats/a.py": "import strata\n"},
            ["feats.missing"],
            (
                "strata: error: cannot import feature module `feats.missing`: No module named 'feats.missing'; "
                "check features.entrypoints\n"
            ),
        ),
        (
            {"feats/a.py": "import strata\nimport no_such_library\n"},
            None,
            (
                "strata: error: cannot import feature module `feats.a`: No module named 'no_such_library'; "
                "check features.entrypoints\n"
            ),
        ),
        (
            {
                "feats/cycle.py": """
                    import strata as st

                    class A(st.Feature, spec=st.FeatureSpec("a", deps=["b"])):
                        pass

                    class B(st.Feature, spec=st.FeatureSpec("b", deps=[A])):
                        pass
                """
            },
            None,
            "strata: error: dependency cycle: a -> b -> a; remove one of these dependencies\n",
        ),
        (
            {
                "feats/orphan.py": 'import strata as st\n\nclass A(st.Feature, spec=st.FeatureSpec("a", deps=["gone"])):\n    pass\n'
            },
            None,
            (
                "strata: error: feature `a` depends on `gone`, which is not defined; "
                "define it, import the module that does, or fix the key\n"
            ),
        ),
    ],
)
@pytest.mark.parametrize("command", [["features", "list"], ["graph", "render"], ["status"]])
def test_bad_feature_modules_are_one_line_and_exit_2(
    strata: Cli,
    make_project: MakeProject,
    modules: dict[str, str],
    entrypoints: list[str] | None,
    message: str,
    command: list[str],
) -> None:
    root = make_project(modules, entrypoints=entrypoints)
    result = strata(*command)
    assert (result.code, result.err) == (2, message)
    assert result.out == ""
    assert not (root / ".strata" / "metadata.duckdb").exists()  # status stopped before opening the store
