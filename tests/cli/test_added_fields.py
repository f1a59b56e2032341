"""``strata build`` after a field was added to a feature with stored rows (DuckDB project).

``tests/stores/test_added_fields.py`` checks every store through the API.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from strata.features.graph import FieldInput
from strata.features.keys import FeatureKey, FieldKey
from strata.features.project import load_graph, make_store
from strata.project.project import Project
from strata.resolve.plan import stored_code_version
from tests.cli.conftest import MakeProject
from tests.cli.test_graph_snapshots import write_definitions
from tests.helpers import Cli

GRAPH = """
import polars as pl
import strata as st

class Raw(st.Feature, spec=st.FeatureSpec("raw", fields=["x"])):
    pass

class Double(st.Feature, spec=st.FeatureSpec("double", deps=[Raw], fields=[{double_fields}])):
    def compute(self, inputs):
        return inputs["raw"].select("sample_uid", (pl.col("x") * 2).alias("y"){double_columns})

class Quad(st.Feature, spec=st.FeatureSpec(
        "quad", deps=[Double], fields=[st.FieldSpec("z", deps=[st.FieldDep(Double, [{quad_reads}])])])):
    def compute(self, inputs):
        return inputs["double"].select("sample_uid", (pl.col("y") * 2).alias("z"))
"""
Y = 'st.FieldSpec("y", deps=[st.FieldDep(Raw, ["x"])])'
W = 'st.FieldSpec("w", deps=[st.FieldDep(Raw, ["x"])])'
V1 = GRAPH.format(double_fields=Y, double_columns="", quad_reads='"y"')
V2 = GRAPH.format(double_fields=f"{Y}, {W}", double_columns=', (pl.col("x") + 1).alias("w")', quad_reads='"y", "w"')
X = FieldInput(FeatureKey("raw"), FieldKey("x"))
"""What ``double.w`` reads."""
STORES = """
  store: prod
stores:
  prod: {type: duckdb, path: prod.duckdb}
"""


def stale(root: Path) -> dict[str, dict[int, dict[str, str]]]:
    """Per computed feature, each changed sample's causes, as the code's graph resolves them."""
    project = Project.find(root)
    out = {}
    with make_store(project, graph=load_graph(project), read_only=True) as store:
        for key in ("double", "quad"):
            changed = store.resolve_update(key).changed.to_native()
            causes = [c for c in changed.columns if c.startswith("strata_cause__")]
            out[key] = {
                row["sample_uid"]: {c.removeprefix("strata_cause__"): row[c] for c in causes if row[c]}
                for row in changed.iter_rows(named=True)
            }
    return out


def test_a_build_computes_a_field_added_to_a_feature_with_stored_rows(strata: Cli, make_project: MakeProject) -> None:
    root = make_project({"feats/graph.py": V1}, extra=STORES)
    project = Project.find(root)
    with make_store(project, graph=load_graph(project)) as store:
        store.write("raw", pl.DataFrame({"sample_uid": [1, 2], "x": [10, 20], "strata_dv__x": ["a", "b"]}))
    assert strata("build").code == 0
    assert strata("graph", "push").code == 0
    write_definitions(root, V2)
    code = {1: {"z": "code"}, 2: {"z": "code"}}  # quad.z reads one more input: another definition
    assert stale(root) == {"double": {1: {"w": "code"}, 2: {"w": "code"}}, "quad": code}
    diff = strata("graph", "diff")
    assert diff.code == 0, diff.err
    assert "    + w  code_version 1, version " in diff.out
    assert "        + input double.w" in diff.out
    generated = strata("migrations", "generate", "--name", "add_w")
    assert generated.code == 0, generated.err
    assert "1 operation (0 reconcile, 1 recompute)" in generated.out
    applied = strata("migrations", "apply")
    assert applied.code == 0, applied.err
    built = strata("build")
    assert built.code == 0, built.err
    assert stale(root) == {"double": {}, "quad": {}}
    assert strata("status", "--assert-in-sync").code == 0
    with make_store(project, graph=load_graph(project), read_only=True) as store:
        double = store.read("double").to_native().sort("sample_uid")
        assert double["w"].to_list() == [11, 21]
        assert double["strata_cv__w"].to_list() == [stored_code_version("1", (X,))] * 2
        assert store.read("quad").to_native()["strata_in__double__w"].null_count() == 0
    write_definitions(root, V1)  # the field removed again: its stored columns stay, unread
    assert stale(root) == {"double": {}, "quad": code}  # quad.z reads one input fewer
    rebuilt = strata("build")
    assert rebuilt.code == 0, rebuilt.err
    assert strata("status", "--assert-in-sync").code == 0
