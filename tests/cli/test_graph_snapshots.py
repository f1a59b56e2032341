"""``strata graph push | history`` on a project with DuckDB stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

import strata as st
from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.helpers import Cli

GRAPH = """
import strata as st

class Video(st.Feature, spec=st.FeatureSpec("video", fields=[st.FieldSpec("audio", "{audio}"), "frames"])):
    pass

class Transcript(
    st.Feature,
    spec=st.FeatureSpec("transcript", deps=[Video], fields=[st.FieldSpec("text", deps=[st.FieldDep(Video, ["audio"])])]),
):
    pass
"""
STORES = """
  store: prod
stores:
  prod: {type: duckdb, path: prod.duckdb}
  dev: {type: duckdb, path: dev.duckdb, fallbacks: [prod]}
"""


@pytest.fixture
def root(make_project: MakeProject) -> Path:
    return make_project({"feats/graph.py": GRAPH.replace("{audio}", "1")}, extra=STORES)


def versions(root: Path, store: str = "prod") -> list[str]:
    """The snapshot versions pushed to ``store``, newest first (read through the Python API)."""
    project = Project.find(root)
    with make_store(project, store, graph=load_graph(project), read_only=True) as opened:
        return [s.version for s in opened.snapshots()]


def write_definitions(root: Path, text: str) -> None:
    """Make ``text`` the project's feature module, as a checkout of another commit would.

    The module is forgotten so the next command imports it again; give a text of another length
    than the last, so a cached bytecode file written within the same second is never taken for it.
    """
    (root / "feats" / "graph.py").write_text(text, encoding="utf-8")
    for name in [m for m in sys.modules if m == "feats" or m.startswith("feats.")]:
        del sys.modules[name]


def change_code(root: Path, audio: str) -> None:
    """Give ``video.audio`` another code version, as an edit between two CD runs would."""
    write_definitions(root, GRAPH.replace("{audio}", audio))


def current_version(root: Path) -> str:
    return load_graph(Project.find(root)).snapshot_version


def test_push_twice_records_one_snapshot_and_a_code_change_another(strata: Cli, root: Path) -> None:
    first = current_version(root)
    pushed = strata("graph", "push", "--tag", "commit=abc", "--tag", "ci=yes")
    assert pushed.code == 0, pushed.err
    assert pushed.out.strip() == f"pushed snapshot {first} (2 features) to prod"
    again = strata("graph", "push")
    assert again.code == 0, again.err
    assert again.out.strip() == f"snapshot {first} is already the latest in prod; nothing pushed"
    assert versions(root) == [first]

    change_code(root, audio="10")
    second = current_version(root)
    assert second != first
    result = strata("--json", "graph", "push")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["added"] is True
    assert data["version"] == second
    assert data["store"] == "prod"
    assert data["features"] == 2
    assert versions(root) == [second, first]

    history = strata("graph", "history")
    assert history.code == 0, history.err
    lines = history.out.strip().splitlines()
    assert lines[0].split() == ["version", "pushed", "at", "features", "tags"]
    assert lines[1].startswith(second)
    assert lines[2].startswith(first)
    assert lines[2].rstrip().endswith("ci=yes, commit=abc")
    listed = json.loads(strata("graph", "history", "--json").out)
    assert [s["version"] for s in listed] == [second, first]
    assert listed[1]["tags"] == {"ci": "yes", "commit": "abc"}
    assert listed[1]["features"] == 2
    assert listed[0]["pushed_at"] > listed[1]["pushed_at"]


def test_history_of_a_store_never_pushed_to(strata: Cli, root: Path) -> None:
    result = strata("graph", "history", "--store", "dev")
    assert result.code == 0, result.err
    assert result.out.strip() == "no snapshots in dev (push one with `strata graph push`)"
    assert json.loads(strata("graph", "history", "--store", "dev", "--json").out) == []
    assert not (root / "dev.duckdb").exists()


def test_a_chain_pushes_to_its_first_store_only(strata: Cli, root: Path) -> None:
    result = strata("graph", "push", "--store", "dev")
    assert result.code == 0, result.err
    assert versions(root, "dev") == [current_version(root)]
    assert versions(root, "prod") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "nope"], "no store named `nope`"),
        (["--tag", "commit"], "--tag `commit` is not KEY=VALUE"),
        (["--tag", "=abc"], "--tag `=abc` is not KEY=VALUE"),
        (["--tag", "a=1", "--tag", "a=2"], "--tag `a` is given twice"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(strata: Cli, root: Path, args: list[str], message: str) -> None:
    result = strata("graph", "push", *args)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert not (root / "prod.duckdb").exists()


def project_with_prod(make_project: MakeProject, read_only: str) -> Path:
    """A project whose one store, ``prod``, is declared with ``read_only: <read_only>``."""
    extra = f"""
      store: prod
    stores:
      prod: {{type: duckdb, path: prod.duckdb, read_only: {read_only}}}
    """
    return make_project({"feats/graph.py": GRAPH.replace("{audio}", "1")}, extra=extra)


def test_a_read_only_store_refuses_a_push_in_one_line(strata: Cli, make_project: MakeProject) -> None:
    root = project_with_prod(make_project, "true")
    result = strata("graph", "push", "--tag", "commit=abc")
    assert result.code == 2
    assert result.err.strip().endswith(
        "store `prod` is read-only (read_only: true in strata.yml), so no snapshot can be pushed to it; "
        "push to a writable store (--store NAME)"
    )
    assert len(result.err.strip().splitlines()) == 1
    assert not (root / "prod.duckdb").exists()


def test_read_only_must_be_true_or_false(strata: Cli, make_project: MakeProject) -> None:
    project_with_prod(make_project, "maybe")
    result = strata("graph", "history")
    assert result.code == 2
    assert "read_only `maybe` is not true or false" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_a_read_only_store_refuses_every_write_naming_itself(strata: Cli, make_project: MakeProject) -> None:
    """``read_only: true`` holds for deletes too: one line naming the store, its rows untouched."""
    root = project_with_prod(make_project, "true")
    graph = load_graph(Project.find(root))
    with st.DuckDBStore(root / "prod.duckdb", graph=graph) as store:
        store.write(
            "video",
            pl.DataFrame({"sample_uid": [1, 2], "strata_dv__audio": ["a", "b"], "strata_dv__frames": ["c", "d"]}),
        )
    result = strata("metadata", "delete", "video", "--id", "1")
    assert result.code == 2
    assert result.err.strip().endswith(
        "store `prod` is open read-only, so nothing can be written to it; "
        "write through a store opened for writing (not read_only)"
    )
    with st.DuckDBStore(root / "prod.duckdb", graph=graph, read_only=True) as store:
        assert sorted(store.read("video")["sample_uid"].to_list()) == [1, 2]


def test_history_needs_no_importable_code(strata: Cli, root: Path) -> None:
    """What was pushed stays listable when the code of today no longer imports (a broken checkout)."""
    assert strata("graph", "push").code == 0
    pushed = current_version(root)
    (root / "feats" / "graph.py").write_text("raise RuntimeError('broken')\n", encoding="utf-8")
    sys.modules.pop("feats.graph", None)
    result = strata("graph", "history", "--json")
    assert result.code == 0, result.err
    assert [s["version"] for s in json.loads(result.out)] == [pushed]
