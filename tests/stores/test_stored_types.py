"""A batch whose columns do not fit the types its feature's columns are stored with: one line, nothing written.

Text in a number column, a struct where floats are stored, a fraction where integers are: every
store refuses the batch before anything is written, naming itself, the feature and the column,
through the Python API (``tests/cli/test_build_stored_types.py``: through ``strata build``). Values the stored
type holds as they are (text that is a number, a number where text is stored) are taken.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

import strata as st
from strata.errors import WriteError
from tests.stores.conftest import StoreFactory
from tests.stores.test_conformance import graph_of, roots

MISFITS: dict[str, tuple[str, pl.Expr, pl.Expr, str, str]] = {
    # case: column, stored value, later value, its type as named, the stored type as named
    "text in a number column": ("note", pl.lit(1, pl.Int64), pl.lit("x"), "String", "Int64"),
    "text in an id column": ("sample_uid", pl.col("sample_uid"), pl.lit("one"), "String", "Int64"),
    "a struct where floats are stored": ("score", pl.lit(1.5), pl.struct(a=pl.lit(1)), "Struct", "Float64"),
    "a fraction where integers are stored": ("note", pl.lit(1, pl.Int64), pl.lit(2.5), "Float64", "Int64"),
}


def everything(store: st.MetadataStore, key: str) -> list[tuple[Any, ...]]:
    """Every row of ``key``, history and tombstones included, in one order."""
    frame = store.read(key, feature_version="all", include_deleted=True).to_native()
    return sorted(frame.select(sorted(frame.columns)).rows(), key=repr)


@pytest.mark.parametrize("case", list(MISFITS))
def test_a_batch_its_stored_columns_cannot_take_is_one_line_and_nothing_is_written(
    store_factory: StoreFactory, case: str
) -> None:
    column, stored, later, holds, kept = MISFITS[case]
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(2).with_columns(stored.alias(column)))
        before = everything(store, "video")
        batch = roots(3).tail(1).with_columns(later.alias(column))
        with pytest.raises(WriteError) as refused:
            store.write("video", batch)
        message = str(refused.value)
        assert message.startswith(
            f"cannot write feature video to {store.describe()}: column `{column}` holds {holds}, stored as {kept}; "
        ), message
        assert message.endswith("nothing was written"), message
        assert "\n" not in message
        assert everything(store, "video") == before
        assert store.resolve_update("video", samples=roots(2)).is_empty


@pytest.mark.parametrize(
    ("stored", "later", "expected"),
    [
        (pl.lit(1, pl.Int64), pl.lit("7"), 7),  # text that is a number: that number
        (pl.lit("a"), pl.lit(5, pl.Int64), "5"),  # a number where text is stored: its text
        (pl.lit(1, pl.Int64), pl.lit(value=True), 1),
        (pl.lit(1, pl.Int64), pl.lit(3.0), 3),  # a whole float: that integer
    ],
)
def test_values_the_stored_type_holds_as_they_are_are_taken_alike_by_every_store(
    store_factory: StoreFactory, stored: pl.Expr, later: pl.Expr, expected: object
) -> None:
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(stored.alias("note")))
        store.write("video", roots(2).tail(1).with_columns(later.alias("note")))
        assert store.read("video").to_native().sort("sample_uid")["note"].to_list()[1] == expected


def test_text_refused_after_text_that_was_a_number_is_refused_in_the_same_words(store_factory: StoreFactory) -> None:
    """A batch shaped as one written before (DuckDB checks that shape once per connection) is refused alike."""
    with store_factory(graph=graph_of()) as store:
        store.write("video", roots(1).with_columns(note=pl.lit(1, pl.Int64)))
        store.write("video", roots(2).tail(1).with_columns(note=pl.lit("7")))
        before = everything(store, "video")
        with pytest.raises(WriteError) as refused:
            store.write("video", roots(3).tail(1).with_columns(note=pl.lit("x")))
        assert str(refused.value).startswith(
            f"cannot write feature video to {store.describe()}: column `note` holds String, stored as Int64; "
        ), refused.value
        assert everything(store, "video") == before


def test_write_changed_with_ids_the_stored_ones_cannot_take_is_one_line_and_nothing_is_written(
    store_factory: StoreFactory,
) -> None:
    """How ``target-strata`` loads: the ids are compared with the live rows first, so they are checked first."""
    with store_factory(graph=graph_of()) as store:
        store.write_changed("video", roots(2))
        before = everything(store, "video")
        with pytest.raises(WriteError) as refused:
            store.write_changed("video", roots(3).with_columns(pl.format("s{}", "sample_uid").alias("sample_uid")))
        assert str(refused.value).startswith(
            f"cannot write feature video to {store.describe()}: column `sample_uid` holds String, stored as Int64; "
        ), refused.value
        assert everything(store, "video") == before
        assert store.write_changed("video", roots(3).with_columns(pl.col("sample_uid").cast(pl.String))) == {
            "added": 1,
            "changed": 0,
            "unchanged": 2,
        }
