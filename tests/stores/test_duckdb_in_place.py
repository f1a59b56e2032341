"""The DuckDB store's in-place write (`write_changed_from`): what target-strata loads through."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from strata.errors import DefinitionError, WriteError
from strata.stores.duckdb.store import DuckDBStore
from tests.stores.test_conformance import graph_of, roots


def stage(store: DuckDBStore, frame: pl.DataFrame) -> str:
    """Put ``frame`` in a temp table of the store's own connection; return its quoted name."""
    store.con.register("incoming", frame.to_arrow())
    store.con.execute('CREATE OR REPLACE TEMP TABLE "staged" AS SELECT * FROM incoming')
    store.con.unregister("incoming")
    return '"staged"'


def test_rows_already_in_duckdb_are_written_like_write_changed(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with DuckDBStore(path, graph=graph_of()) as store:
        first = roots(5).with_columns(pl.lit("x").alias("note"))
        assert store.write_changed_from("video", stage(store, first)) == {"added": 5, "changed": 0, "unchanged": 0}
        batch = roots(8, audio={1: "new"}).filter(pl.col("sample_uid").is_in([0, 1, 2, 7]))
        batch = batch.with_columns(pl.lit("y").alias("note"))
        counts = store.write_changed_from("video", stage(store, batch), checked=True)
        assert counts == {"added": 1, "changed": 1, "unchanged": 2}
    with DuckDBStore(path, graph=graph_of()) as store:  # committed: another open sees it
        live = store.read("video").sort("sample_uid")
        assert live["sample_uid"].to_list() == [0, 1, 2, 3, 4, 7]
        assert live["note"].to_list() == ["x", "y", "x", "x", "x", "y"]
        assert len(store.read("video", feature_version="all")) == 7
        assert len(store.resolve_update("transcript").added) == 6


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (pl.concat([roots(2), roots(2)]), "2 repeated ids"),
        (roots(2).with_columns(pl.lit(None, pl.String).alias("strata_dv__audio")), "nulls in data-version column"),
        (roots(2).drop("strata_dv__frames"), "lack data-version column"),
        (roots(2).drop("sample_uid"), "lack id column"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(tmp_path: Path, frame: pl.DataFrame, error: str) -> None:
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        with pytest.raises(WriteError, match=error):
            store.write_changed_from("video", stage(store, frame))
        assert not store.has_feature("video")
        with pytest.raises(DefinitionError, match="write_changed is for root features"):
            store.write_changed_from("transcript", stage(store, roots(1)))
