"""``strata why FEATURE ID...``: one sample's lineage and causes, from the reference example's DuckDB store."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.project.project import Project
from strata.views.why import parse_ids
from tests.cli.conftest import MakeProject
from tests.cli.test_status import Steps, steps  # noqa: F401 - steps: the fixture running the example's steps
from tests.helpers import Cli


def test_a_changed_root_field_is_the_cause_named(strata: Cli, steps: Steps) -> None:  # noqa: F811
    steps("roots", "transcript", "embedding")
    steps("roots", changed=("v003",))
    result = strata("why", "transcript", "v003")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "transcript sample_uid=v003: stale (store local)"
    assert strata("why", "embedding", "v003").out.splitlines()[0] == (
        "embedding sample_uid=v003: up to date; upstream not in sync: transcript stale (store local)"
    )
    assert lines[1].startswith("  video sample_uid=v003 · present · written ")
    assert lines[4].startswith("  transcript sample_uid=v003 · stale · written ")
    assert lines[4].endswith(" · from video (identity)")
    assert re.fullmatch(r"    text  [0-9a-f]{12} -> [0-9a-f]{12}  code 1", lines[5])
    cause = r"          <- upstream field video.audio changed in `video` sample_uid=v003 \(changed\): \w{12} -> \w{12}"
    assert re.fullmatch(cause, lines[6])
    assert len(lines) == 7
    assert "up to date" in strata("why", "transcript", "sample_uid=v004").out.splitlines()[0]


def test_a_deleted_root_is_named_deleted_above_the_sample(strata: Cli, steps: Steps) -> None:  # noqa: F811
    steps("roots", "transcript", "embedding")
    assert strata("metadata", "delete", "video", "--id", "v003").code == 0
    lines = strata("why", "embedding", "v003").out.splitlines()
    assert (
        lines[0]
        == "embedding sample_uid=v003: to remove; upstream not in sync: video deleted, transcript to remove (store local)"
    )
    assert lines[1].startswith("  video sample_uid=v003 · deleted · written ")
    deleted_at = strata("--json", "why", "video", "v003").json()["samples"][0]["lineage"][0]["written_at"]
    local = dt.datetime.fromisoformat(deleted_at).replace(tzinfo=dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert lines[1].endswith(f" · written {local}")  # the machine's time zone, as runs list shows times


def test_json_has_every_node_and_cause(strata: Cli, steps: Steps) -> None:  # noqa: F811
    steps("roots", "transcript", "embedding")
    steps("roots", changed=("v003",))
    result = strata("--json", "why", "embedding", "v003", "v001")
    assert result.code == 0, result.err
    data = result.json()
    assert data["feature"] == "embedding"
    assert data["store"] == "local"
    assert [s["ids"] for s in data["samples"]] == [{"sample_uid": "v003"}, {"sample_uid": "v001"}]
    lineage = data["samples"][0]["lineage"]
    assert [(n["feature"], n["status"]) for n in lineage] == [
        ("video", "present"),
        ("transcript", "stale"),
        ("embedding", "up to date"),
    ]
    (cause,) = lineage[1]["fields"][0]["causes"]
    assert (cause["kind"], cause["input"]) == ("input", "video.audio")
    assert [(s["feature"], s["ids"], s["change"]) for s in cause["samples"]] == [
        ("video", {"sample_uid": "v003"}, "changed")
    ]
    assert strata("why", "embedding", "v001", "--json").json()["samples"][0]["status"] == "up to date"


def test_bad_input_is_one_line_and_exit_2(strata: Cli, steps: Steps, reference: Path) -> None:  # noqa: F811
    missing = strata("why", "transcript", "v003")
    assert missing.code == 2
    assert missing.err == (
        f"strata: error: store `local` has no database at {reference / '.strata' / 'metadata.duckdb'}, so it holds "
        "no samples yet; load or build into it first, or name another store with --store\n"
    )
    steps("roots", "transcript")
    unknown = strata("why", "transcript", "v999")
    assert unknown.code == 2
    assert unknown.err == (
        "strata: error: no sample sample_uid=v999 in `transcript` nor its upstreams (`video`) in store `local`; "
        "check the ids, and that this is the store that holds them\n"
    )
    feature = strata("why", "nope", "v001")
    assert (feature.code, feature.err.count("\n")) == (2, 1)
    assert feature.err.startswith("strata: error: no feature `nope`")
    shape = strata("why", "transcript", "frame=3")
    assert shape.code == 2
    assert shape.err == (
        "strata: error: `transcript` has id columns sample_uid: no id column frame; give a value for each id column\n"
    )
    store = strata("why", "transcript", "v001", "--store", "other")
    assert (store.code, store.err.count("\n")) == (2, 1)
    assert "`other`" in store.err
    (reference / ".strata" / "metadata.duckdb").write_bytes(b"not a database" * 1000)
    broken = strata("why", "transcript", "v001")
    assert broken.code == 2
    assert broken.err.startswith("strata: error: cannot open store `local` (")
    assert broken.err.endswith("; check that it is a database of the store's type\n")
    assert "Traceback" not in broken.err + unknown.err + shape.err


def test_a_wrongly_typed_id_is_refused(strata: Cli, tmp_path: Path) -> None:
    root = tmp_path / "ints"
    assert strata("init", str(root)).code == 0
    (root / "features").mkdir()
    (root / "features" / "__init__.py").write_text("")
    (root / "features" / "clips.py").write_text(
        "import strata as st\n\n\nclass Clip(st.Feature, spec=st.FeatureSpec('clip', fields=['audio'])):\n    pass\n"
    )
    text = (root / "strata.yml").read_text()
    (root / "strata.yml").write_text(text.replace("entrypoints: []", "entrypoints: [features.clips]"))
    project = Project.find(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write("clip", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a1", "a2"]}))
    ok = strata("-C", str(root), "why", "clip", "2")
    assert ok.code == 0, ok.err
    assert ok.out.splitlines()[0] == "clip sample_uid=2: present (store local)"
    bad = strata("-C", str(root), "why", "clip", "two")
    assert bad.code == 2
    assert bad.err == (
        "strata: error: id `sample_uid` of `clip` is stored as Int64: 'two' is not one; give a value of type Int64\n"
    )


FRAMES = """import strata as st


class Video(st.Feature, spec=st.FeatureSpec("video", fields=["frames"])):
    pass


class Frames(
    st.Feature,
    spec=st.FeatureSpec(
        "frames",
        id_columns=["sample_uid", "frame"],
        deps=[st.FeatureDep(Video, st.Lineage.expansion(["sample_uid"]))],
        fields=["pixels"],
    ),
):
    pass
"""


def test_several_id_columns_are_given_in_order_or_by_name(strata: Cli, tmp_path: Path) -> None:
    root = tmp_path / "frames"
    assert strata("init", str(root)).code == 0
    (root / "feats.py").write_text(FRAMES)
    text = (root / "strata.yml").read_text()
    (root / "strata.yml").write_text(text.replace("entrypoints: []", "entrypoints: [feats]"))
    project = Project.find(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["v1", "v2"]}))
        parents = store.resolve_update("frames").added.to_native()
        children = parents.join(pl.DataFrame({"frame": [0, 1]}), how="cross")
        store.write("frames", children.with_columns(strata_dv__pixels=pl.format("p{}", "frame")))
        store.write("video", pl.DataFrame({"sample_uid": [2], "strata_dv__frames": ["v2-new"]}))
    ordered = strata("-C", str(root), "--json", "why", "frames", "2,1")
    named = strata("-C", str(root), "--json", "why", "frames", "frame=1,sample_uid=2")
    assert ordered.code == named.code == 0, ordered.err + named.err
    assert ordered.json() == named.json()
    (sample,) = ordered.json()["samples"]
    assert sample["ids"] == {"sample_uid": 2, "frame": 1}
    assert sample["status"] == "stale"
    assert sample["lineage"][-1]["upstreams"] == [
        {"feature": "video", "lineage": "expansion", "ids": [{"sample_uid": 2}], "total": 1}
    ]
    one = strata("-C", str(root), "why", "frames", "2")
    assert one.code == 2
    assert one.err == (
        "strata: error: `2` gives 1 value(s), but the id columns are sample_uid, frame; give one value per id "
        "column, comma-separated in that order, or sample_uid=VALUE,frame=VALUE\n"
    )


PAGES = """
import strata as st


class Pages(st.Feature, spec=st.FeatureSpec("pages", id_columns=["site", "path"], fields=["html"])):
    pass
"""


def test_an_id_holding_a_comma_or_a_quote_is_given_in_csv_quotes(strata: Cli, make_project: MakeProject) -> None:
    """Ids are text, and a comma is a plain character of one (a path, a CSV key, `Doe, John`)."""
    root = make_project({"feats.py": PAGES})
    paths = ["/a,b.html", 'say "hi"', "/c"]
    frame = pl.DataFrame({"site": ["s1"] * 3, "path": paths, "html": ["<p>"] * 3})
    frame = frame.with_columns(strata_dv__html=pl.lit(sample_hash("md5", ["<p>"])))
    project = Project(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("pages", frame)
    for word in ('site=s1,path="/a,b.html"', 'path="/a,b.html",site=s1', 's1,"/a,b.html"'):
        found = strata("why", "pages", word)
        assert found.code == 0, (word, found.err)
        assert found.out.splitlines()[0] == 'pages site=s1,path="/a,b.html": present (store local)', word  # reads back
    quoted = strata("--json", "why", "pages", 's1,"say ""hi"""', 'site="s1",path=/c')
    assert quoted.code == 0, quoted.err
    assert [s["ids"] for s in quoted.json()["samples"]] == [
        {"site": "s1", "path": 'say "hi"'},
        {"site": "s1", "path": "/c"},
    ]
    bare = strata("why", "pages", "site=s1,path=/a,b.html")
    assert bare.code == 2
    assert bare.err == (
        "strata: error: cannot read `site=s1,path=/a,b.html` as ids; give them as site=VALUE,path=VALUE "
        '(a value holding a comma or a quote in double quotes: path="/a,b.html", "" for a quote in it)\n'
    )
    twice = strata("why", "pages", "site=s1,site=s2,path=/c")
    assert twice.code == 2
    assert twice.err == "strata: error: `site=s1,site=s2,path=/c` names `site` twice; name each id column once\n"
    open_quote = strata("why", "pages", 's1,"/a')
    assert open_quote.code == 2
    assert open_quote.err.startswith('strata: error: `s1,"/a` has a quote that is not closed; ')


@given(hs.lists(hs.text(hs.characters(codec="utf-8")), min_size=2, max_size=3), hs.booleans())
def test_any_text_ids_quoted_csv_style_read_back(values: list[str], named: bool) -> None:
    """Every value, quoted the way the help says (double quotes, `""` for a quote), reads back unchanged."""
    columns = [f"c{i}" for i in range(len(values))]
    quoted = ['"' + v.replace('"', '""') + '"' for v in values]
    word = ",".join(f"{c}={q}" for c, q in zip(columns, quoted, strict=True)) if named else ",".join(quoted)
    assert parse_ids([word], columns) == [dict(zip(columns, values, strict=True))]


def test_an_id_word_reads_back_as_the_same_sample() -> None:
    """What `why` prints of a sample can be pasted back: values with commas, quotes or `=` are quoted."""
    from strata.views.why import id_word

    for ids in ({"site": "a,b", "path": "/boom"}, {"site": 'say "hi"', "path": "k=v"}, {"site": "3", "path": ""}):
        for named in (True, False):
            assert parse_ids([id_word(ids, named=named)], ["site", "path"]) == [ids], (ids, named)
    assert id_word({"site": "a,b", "path": "/boom"}) == 'site="a,b",path=/boom'


def test_a_sample_whose_build_failed_names_the_error_and_since_when(strata: Cli, make_project: MakeProject) -> None:
    """A stale sample the last build failed on: `why` says so, as the page's build errors and render do."""
    from tests.cli.test_graph_render import FEATURES, write_articles

    root = make_project({"feats.py": FEATURES})
    write_articles(root)
    assert strata("build", "--workers", "1").code == 0
    write_articles(root, bodies={7: "boom", 3: "fine"})
    assert strata("build", "--workers", "1").code != 0  # clean 7 fails
    lines = strata("why", "clean", "7").out.splitlines()
    assert lines[0] == "clean id=7: stale (store local)"
    failed = [line for line in lines if "its last build failed" in line]
    assert len(failed) == 1, lines
    assert re.fullmatch(
        r"    <- its last build failed \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\): .*cannot clean a body that says boom.*",
        failed[0],
    )
    data = strata("--json", "why", "clean", "7", "3", "7").json()
    assert [s["ids"] for s in data["samples"]] == [{"id": 7}, {"id": 3}]  # asked twice, answered once
    assert [c["kind"] for c in data["samples"][1]["lineage"][-1]["causes"]] == []  # 3 was built: no failure


def test_an_aggregation_of_many_children_says_how_many_it_followed() -> None:
    import strata as st
    from strata.cli.why_cmd import render
    from tests.stores.graphs import lineage_graph
    from tests.stores.test_why import children

    with st.InMemoryStore(graph=lineage_graph()) as store:
        store.write("video", pl.DataFrame({"sample_uid": [1], "strata_dv__frames": ["v1"]}))
        store.write("frames", children(store.resolve_update("frames").added.to_native(), list(range(60))))
        store.write("summary", store.resolve_update("summary").added.to_native())
        lines = render(st.why(store, "summary", 1)).splitlines()
    assert "    (followed 50 of the 60 samples of frames, those behind a change first)" in lines
    assert sum(line.startswith("  frames ") for line in lines) == 50


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
def test_a_store_path_under_a_file_is_one_line_not_an_empty_store(
    strata: Cli, make_project: MakeProject, kind: str
) -> None:
    root = make_project(
        {"feats.py": PAGES}, extra=f"  store: gone\nstores:\n  gone: {{type: {kind}, path: notes.txt/x.db}}\n"
    )
    (root / "notes.txt").write_text("a file, not a directory\n")
    line = (
        "strata: error: cannot open store `gone`: "
        f"{root / 'notes.txt'} is a file, so nothing can be at {root / 'notes.txt' / 'x.db'}; "
        "give the store a path in a directory (strata.yml)\n"
    )
    for args in (["status"], ["why", "pages", "s1,/a"], ["build"], ["graph", "render", "--format", "text"]):
        done = strata(*args)
        assert (done.code, done.err) == (2, line), args
    assert (root / "notes.txt").read_text() == "a file, not a directory\n"
