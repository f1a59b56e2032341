"""Chains and environments in strata.yml: `fallbacks:` on a store, an environment choosing and changing stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl
import pytest

from strata.errors import ProjectFileError
from strata.features.project import load_graph, make_store, store_config, store_configs
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.helpers import Cli

GRAPH = """
    import polars as pl
    import strata as st

    class Raw(st.Feature, spec=st.FeatureSpec("raw", fields=["x"])):
        pass

    class Double(st.Feature, spec=st.FeatureSpec(
            "double", deps=[Raw], fields=[st.FieldSpec("y", deps=[st.FieldDep(Raw, ["x"])])])):
        def compute(self, inputs):
            return inputs["raw"].select("sample_uid", (pl.col("x") * 2).alias("y"))
"""

STORES = """\
  store: prod
stores:
  prod: {type: duckdb, path: prod.duckdb}
  dev: {type: duckdb, path: dev.duckdb, fallbacks: [prod]}
environments:
  - name: dev
    features: {store: dev}
  - name: elsewhere
    stores:
      prod: {path: other/prod.duckdb}
      scratch: {type: memory}
  - name: broken
    stores:
      prod: {replicas: 2}
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_environment_builds_into_a_dev_store_that_reads_through_to_prod(
    strata: Cli, make_project: MakeProject
) -> None:
    root = make_project({"feats.py": GRAPH}, extra=STORES)
    project = Project.find(root, environ={})
    prod = make_store(project, graph=load_graph(project))
    with prod:
        prod.write("raw", pl.DataFrame({"sample_uid": [1, 2], "x": [10, 20], "strata_dv__x": ["a", "b"]}))
    before = digest(root / "prod.duckdb")
    built = strata("-e", "dev", "build")
    assert built.code == 0, built.err
    assert digest(root / "prod.duckdb") == before
    with duckdb.connect(str(root / "dev.duckdb"), read_only=True) as con:
        assert con.sql("SELECT sample_uid, y FROM double ORDER BY 1").fetchall() == [(1, 20), (2, 40)]
        assert con.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'raw'").fetchall() == [(0,)]
    assert strata("-e", "dev", "status", "--assert-in-sync").code == 0
    assert strata("status", "--assert-in-sync").code != 0  # prod itself has no `double` yet


def test_an_environment_changes_a_stores_settings(tmp_path: Path, make_project: MakeProject) -> None:
    root = make_project({"feats.py": GRAPH}, extra=STORES)
    assert store_config(Project.find(root, environ={})).path == root / "prod.duckdb"
    moved = Project.find(root, environ={"STRATA_ENVIRONMENT": "elsewhere"})
    assert store_config(moved).path == root / "other" / "prod.duckdb"
    assert store_config(moved).type == "duckdb"
    assert store_config(Project.find(root, environ={"STRATA_ENVIRONMENT": "dev"})).name == "dev"
    assert store_config(moved, "scratch").type == "memory"
    assert "scratch" not in store_configs(Project.find(root, environ={}))
    broken = Project.find(root, environ={"STRATA_ENVIRONMENT": "broken"})
    with pytest.raises(ProjectFileError, match=r"^strata\.yml:17: unknown key `replicas` for a duckdb store `prod`"):
        store_configs(broken)


def test_a_fallback_that_is_not_a_store_is_one_line_exit_2(strata: Cli, make_project: MakeProject) -> None:
    make_project({"feats.py": GRAPH}, extra="stores:\n  dev: {type: memory, fallbacks: [prod]}\n")
    result = strata("build")
    assert result.code == 2
    assert result.err == (
        "strata: error: strata.yml:5: store `dev` falls back on `prod`, which is not a store; "
        "stores in strata.yml: dev\n"
    )


def test_a_cycle_of_stores_is_refused_when_opened_naming_them(strata: Cli, make_project: MakeProject) -> None:
    extra = "  store: a\nstores:\n  a: {type: memory, fallbacks: [b]}\n  b: {type: memory, fallbacks: [a]}\n"
    make_project({"feats.py": GRAPH}, extra=extra)
    result = strata("build")
    assert result.code == 2
    assert result.err == (
        "strata: error: stores `a` and `b` fall back on each other in a cycle (a -> b -> a); "
        "a store's fallbacks must not lead back to it\n"
    )


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
def test_an_unreadable_fallback_file_is_named_in_one_line_not_the_store_that_reads_through(
    kind: str, strata: Cli, make_project: MakeProject
) -> None:
    extra = f"  store: dev\nstores:\n  prod: {{type: {kind}, path: prod.db}}\n"
    extra += "  dev: {type: duckdb, path: dev.duckdb, fallbacks: [prod]}\n"
    root = make_project({"feats.py": GRAPH}, extra=extra)
    (root / "prod.db").write_bytes(b"not a database " * 100)
    result = strata("metadata", "compact", "--keep", "1")
    assert result.code == 1, result.err
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("strata: error: cannot open store `prod`, a fallback of `dev`"), result.err
    assert "dev.duckdb" not in result.err


def test_a_build_into_a_sqlite_store_from_the_command_line(strata: Cli, make_project: MakeProject) -> None:
    import sqlite3

    extra = "  store: team\nstores:\n  team: {type: sqlite, path: data/team.sqlite}\n"
    root = make_project({"feats.py": GRAPH}, extra=extra)
    project = Project.find(root, environ={})
    with make_store(project, graph=load_graph(project)) as team:
        team.write("raw", pl.DataFrame({"sample_uid": [1, 2], "x": [10, 20], "strata_dv__x": ["a", "b"]}))
    built = strata("build")
    assert built.code == 0, built.err
    with sqlite3.connect(root / "data" / "team.sqlite") as con:
        assert con.execute("SELECT sample_uid, y FROM double ORDER BY 1").fetchall() == [(1, 20), (2, 40)]
    con.close()
    assert strata("status", "--assert-in-sync").code == 0


def test_why_in_a_dev_store_with_no_file_yet_reads_through_and_says_whose_row_it_shows(
    strata: Cli, make_project: MakeProject
) -> None:
    root = make_project({"feats.py": GRAPH}, extra=STORES)
    project = Project.find(root, environ={})
    with make_store(project, graph=load_graph(project)) as prod:
        prod.write("raw", pl.DataFrame({"sample_uid": [1, 2], "x": [10, 20], "strata_dv__x": ["a", "b"]}))
    assert strata("build").code == 0  # prod holds double too
    assert not (root / "dev.duckdb").exists()
    found = strata("why", "double", "1", "--store", "dev")
    assert found.code == 0, found.err
    lines = found.out.splitlines()
    assert lines[0] == "double sample_uid=1: to add (store dev)"  # dev computes its own on a build
    assert "row read from prod" in lines[1]  # raw, read through
    assert "row read from prod" in lines[3]
    assert lines[4] == (
        "    <- not computed in store `dev` yet: the row shown is prod's; a build computes `double` here, where it writes"
    )
    data = strata("--json", "why", "double", "1", "--store", "dev").json()
    raw, double = data["samples"][0]["lineage"]
    assert (raw["held_by"], double["held_by"]) == ("prod", "prod")
    assert [f["stale"] for f in double["fields"]] == [True]  # dev has no value yet: stored is prod's
    assert not (root / "dev.duckdb").exists()  # a read creates nothing
