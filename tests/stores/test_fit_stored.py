"""Review: values ``checks.fit_stored`` lets through although the stored type cannot hold them as they are.

``fit_stored`` promises to refuse "a column whose values the stored type cannot hold as they are"
(a float with a fraction for integers is refused); these values lose something silently instead.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import strata as st
from strata.errors import WriteError
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import graph_of, roots

LOSSY: dict[str, tuple[pl.Expr, pl.Expr]] = {
    # case: the stored value, a later value its stored type cannot hold as it is
    "a decimal with a fraction where integers are stored": (
        pl.lit(1, pl.Int64),
        pl.lit(Decimal("2.50"), pl.Decimal(10, 2)),
    ),
    "a datetime with a time of day where dates are stored": (
        pl.lit(dt.date(2024, 1, 1)),
        pl.datetime(2024, 1, 2, 12, 30),
    ),
    "an integer beyond 2**53 where floats are stored": (pl.lit(1.5), pl.lit(2**53 + 1, pl.Int64)),
    "an integer other than 0 and 1 where booleans are stored": (pl.lit(value=True), pl.lit(2, pl.Int64)),
    "a float with a fraction where booleans are stored": (pl.lit(value=True), pl.lit(0.5)),
    "a float beyond Float32 where Float32 is stored": (pl.lit(1.5, pl.Float32), pl.lit(1e300)),
    "a decimal with more digits than the stored scale": (
        pl.lit(Decimal("1.25"), pl.Decimal(10, 2)),
        pl.lit(Decimal("2.505"), pl.Decimal(10, 3)),
    ),
}


def written_or_refused(store: st.MetadataStore, frame: object, position: int) -> object:
    """``refused`` when ``store`` refuses to write ``frame`` (a WriteError), else the ``note`` it stored at ``position``."""
    try:
        store.write("video", frame)
    except WriteError:
        return "refused"
    return store.read("video").to_native().sort("sample_uid")["note"].to_list()[position]


@pytest.mark.parametrize("case", list(LOSSY))
def test_a_value_the_stored_type_cannot_hold_as_it_is_is_refused(store_factory: StoreFactory, case: str) -> None:
    stored, later = LOSSY[case]
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(stored.alias("note")))
        assert written_or_refused(store, roots(2).tail(1).with_columns(later.alias("note")), 1) == "refused"


def test_a_fraction_is_refused_in_a_batch_shaped_as_one_written_before(store_factory: StoreFactory) -> None:
    """DuckDB checks a batch shape once per connection; its INSERT rounds a float into an integer column."""
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(note=pl.lit(1, pl.Int64)))
        store.write("video", roots(2).tail(1).with_columns(note=pl.lit(2.0)))  # a whole float: taken as 2
        assert written_or_refused(store, roots(3).tail(1).with_columns(note=pl.lit(2.5)), 2) == "refused"


def test_write_changed_with_integer_ids_where_text_ids_are_stored_is_taken_alike_by_every_store(
    store_factory: StoreFactory,
) -> None:
    """``write`` takes a number where text is stored (its text); ``write_changed`` compares ids with the live rows first.

    ``MetadataStore._fit_ids`` leaves ids stored as text as they are (``fit_stored`` skips text columns), so
    the comparison joins integers with text: a raw Polars SchemaError in every store but DuckDB, which converts.
    """
    with store_factory(graph=graph_of()) as store:
        store.write_changed("video", roots(2).with_columns(pl.col("sample_uid").cast(pl.String)))
        assert store.write_changed("video", roots(3)) == {"added": 1, "changed": 0, "unchanged": 2}
        assert sorted(store.read("video").to_native()["sample_uid"].to_list()) == ["0", "1", "2"]


def test_a_relation_with_a_fraction_where_integers_are_stored_is_refused_as_a_frame_is(tmp_path: Path) -> None:
    """DuckDB's ``INSERT`` rounds a DOUBLE into a BIGINT column; only its ConversionException is turned into a refusal."""
    from strata.stores.duckdb.store import DuckDBStore

    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(note=pl.lit(1, pl.Int64)))
        with pytest.raises(WriteError, match="column `note` holds Float64, stored as Int64"):
            store.write("video", roots(2).tail(1).with_columns(note=pl.lit(2.5)))
        relation = store.con.sql(
            "SELECT 1::BIGINT AS sample_uid, 'a1' AS strata_dv__audio, 'f1' AS strata_dv__frames, 2.5::DOUBLE AS note"
        )
        assert written_or_refused(store, relation, 1) == "refused"


RELATION_LOSSY = {
    # case: the stored value, a later value (SQL) its stored type cannot hold as it is
    "a double with a fraction where integers are stored": (pl.lit(1, pl.Int64), "2.5::DOUBLE"),
    "a timestamp with a time of day where dates are stored": (
        pl.lit(dt.date(2024, 1, 1)),
        "TIMESTAMP '2024-01-02 12:30:00'",
    ),
    "an integer beyond 2**53 where floats are stored": (pl.lit(1.5), f"{2**53 + 1}::BIGINT"),
    "an integer other than 0 and 1 where booleans are stored": (pl.lit(value=True), "2::BIGINT"),
    "a decimal with more digits than the stored scale": (
        pl.lit(Decimal("1.25"), pl.Decimal(10, 2)),
        "2.505::DECIMAL(10, 3)",
    ),
}


def duckdb_rows(note: str) -> str:
    """The SQL of one root sample (the second of ``roots``) whose ``note`` is ``note``."""
    return f"SELECT 1::BIGINT AS sample_uid, 'a1' AS strata_dv__audio, 'f1' AS strata_dv__frames, {note} AS note"


@pytest.mark.parametrize("case", list(RELATION_LOSSY))
def test_a_relation_value_the_stored_type_cannot_hold_as_it_is_is_refused(tmp_path: Path, case: str) -> None:
    """A relation's rows are checked in SQL before the ``INSERT``, which would round or cut them."""
    from strata.stores.duckdb.store import DuckDBStore

    stored, later = RELATION_LOSSY[case]
    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(stored.alias("note")))
        with pytest.raises(WriteError, match=r"column `note` holds .*; .*nothing was written"):
            store.write("video", store.con.sql(duckdb_rows(later)))
        assert store.read("video").to_native()["sample_uid"].to_list() == [0]


def test_a_relation_of_values_held_as_they_are_is_taken(tmp_path: Path) -> None:
    """A whole double for an integer column, a midnight timestamp for a date column: the check lets them in."""
    from strata.stores.duckdb.store import DuckDBStore

    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(note=pl.lit(1, pl.Int64), day=pl.lit(dt.date(2024, 1, 1))))
        rows = duckdb_rows("2.0::DOUBLE") + ", TIMESTAMP '2024-01-02 00:00:00' AS day"
        store.write("video", store.con.sql(rows))
        read = store.read("video").to_native().sort("sample_uid")
        assert read["note"].to_list() == [1, 2]
        assert read["day"].to_list() == [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]


def test_rows_of_target_strata_with_a_fraction_where_integers_are_stored_are_refused(tmp_path: Path) -> None:
    """``write_changed_from`` (target-strata's path) writes a view of the connection: checked as a relation is."""
    from strata.stores.duckdb.store import DuckDBStore

    with DuckDBStore(tmp_path / "m.duckdb", graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(note=pl.lit(1, pl.Int64)))
        store.con.sql(f"CREATE TEMP VIEW incoming AS {duckdb_rows('2.5::DOUBLE')}")
        with pytest.raises(WriteError, match="column `note` holds Float64, stored as Int64"):
            store.write_changed_from("video", '"incoming"')
        assert store.read("video").to_native()["note"].to_list() == [1]
