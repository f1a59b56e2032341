"""``strata build`` whose compute now gives a column another type than stored: exit 2, one line, nothing written.

Every store a project can keep (an in-memory store holds nothing from one command to the next, so
it has no stored types); ``tests/stores/test_stored_types.py`` checks every store through the API.
"""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Iterator

import polars as pl
import pytest

import strata as st
from strata.features.project import load_graph, make_store
from strata.features.versions import sample_hash
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.helpers import Cli, run_strata
from tests.servers import postgres_server  # noqa: F401 - the fixture store_config uses
from tests.stores.test_stored_types import everything

FEATURES = """
import polars as pl
import strata as st


class Source(st.Feature, spec=st.FeatureSpec("source", fields=["body"])):
    pass


class Clean(st.Feature, spec=st.FeatureSpec("clean", deps=[Source], fields=["text"])):
    def compute(self, inputs):
        return inputs[Source].select("sample_uid", pl.col("body").alias("text"), {length})
"""
NUMBER = 'pl.col("body").str.len_chars().cast(pl.Int64).alias("length")'
TEXT = 'pl.lit("long").alias("length")'


@pytest.fixture(params=["duckdb", "sqlite", "postgres", "clickhouse"])
def store_config(request: pytest.FixtureRequest) -> Iterator[str]:
    """The project's store."""
    kind = request.param
    if kind != "postgres":
        yield f"{{type: {kind}, path: meta.{kind}}}"
        return
    server = request.getfixturevalue("postgres_server")
    schema = f"t_{secrets.token_hex(6)}"
    yield f"{{type: postgres, uri: '{server.dsn()}', schema: {schema}}}"
    server.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def sources(store: st.MetadataStore, bodies: list[str]) -> None:
    frame = pl.DataFrame({"sample_uid": list(range(len(bodies))), "body": bodies})
    store.write_changed("source", frame.with_columns(strata_dv__body=pl.col("body").map_elements(_hash, pl.String)))


def _hash(body: str) -> str:
    return sample_hash("md5", [body])


def test_a_build_whose_compute_changed_a_column_s_type_exits_2_in_one_line(
    strata: Cli, make_project: MakeProject, store_config: str
) -> None:
    root = make_project(
        {"feats.py": FEATURES.format(length=NUMBER)}, extra=f"  store: team\nstores:\n  team: {store_config}\n"
    )
    project = Project.find(root)
    with make_store(project, graph=load_graph(project)) as store:
        sources(store, ["one", "three"])
    built = strata("build")
    assert built.code == 0, built.err
    with make_store(project, graph=load_graph(project), read_only=True) as store:
        before = everything(store, "clean")
        where = store.describe()
    (root / "feats.py").write_text(textwrap.dedent(FEATURES.format(length=TEXT)))  # compute now gives text
    with make_store(project, graph=load_graph(project)) as store:
        sources(store, ["one", "three", "seven"])
    refused = run_strata("build", cwd=root)  # a process of its own imports the changed module
    assert refused.code == 2, refused.err
    assert refused.err.startswith(
        f"strata: error: cannot write feature clean to {where}: column `length` holds String, stored as Int64; "
    ), refused.err
    assert len(refused.err.strip().splitlines()) == 1, refused.err
    assert "Traceback" not in refused.err
    with make_store(project, graph=load_graph(project), read_only=True) as store:
        assert everything(store, "clean") == before
