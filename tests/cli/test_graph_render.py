"""``strata graph render``: the graph annotated with each field's staleness, as text, Mermaid, DOT, SVG and PNG.

A demo-like project (``articles`` -> ``clean`` -> ``embedding``) in a real DuckDB file, built
by the real ``strata build``; pictures drawn by the real Graphviz ``dot`` (Debian's
``graphviz``, installed by the ``graphviz_dot`` fixture when missing).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.project.project import Project
from strata.views.render import render_svg
from tests.build.test_expansion import FEATURES as EXPANSION
from tests.cli.conftest import MakeProject
from tests.helpers import STRATA, Cli
from tests.servers import graphviz_dot  # noqa: F401 - the fixture the picture tests use
from tests.ui.conftest import start_ui

FEATURES = """
import polars as pl
import strata as st


class Articles(st.Feature, spec=st.FeatureSpec("articles", id_columns=["id"], fields=["title", "body", "tags", "views"])):
    '''Articles as the source has them.'''


class Clean(st.Feature, spec=st.FeatureSpec("clean", id_columns=["id"], deps=[Articles], fields=[
        st.FieldSpec("text", deps=[st.FieldDep(Articles, ["body"])]),
        st.FieldSpec("headline", deps=[st.FieldDep(Articles, ["title"])])])):
    batch_size = 1

    def compute(self, inputs):
        articles = inputs[Articles]
        if "boom" in articles["body"].to_list():
            raise ValueError("cannot clean a body that says boom")
        return articles.select("id", pl.col("body").str.to_uppercase().alias("text"), pl.col("title").alias("headline"))


class Embedding(st.Feature, spec=st.FeatureSpec("embedding", id_columns=["id"], deps=[Clean, Articles], fields=[
        st.FieldSpec("vector", deps=[st.FieldDep(Clean, ["text"]), st.FieldDep(Articles, ["tags"])])])):
    def compute(self, inputs):
        rows = inputs[Clean].join(inputs[Articles], on="id")
        return rows.select("id", (pl.col("text").str.len_chars() + pl.col("tags").str.len_chars()).alias("vector"))
"""

N = 20
SVG = "{http://www.w3.org/2000/svg}"
COLOURS = {"in sync": "#c6efce", "stale": "#ffeb9c", "failed": "#ffc7ce"}
HOSTILE = """
import strata as st


class Where(st.Feature, spec=st.FeatureSpec("graph/end--x", id_columns=["id"], fields=["node", "end"])):
    pass


class Drop(st.Feature, spec=st.FeatureSpec("select/drop-table", id_columns=["id"], deps=[Where], fields=["subgraph"])):
    pass
"""


def write_articles(root: Path, bodies: dict[int, str] | None = None, n: int = N) -> None:
    """Write the root feature as target-strata would: only rows whose values changed."""
    bodies = bodies or {}
    columns = {
        "title": [f"t{i}" for i in range(n)],
        "body": [bodies.get(i, f"b{i}") for i in range(n)],
        "tags": ["news"] * n,
        "views": [str(i) for i in range(n)],
    }
    versions = {f"strata_dv__{name}": [sample_hash("md5", [v]) for v in values] for name, values in columns.items()}
    project = Project(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("articles", pl.DataFrame({"id": list(range(n)), **columns, **versions}))


@pytest.fixture
def demo(make_project: MakeProject, strata: Cli) -> Path:
    """The demo-like project, ingested and built: everything in sync."""
    root = make_project({"feats.py": FEATURES})
    write_articles(root)
    built = strata("build", "--workers", "1")
    assert built.code == 0, built.err
    return root


def _svg(text: str) -> ET.Element:
    """An SVG document that our own ``dot`` drew, parsed (the input is trusted)."""
    return ET.fromstring(text)  # noqa: S314


def _node(out: str, feature: str) -> str:
    """The Mermaid line of ``feature``'s node."""
    return next(line for line in out.splitlines() if re.match(rf'    f\d+\["{feature}<br/>', line))


def _dot_node(out: str, feature: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f'    "{feature}" ['))


def _dot_field(line: str, field: str) -> tuple[str, str]:
    """(colour, counts) of ``field``'s row in a DOT node's HTML label."""
    found = re.search(
        rf'<TR><TD ALIGN="LEFT" BGCOLOR="(#[0-9a-f]+)">{field}</TD><TD ALIGN="LEFT" BGCOLOR="#[0-9a-f]+">([^<]*)</TD></TR>',
        line,
    )
    assert found, line
    return found[1], found[2]


def test_mermaid_counts_each_field_in_sync_stale_and_failed(strata: Cli, demo: Path) -> None:
    out = strata("graph", "render", "--format", "mermaid").out
    assert (
        _node(out, "clean") == '    f1["clean<br/>20 samples<br/>text: 20 in sync<br/>headline: 20 in sync"]:::inSync'
    )
    assert "    classDef inSync fill:#c6efce,stroke:#2e7d32,color:#000" in out.splitlines()

    write_articles(demo, bodies={2: "new", 5: "newer", 7: "boom"})
    out = strata("graph", "render", "--format", "mermaid").out
    assert _node(out, "articles") == (
        '    f0["articles<br/>20 samples<br/>title: 20 in sync<br/>body: 20 in sync<br/>tags: 20 in sync<br/>'
        'views: 20 in sync"]:::inSync'
    )
    assert _node(out, "clean") == (
        '    f1["clean<br/>20 samples<br/>text: 17 in sync, 3 stale<br/>headline: 20 in sync"]:::stale'
    )
    assert _node(out, "embedding") == '    f2["embedding<br/>20 samples<br/>vector: 20 in sync"]:::inSync'
    assert '    f0 -->|"body, title"| f1' in out.splitlines()  # the edges are drawn as before

    assert strata("build", "clean", "--workers", "1").code == 1  # sample 7 fails; 2 and 5 are written
    out = strata("graph", "render", "--format", "mermaid").out
    assert _node(out, "clean") == (
        '    f1["clean<br/>20 samples<br/>text: 19 in sync, 1 failed<br/>headline: 20 in sync"]:::failed'
    )
    assert _node(out, "embedding") == ('    f2["embedding<br/>20 samples<br/>vector: 18 in sync, 2 stale"]:::stale')


def test_dot_and_text_carry_the_same_counts_and_colours(strata: Cli, demo: Path) -> None:
    write_articles(demo, bodies={2: "new", 5: "newer", 7: "boom"}, n=22)  # two new articles too
    assert strata("build", "clean", "--workers", "1").code == 1  # 7 fails; 2, 5, 20 and 21 are written
    write_articles(demo, bodies={2: "new", 5: "newer", 7: "boom", 9: "changed"}, n=23)

    out = strata("graph", "render", "--format", "dot").out
    clean = _dot_node(out, "clean")
    assert f'fillcolor="{COLOURS["failed"]}"' in clean
    assert 'class="strata-feature failed"' in clean
    assert "<B>clean</B>" in clean
    assert "22 samples" in clean
    assert _dot_field(clean, "text") == (COLOURS["failed"], "20 in sync, 2 stale, 1 failed")
    assert _dot_field(clean, "headline") == (COLOURS["stale"], "22 in sync, 1 stale")
    embedding = _dot_node(out, "embedding")
    assert "20 samples" in embedding
    assert _dot_field(embedding, "vector") == (COLOURS["stale"], "18 in sync, 4 stale")
    assert f'fillcolor="{COLOURS["stale"]}"' in embedding
    assert '    "articles" -> "clean" [label="body, title"];' in out.splitlines()

    text = strata("graph", "render").out.splitlines()
    assert text[0] == "store: local"
    assert "clean  <- articles  [22 samples]" in text
    assert "  text      v1  <- articles.body  [20 in sync, 2 stale, 1 failed: articles.body 2, new 1]" in text
    assert "  headline  v1  <- articles.title  [22 in sync, 1 stale: new 1]" in text
    assert "articles  (root)  [23 samples]" in text
    assert "  title  v1  [23 in sync]" in text


def test_samples_to_remove_are_in_no_field_and_make_the_feature_stale(strata: Cli, demo: Path) -> None:
    project = Project(demo)
    with make_store(project, graph=load_graph(project)) as store:
        store.delete("articles", pl.DataFrame({"id": [3, 4]}))
    out = strata("graph", "render", "--format", "mermaid").out
    assert _node(out, "clean") == (
        '    f1["clean<br/>20 samples, 2 to remove<br/>text: 18 in sync<br/>headline: 18 in sync"]:::stale'
    )
    assert "clean  <- articles  [20 samples, 2 to remove]" in strata("graph", "render").out.splitlines()


def test_without_data_or_with_no_status_the_graph_is_plain(strata: Cli, make_project: MakeProject) -> None:
    root = make_project({"feats.py": FEATURES})
    plain = strata("graph", "render", "--format", "mermaid")
    assert plain.code == 0, plain.err
    assert "classDef" not in plain.out
    assert plain.out.startswith('graph TD\n    f0["articles<br/>title, body, tags, views"]\n')
    assert not (root / ".strata" / "metadata.duckdb").exists()  # a picture creates no store

    write_articles(root)
    assert "classDef" in strata("graph", "render", "--format", "mermaid").out
    assert strata("graph", "render", "--format", "mermaid", "--no-status").out == plain.out
    assert strata("graph", "render", "--no-status").out.splitlines()[0] == "articles  (root)"


@pytest.mark.usefixtures("graphviz_dot")
def test_svg_is_xml_with_every_feature_field_and_count(strata: Cli, demo: Path) -> None:
    write_articles(demo, bodies={2: "new", 5: "newer"})
    result = strata("graph", "render", "--format", "svg")
    assert result.code == 0, result.err
    root = _svg(result.out)
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for name in ("articles", "clean", "embedding", "title", "body", "tags", "views", "text", "headline", "vector"):
        assert name in texts, name
    assert "18 in sync, 2 stale" in texts
    assert texts.count("20 in sync") == 6  # four articles fields, headline, vector
    classes = {g.get("class") for g in root.iter(f"{SVG}g")}
    assert {"node strata-feature stale", "node strata-feature in-sync"} <= classes

    out = demo / "graph.svg"
    written = strata("graph", "render", "--format", "svg", "--output", str(out))
    assert written.code == 0, written.err
    assert written.out == ""
    assert _svg(out.read_text(encoding="utf-8")).tag == f"{SVG}svg"


@pytest.mark.usefixtures("graphviz_dot")
def test_render_svg_is_a_python_call_without_a_store(make_project: MakeProject) -> None:
    root = make_project({"feats.py": FEATURES})
    svg = render_svg(load_graph(Project(root)))
    names = {t.text for t in _svg(svg).iter(f"{SVG}text")}
    assert {"articles", "clean", "embedding"} <= names


@pytest.mark.usefixtures("graphviz_dot")
def test_png_starts_with_the_png_signature(strata: Cli, demo: Path) -> None:
    out = demo / "graph.png"
    assert strata("graph", "render", "--format", "png", "-o", str(out)).code == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    piped = subprocess.run([*STRATA, "graph", "render", "--format", "png"], cwd=demo, capture_output=True, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.usefixtures("graphviz_dot")
def test_png_to_a_terminal_is_refused(demo: Path) -> None:
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            [*STRATA, "graph", "render", "--format", "png"],
            cwd=demo,
            stdout=follower,
            stderr=subprocess.PIPE,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "strata: error: a PNG is binary and stdout is a terminal; write it to a file with --output FILE\n"
    )


@pytest.mark.usefixtures("graphviz_dot")
def test_hostile_keys_and_field_names_stay_quoted(strata: Cli, make_project: MakeProject) -> None:
    root = make_project({"feats.py": HOSTILE})
    project = Project(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write(
            "graph/end--x",
            pl.DataFrame(
                {
                    "id": [1, 2],
                    "node": ["a", "b"],
                    "end": ["c", "d"],
                    "strata_dv__node": ["1", "2"],
                    "strata_dv__end": ["3", "4"],
                }
            ),
        )
    mermaid = strata("graph", "render", "--format", "mermaid").out.splitlines()
    assert mermaid[4] == '    f0["graph/end--x<br/>2 samples<br/>node: 2 in sync<br/>end: 2 in sync"]:::inSync'
    assert mermaid[5] == '    f1["select/drop-table<br/>0 samples<br/>subgraph: 0 in sync, 2 stale"]:::stale'
    dot = strata("graph", "render", "--format", "dot").out
    assert '    "graph/end--x" -> "select/drop-table" [label="end, node"];' in dot.splitlines()
    svg = strata("graph", "render", "--format", "svg")
    assert svg.code == 0, svg.err
    texts = [t.text for t in _svg(svg.out).iter(f"{SVG}text")]
    assert {"graph/end--x", "select/drop-table", "node", "end", "subgraph", "0 in sync, 2 stale"} <= set(texts)


@pytest.mark.usefixtures("graphviz_dot")
def test_bad_input_is_one_line(strata: Cli, demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = strata("graph", "render", "--format", "jpeg")
    assert unknown.code == 2
    assert unknown.err.count("\n") == 1
    assert "'jpeg' is not one of 'text', 'mermaid', 'dot', 'svg', 'png'" in unknown.err
    assert strata("--json", "graph", "render", "--format", "png").err == (
        "strata: error: a PNG cannot go into JSON; write it to a file with --output FILE\n"
    )
    written = strata("--json", "graph", "render", "--format", "mermaid", "--output", str(demo / "graph.mmd"))
    assert written.json()["status"]["clean"]["fields"]["text"] == {
        "state": "in sync",
        "in_sync": 20,
        "stale": 0,
        "failed": 0,
        "causes": {},
    }
    assert (demo / "graph.mmd").read_text(encoding="utf-8").startswith("graph TD\n    classDef inSync")

    monkeypatch.setenv("GVBINDIR", str(demo / "no-plugins"))  # the real dot, without its plugins: it fails
    failing = strata("graph", "render", "--format", "svg")
    assert failing.code == 1
    assert re.fullmatch(
        r'strata: error: Graphviz `dot` failed: Format: "svg" not recognized\.[^\n]*; [^\n]+\n', failing.err
    )
    monkeypatch.delenv("GVBINDIR")

    monkeypatch.setenv("PATH", str(demo / "empty"))
    missing = strata("graph", "render", "--format", "png", "--output", "x.png")
    assert missing.code == 2
    assert missing.err == (
        "strata: error: Graphviz's `dot` program is not installed (it draws svg and png); "
        "install graphviz (apt-get install graphviz, brew install graphviz) or use --format dot|mermaid\n"
    )
    assert not (demo / "x.png").exists()

    nowhere = strata("graph", "render", "--format", "mermaid", "--output", str(demo / "no" / "such" / "dir.mmd"))
    assert nowhere.code == 1
    assert nowhere.err.startswith("strata: error: cannot write ")
    assert nowhere.err.count("\n") == 1

    (demo / ".strata" / "metadata.duckdb").write_bytes(b"not a database at all" * 100)
    broken = strata("graph", "render")
    assert broken.code == 1
    assert broken.err.startswith("strata: error: cannot open store `local`")
    assert broken.err.endswith("(or draw the graph alone: --no-status)\n")
    assert broken.err.count("\n") == 1
    assert strata("graph", "render", "--no-status").code == 0


def test_the_cli_stays_light_without_a_store(make_project: MakeProject) -> None:
    make_project({"feats.py": FEATURES.replace("import polars as pl\n", "")})
    code = (
        "import sys\nfrom strata.cli import main\n"
        "try:\n    main(['graph', 'render', '--format', 'dot'])\nexcept SystemExit as exc:\n    assert not exc.code\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stderr.split())
    assert not {m for m in loaded if m.split(".")[0] in ("polars", "duckdb", "sqlalchemy", "narwhals")}


def test_an_expansion_counts_parents_per_field_and_children_as_samples(
    strata: Cli, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project({"feats.py": EXPANSION})
    monkeypatch.setenv("EXPANSION_LOG", str(root / "compute.log"))

    def videos(counts: list[int]) -> None:
        frame = pl.DataFrame({"sample_uid": list(range(len(counts))), "count": counts, "title": ["t"] * len(counts)})
        frame = frame.with_columns(
            pl.Series("strata_dv__count", [sample_hash("md5", [str(c)]) for c in counts]),
            pl.Series("strata_dv__title", [sample_hash("md5", ["t"])] * len(counts)),
        )
        project = Project(root)
        with make_store(project, graph=load_graph(project)) as store:
            store.write_changed("video", frame)

    videos([2, 3, 1])
    assert strata("build", "--workers", "1").code == 0
    videos([2, 4, 1, 2])  # video 1 gets a frame more, video 3 is new
    lines = strata("graph", "render", "--format", "mermaid").out.splitlines()
    assert lines[5] == '    f1["frames<br/>6 samples from 3 parents<br/>pixels: 2 parents in sync, 2 stale"]:::stale'
    assert lines[6] == '    f2["summary<br/>3 samples<br/>frames: 3 in sync"]:::inSync'


PAGES = """
import strata as st


class Pages(st.Feature, spec=st.FeatureSpec("pages", id_columns=["site", "path"], fields=["html", "title"])):
    pass
"""


def test_a_root_field_whose_code_version_changed_is_stale_as_why_says(strata: Cli, make_project: MakeProject) -> None:
    """`strata why` calls such a root sample stale (cause `code`, as a resolve with its samples); render, status agree."""
    root = make_project({"feats.py": PAGES})
    frame = pl.DataFrame({"site": ["s1", "s1"], "path": ["/a", "/b"], "html": ["<p>", "<i>"], "title": ["t", "u"]})
    frame = frame.with_columns(
        strata_dv__html=pl.Series([sample_hash("md5", [h]) for h in ["<p>", "<i>"]]),
        strata_dv__title=pl.Series([sample_hash("md5", [t]) for t in ["t", "u"]]),
    )
    project = Project(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("pages", frame)
    assert strata("status", "--assert-in-sync").code == 0
    plain = strata("--json", "graph", "render", "--format", "text").json()["status"]["pages"]
    assert plain["state"] == "in sync"
    assert plain["fields"]["html"] == {"state": "in sync", "in_sync": 2, "stale": 0, "failed": 0, "causes": {}}
    (root / "feats.py").write_text(PAGES.replace('"html", "title"', 'st.FieldSpec("html", code_version="2"), "title"'))
    sys.modules.pop("feats", None)  # the next command imports the edited module (as test_graph_snapshots does)
    why = strata("--json", "why", "pages", "s1,/a")
    assert why.code == 0, why.err
    (node,) = why.json()["samples"][0]["lineage"]
    assert node["status"] == "stale"
    assert [f["causes"][0]["kind"] if f["causes"] else None for f in node["fields"]] == ["code", None]
    rendered = strata("--json", "graph", "render", "--format", "text")
    assert rendered.code == 0, rendered.err
    pages = rendered.json()["status"]["pages"]
    assert pages["state"] == "stale"
    assert pages["fields"]["html"] == {"state": "stale", "in_sync": 0, "stale": 2, "failed": 0, "causes": {"code": 2}}
    assert pages["fields"]["title"]["state"] == "in sync"
    mermaid = strata("graph", "render", "--format", "mermaid").out
    assert 'html: 0 in sync, 2 stale<br/>title: 2 in sync"]:::stale' in mermaid
    status = strata("--json", "status")
    (row,) = status.json()["features"]
    assert row == {
        "feature": "pages",
        "root": True,
        "samples": 2,
        "fields": {"html": {"code": 2}},
        "stale": {"html": 2, "title": 0},
        "in_sync": False,
    }
    text = strata("status").out
    assert text.endswith("changed fields:\n  pages.html <- code (2)\n"), text
    failed = strata("status", "--assert-in-sync")
    assert (failed.code, failed.err) == (
        1,
        "strata: error: not in sync: pages (2 stale); " + failed.err.split("; ", 1)[1],
    )
    server = start_ui(root)
    try:
        with urllib.request.urlopen(server.url, timeout=30) as answer:  # noqa: S310 - a local test server
            page = answer.read().decode()
        with urllib.request.urlopen(server.url.rstrip("/") + "/feature?key=pages", timeout=30) as answer:  # noqa: S310
            feature_page = answer.read().decode()
    finally:
        server.stop()
    assert 'class="node stale" data-feature="pages"' in page
    assert '<g class="field stale" data-field="html">' in page
    assert '<g class="field ok" data-field="title">' in page  # green "in sync", as render's pictures
    assert '<span class="badge stale">2 stale</span></td><td>code (2)</td>' in feature_page
    assert '<span class="badge ok">in sync</span></td><td></td>' in feature_page


def _write_videos(root: Path, counts: list[int]) -> None:
    """The ``video`` root of :data:`EXPANSION` as ingest writes it: video ``i`` has ``counts[i]`` frames."""
    frame = pl.DataFrame({"sample_uid": list(range(len(counts))), "count": counts, "title": ["t"] * len(counts)})
    frame = frame.with_columns(
        pl.Series("strata_dv__count", [sample_hash("md5", [str(c)]) for c in counts], dtype=pl.String),
        pl.Series("strata_dv__title", [sample_hash("md5", ["t"])] * len(counts), dtype=pl.String),
    )
    project = Project(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("video", frame)


def _units(feature: dict[str, object]) -> int:
    """The samples a feature's field counts are in: parents for an expansion, else its samples."""
    units = feature.get("parents", feature["samples"])
    assert isinstance(units, int)
    return units


@pytest.mark.parametrize(
    ("counts", "then"),
    [
        ([0, 0, 0, 1, 2, 1, 3, 1, 2, 3], None),  # the trial's: 10 videos, 3 without frames, 13 frames
        ([0, 0, 0, 1, 2, 1, 3, 1, 2, 3], "code"),  # then frames' pixels get a new code_version
        ([0, 0, 0], "code"),  # no video has a frame: frames holds no sample, only "no children" rows
        ([2, 0, 1], [0, 0, 1, 4]),  # then video 0 loses its frames, video 3 is new
        ([2, 0, 1], [2, 3]),  # then video 2 leaves, video 1 gets frames
    ],
)
def test_an_expansion_with_empty_parents_counts_in_one_unit_never_negative(
    strata: Cli,
    make_project: MakeProject,
    monkeypatch: pytest.MonkeyPatch,
    counts: list[int],
    then: str | list[int] | None,
) -> None:
    """Every field's counts are in the feature's one unit (parents of an expansion, as its heading says): none negative.

    In sync, stale and failed add up to the units there will be once built: those held, less the
    ones to remove, plus the ones to add.
    """
    root = make_project({"feats.py": EXPANSION})
    monkeypatch.setenv("EXPANSION_LOG", str(root / "compute.log"))
    _write_videos(root, counts)
    assert strata("build", "--workers", "1").code == 0
    if then == "code":
        (root / "feats.py").write_text(
            EXPANSION.replace('FieldSpec("pixels", ', 'FieldSpec("pixels", code_version="2", ')
        )
        sys.modules.pop("feats", None)
    elif isinstance(then, list):
        _write_videos(root, then)
    rendered = strata("--json", "graph", "render", "--format", "text")
    assert rendered.code == 0, rendered.err
    status = rendered.json()["status"]
    frames = status["frames"]
    assert frames["samples"] == sum(counts)
    assert frames["parents"] == len(counts)
    added = {"video": 0, "frames": max(0, len(then) - len(counts)) if isinstance(then, list) else 0}
    for name, feature in status.items():
        for field, state in feature["fields"].items():
            assert min(state["in_sync"], state["stale"], state["failed"]) >= 0, (name, field, state)
            total = state["in_sync"] + state["stale"] + state["failed"]
            assert total == _units(feature) - feature["removed"] + added.get(name, state["causes"].get("new", 0))
    text = strata("graph", "render", "--format", "text").out
    heading = f"[{sum(counts)} samples from {len(counts)} parents"
    assert re.search(rf"^frames  <- video \(expansion on sample_uid\)  {re.escape(heading)}", text, re.MULTILINE), text
    pixels = next(line for line in text.splitlines() if line.startswith("  pixels"))
    assert re.search(r"\[\d+ parents? in sync", pixels), pixels
    mermaid = _node(strata("graph", "render", "--format", "mermaid").out, "frames")
    assert f"{sum(counts)} samples from {len(counts)} parents" in mermaid
    assert re.search(r"pixels: \d+ parents? in sync", mermaid), mermaid
    assert "-" not in re.sub(r"\w-\w", "", mermaid.split("<br/>", 1)[1]), mermaid
    dot = _dot_node(strata("graph", "render", "--format", "dot").out, "frames")
    assert f"{sum(counts)} samples from {len(counts)} parents" in dot
    _, pixels_counts = _dot_field(dot, "pixels")
    assert pixels_counts in mermaid
    server = start_ui(root)
    try:
        with urllib.request.urlopen(server.url, timeout=30) as answer:  # noqa: S310 - a local test server
            page = answer.read().decode()
    finally:
        server.stop()
    assert f"<title>pixels: {pixels_counts}</title>" in page  # the page's tooltip: render's words
    assert f"<title>frames: {sum(counts)} samples from {len(counts)} parents" in page


def _children(parents: pl.DataFrame, counts: dict[int, int]) -> pl.DataFrame:
    """Each parent's frames ``0..n-1`` (``n`` from ``counts``), or its one "no children" row (frame null) for none."""
    rows = []
    for parent in parents.iter_rows(named=True):
        n = counts[parent["sample_uid"]]
        rows += [parent | {"frame": f, "strata_dv__pixels": f"p{parent['sample_uid']}-{f}"} for f in range(n)]
        rows += [] if n else [parent | {"frame": None, "strata_dv__pixels": f"p{parent['sample_uid']}-none"}]
    schema = parents.schema | {"frame": pl.Int64, "strata_dv__pixels": pl.String}
    return pl.DataFrame(rows, schema=schema)


@settings(max_examples=40, deadline=None)
@given(
    before=hst.lists(hst.integers(0, 3), max_size=5),
    after=hst.lists(hst.integers(0, 3), max_size=6),
    rebuilt=hst.sets(hst.integers(0, 5)),
)
def test_counts_of_an_expansion_and_its_aggregation_are_never_negative_and_add_up(
    before: list[int], after: list[int], rebuilt: set[int]
) -> None:
    """Videos with 0..3 frames (0: a "no children" row) -> frames -> summary; then videos change, come and go.

    Each field's counts are in its feature's unit (parents for frames): in sync, stale and failed
    add up to the units held, less those to remove, plus those to add; none is negative.
    """
    import strata as st
    from strata.views.graph import field_status
    from tests.stores.graphs import lineage_graph

    def videos(counts: list[int]) -> pl.DataFrame:
        return pl.DataFrame(
            {"sample_uid": list(range(len(counts))), "strata_dv__frames": [f"v{c}" for c in counts]},
            schema={"sample_uid": pl.Int64, "strata_dv__frames": pl.String},
        )

    graph = lineage_graph()
    with st.InMemoryStore(graph=graph) as store:
        store.write("video", videos(before))
        store.write("frames", _children(store.resolve_update("frames").added.to_native(), dict(enumerate(before))))
        store.write("summary", store.resolve_update("summary").added.to_native())
        store.write("video", videos(after))
        if len(after) < len(before):
            store.delete("video", pl.DataFrame({"sample_uid": list(range(len(after), len(before)))}))
        increment = store.resolve_update("frames").collect()
        changed = increment.changed.to_native()  # with nothing written yet, its ids are text: none is rebuilt
        redone = changed.filter(pl.col("sample_uid").is_in(sorted(rebuilt))) if len(changed) else changed
        columns = [c for c in redone.columns if not c.startswith("strata_cause__")]
        store.write("frames", _children(redone.select(columns), dict(enumerate(after))))  # some parents recomputed
        keys = graph.topological_order()
        states = field_status(store, keys)
        for key in keys:
            state = states[str(key)]
            counts = store.resolve_update(key).collect().counts() if key.table_name != "video" else {"added": 0}
            units = state.samples if state.parents is None else state.parents
            for name, found in state.fields.items():
                assert min(found.in_sync, found.stale, found.failed) >= 0, (key, name, found, before, after)
                total = found.in_sync + found.stale + found.failed
                assert total == units - state.removed + counts["added"], (key, name, found, before, after)
        assert states["frames"].parents == len(before)  # those without frames too; rebuilt or to remove, still held
