"""The hand-off to a bigger engine: a graph developed on DuckDB moves to ClickHouse with ``strata metadata copy``."""

from __future__ import annotations

import polars as pl

import strata as st
from strata.features.project import load_graph, make_store
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.cli.test_metadata_cmds import GRAPH, HOSTILE, fill, videos
from tests.helpers import Cli

STORES = """
stores:
  dev: {type: duckdb, path: dev.duckdb}
  ch: {type: clickhouse, path: ch}
"""


def increments(store: st.MetadataStore, key: str) -> dict[str, list[str]]:
    inc = store.resolve_update(key)
    parts = {}
    for name in ("added", "changed", "removed"):
        frame = getattr(inc, name).to_native()
        parts[name] = sorted(map(repr, frame.select(sorted(frame.columns)).rows()))
    return parts


def test_a_graph_moved_from_duckdb_to_clickhouse_resolves_the_same_increments(
    strata: Cli, make_project: MakeProject
) -> None:
    root = make_project({"feats/graph.py": GRAPH}, extra=STORES)

    def use(name: str) -> st.MetadataStore:
        project = Project.find(root)
        return make_store(project, name, graph=load_graph(project))

    with use("dev") as dev:
        fill(dev, 4)
        fill(dev, 4, s1="changed")
        children = increments(dev, "frames")
        dev.write(
            "frames", dev.resolve_update("frames").added.to_native().join(pl.DataFrame({"frame": [0, 1]}), how="cross")
        )
    result = strata("metadata", "copy", "--from", "dev", "--to", "ch", "--json")
    assert result.code == 0, result.err
    assert result.json()["copied"]["video"] == 5
    assert children["added"]
    with use("dev") as dev, use("ch") as ch:
        assert ch.read("video")[HOSTILE].sort().to_list() == dev.read("video")[HOSTILE].sort().to_list()
        for key in ("transcript", "frames"):
            assert increments(ch, key) == increments(dev, key), key
        for store in (dev, ch):  # the same change on both: a partial change, a new sample, a removed one
            store.write_changed("video", videos(5, s2="again").filter(pl.col("sample_uid") != 0))
            store.delete("video", pl.DataFrame({"sample_uid": [0]}))
        transcript = increments(dev, "transcript")
        assert all(transcript[part] for part in ("added", "changed", "removed"))
        assert increments(ch, "transcript") == transcript
        assert increments(ch, "frames") == increments(dev, "frames")
