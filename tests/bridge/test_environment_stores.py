"""One `strata run tap-jsonl target-strata features:build` per environment: `-e dev` builds into a dev store
that reads through to prod, `-e prod` writes prod; the environment that picks the tap's config picks the store.

A real tap from PyPI (tap-jsonl, in its own venv from uv's cache), target-strata and real DuckDB files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.helpers import run_strata, write_project

pytestmark = pytest.mark.network

PROJECT = """\
version: 1
project_id: chains
default_environment: prod
environments:
  - name: prod
  - name: dev
    features: {store: dev}
    config:
      plugins:
        extractors:
          - name: tap-jsonl
            config:
              path: ${STRATA_PROJECT_ROOT}/data/dev-users.jsonl
plugins:
  extractors:
    - name: tap-jsonl
      pip_url: tap-jsonl==0.3.1
      settings: [{name: path}, {name: stream_name}, {name: primary_keys, kind: array}]
      config:
        path: ${STRATA_PROJECT_ROOT}/data/users.jsonl
        stream_name: users
        primary_keys: [id]
  loaders:
    - name: target-strata
features:
  entrypoints: [feats]
  store: prod
stores:
  prod: {type: duckdb, path: prod.duckdb}
  dev: {type: duckdb, path: dev.duckdb, fallbacks: [prod]}
"""

FEATURES = '''\
import polars as pl
import strata as st


class Regions(st.Feature, spec=st.FeatureSpec("regions", id_columns=["id"], fields=["region"])):
    """A reference table written to prod alone."""


class Badge(st.Feature, spec=st.FeatureSpec(
        "badge", id_columns=["id"], deps=["users", Regions],
        fields=[st.FieldSpec("text", deps=[st.FieldDep("users", ["name"]), st.FieldDep(Regions, ["region"])])])):
    def compute(self, inputs):
        joined = inputs["users"].join(inputs["regions"], on="id")
        return joined.select("id", (pl.col("name") + "@" + pl.col("region")).alias("text"))
'''


def lines(*rows: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_dev_builds_into_its_store_reading_what_it_lacks_from_prod_and_prod_is_untouched(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    write_project(root, PROJECT)
    (root / "feats.py").write_text(FEATURES, encoding="utf-8")
    (root / "data").mkdir()
    (root / "data" / "users.jsonl").write_text(lines({"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}))
    (root / "data" / "dev-users.jsonl").write_text(lines({"id": 1, "name": "ANN"}, {"id": 2, "name": "bob"}))
    assert run_strata("install", cwd=root).code == 0

    done = run_strata("run", "tap-jsonl", "target-strata", cwd=root)  # prod learns the stream
    assert done.code == 0, done.err
    project = Project.find(root, environ={})
    with make_store(project, graph=load_graph(project)) as prod:
        prod.write(
            "regions", pl.DataFrame({"id": [1, 2], "region": ["north", "south"], "strata_dv__region": ["n", "s"]})
        )
    done = run_strata("-e", "prod", "run", "tap-jsonl", "target-strata", "features:build", cwd=root)
    assert done.code == 0, done.err
    assert rows(root / "prod.duckdb", "SELECT id, text FROM badge ORDER BY id") == [(1, "ann@north"), (2, "bob@south")]
    before = digest(root / "prod.duckdb")

    done = run_strata("-e", "dev", "run", "tap-jsonl", "target-strata", "features:build", cwd=root)
    assert done.code == 0, done.err
    assert digest(root / "prod.duckdb") == before
    assert rows(root / "prod.duckdb", "SELECT id, name FROM users ORDER BY id") == [(1, "ann"), (2, "bob")]
    dev = root / "dev.duckdb"
    assert rows(dev, "SELECT id, name FROM users ORDER BY id") == [(1, "ANN"), (2, "bob")]
    assert rows(dev, "SELECT id, text FROM badge ORDER BY id") == [(1, "ANN@north"), (2, "bob@south")]
    assert rows(dev, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'regions'") == [(0,)]  # read from prod

    status = run_strata("--json", "-e", "dev", "status", "--assert-in-sync", cwd=root)
    assert status.code == 0, status.err + status.out
