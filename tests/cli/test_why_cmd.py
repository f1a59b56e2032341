"""``strata why FEATURE ID...``: one sample's lineage and causes, from the reference example's DuckDB store."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from strata.features.project import load_graph, make_store
from strata.project.project import Project
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
        "embedding sample_uid=v003: up to date; upstream not in sync: transcript (store local)"
    )
    assert lines[1].startswith("  video sample_uid=v003 · present · written ")
    assert lines[4].startswith("  transcript sample_uid=v003 · stale · written ")
    assert lines[4].endswith(" · from video (identity)")
    assert re.fullmatch(r"    text  [0-9a-f]{12} -> [0-9a-f]{12}  code 1", lines[5])
    cause = r"          <- upstream field video.audio changed in `video` sample_uid=v003 \(changed\): \w{12} -> \w{12}"
    assert re.fullmatch(cause, lines[6])
    assert len(lines) == 7
    assert "up to date" in strata("why", "transcript", "sample_uid=v004").out.splitlines()[0]


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
