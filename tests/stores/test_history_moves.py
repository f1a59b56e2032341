"""Rows a write or a soft delete supersedes move to the history, exactly as the in-memory store moves them.

Random sequences of writes (re-written, re-added and new ids; an expansion's parents with
other, fewer or no children), soft and hard deletes (by ids or by an expansion's parent ids)
leave the DuckDB store's latest and history rows equal to the in-memory store's, but for the
time a write stamps. Sequence numbers are compared by their order: a DuckDB delete that finds
nothing still takes a number, which no row carries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from polars.testing import assert_frame_equal

import strata as st
from tests.stores.graphs import lineage_graph

PARENTS = 6

video_write = hs.tuples(
    hs.just("video"), hs.sets(hs.integers(0, PARENTS - 1), min_size=1), hs.sampled_from(["a", "b", "c"])
)
frames_write = hs.tuples(
    hs.just("frames"),
    hs.dictionaries(hs.integers(0, PARENTS - 1), hs.sets(hs.integers(0, 3)), min_size=1),  # no children: {}
    hs.sampled_from(["p", "q"]),
)
deletes = hs.tuples(
    hs.just("delete"),
    hs.sampled_from(["video", "frames", "frames by parent"]),
    hs.lists(hs.tuples(hs.integers(0, PARENTS), hs.integers(0, 3)), max_size=5),
    hs.booleans(),
)
operations = hs.lists(hs.one_of(video_write, frames_write, deletes), min_size=1, max_size=12)


def stored(store: st.MetadataStore, key: str) -> pl.DataFrame:
    """Every row of ``key`` (history, tombstones, live), its sequence number as its rank among the table's."""
    frame: pl.DataFrame = store.read(key, feature_version="all", include_deleted=True).to_native()
    frame = frame.drop("strata_written_at").with_columns(pl.col("strata_seq").rank("dense").cast(pl.Int64))
    return frame.select(sorted(frame.columns)).sort(sorted(frame.columns), nulls_last=True)


def latest(store: st.MetadataStore, key: str) -> list[tuple[Any, ...]]:
    """The latest rows of ``key``, tombstones included, as sorted (ids, deleted) tuples."""
    frame: pl.DataFrame = store.read(key, include_deleted=True).to_native()
    ids = [c for c in ("sample_uid", "frame") if c in frame.columns]
    return sorted(frame.select([*ids, "strata_deleted"]).rows(), key=str)


def frames_rows(store: st.MetadataStore, children: dict[int, set[int]], pixels: str) -> pl.DataFrame | None:
    """Rows of ``frames`` for the given stored parents (a parent with no children gets its "no children" row)."""
    video: pl.DataFrame = store.read("video").to_native()
    known = dict(zip(video["sample_uid"].to_list(), video["strata_dv__frames"].to_list(), strict=True))
    rows = [
        (parent, frame, known[parent])
        for parent, frames in sorted(children.items())
        if parent in known
        for frame in (sorted(frames) if frames else [None])
    ]
    if not rows:
        return None
    schema = {"sample_uid": pl.Int64, "frame": pl.Int64, "strata_in__video__frames": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(strata_dv__pixels=pl.lit(pixels))


def apply(store: st.MetadataStore, operation: tuple[Any, ...], written: set[str]) -> Any:
    """Run one operation on features ``written`` so far; what it returns (a delete's count)."""
    kind = operation[0]
    if kind == "video":
        _, parents, audio = operation
        ids = sorted(parents)
        return store.write(
            "video", pl.DataFrame({"sample_uid": ids, "strata_dv__frames": [audio + str(i) for i in ids]})
        )
    if kind == "frames":
        _, children, pixels = operation
        frame = None if "video" not in written else frames_rows(store, children, pixels)
        return None if frame is None else store.write("frames", frame)
    _, target, pairs, soft = operation
    if target == "video":
        key, wanted = "video", pl.DataFrame({"sample_uid": [p for p, _ in pairs]}, schema={"sample_uid": pl.Int64})
    elif target == "frames":
        key = "frames"
        wanted = pl.DataFrame(pairs, schema={"sample_uid": pl.Int64, "frame": pl.Int64}, orient="row")
    else:
        key, wanted = "frames", pl.DataFrame({"sample_uid": [p for p, _ in pairs]}, schema={"sample_uid": pl.Int64})
    if key not in written:
        return None
    return store.delete(key, wanted, soft=soft)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=operations)
def test_writes_and_deletes_move_the_rows_the_in_memory_store_moves(steps: list[tuple[Any, ...]]) -> None:
    stores = [st.InMemoryStore(graph=lineage_graph()), st.DuckDBStore(":memory:", graph=lineage_graph())]
    for store in stores:
        store.__enter__()
    try:
        written: set[str] = set()
        for operation in steps:
            results = [apply(store, operation, written) for store in stores]
            if operation[0] == "delete":
                assert results[0] == results[1], operation
            elif results[0] is not None:
                written.add(operation[0])
            for key in sorted(written):
                assert latest(stores[1], key) == latest(stores[0], key), (key, operation)
                assert_frame_equal(stored(stores[1], key), stored(stores[0], key), check_dtypes=False)
    finally:
        for store in stores:
            store.__exit__(None, None, None)


def test_superseded_rows_spread_over_many_row_groups_move_exactly(tmp_path: Path) -> None:
    """A table of several DuckDB row groups: rewritten, re-added and deleted ids far apart, few and many, in one file."""
    n = 300_000
    base = pl.DataFrame({"sample_uid": range(n), "strata_dv__frames": [f"f{i}" for i in range(n)]})
    changed = base.filter(pl.col("sample_uid") % 997 == 5).with_columns(pl.col("strata_dv__frames") + "x")
    gone = base.filter(pl.col("sample_uid") % 1009 == 7).select("sample_uid")
    new = pl.DataFrame({"sample_uid": range(n, n + 50), "strata_dv__frames": ["new"] * 50})
    back = changed.head(40).with_columns(pl.col("strata_dv__frames") + "y")
    results = []
    for store in (
        st.InMemoryStore(graph=lineage_graph()),
        st.DuckDBStore(tmp_path / "meta.duckdb", graph=lineage_graph()),
    ):
        with store:
            store.write("video", base)
            store.write("video", changed)
            store.write("video", new)
            deleted = store.delete("video", gone)
            deleted_again = store.delete("video", pl.concat([gone.head(10), changed.select("sample_uid").tail(5)]))
            store.write("video", pl.concat([back, base.filter(pl.col("sample_uid").is_in(gone["sample_uid"].head(3)))]))
            many = base.filter(pl.col("sample_uid") % 3 == 1).with_columns(pl.col("strata_dv__frames") + "z")
            store.write("video", many)  # more ids than one statement moves (MOVED_IN_ONE)
            results.append((deleted, deleted_again, latest(store, "video"), stored(store, "video")))
    (deleted, deleted_again, live, rows), duck = results
    assert (duck[0], duck[1]) == (deleted, deleted_again) == (len(gone), 5)
    assert duck[2] == live
    assert_frame_equal(duck[3], rows, check_dtypes=False)


@pytest.mark.parametrize("soft", [True, False])
def test_ids_with_a_null_child_id_delete_the_no_children_row_as_in_memory(tmp_path: Path, soft: bool) -> None:
    """Ids match with nulls equal, as a write's do: (1, null) deletes parent 1's "no children" row.

    The parent then has nothing stored, so the next resolve asks for it again.
    """
    children = pl.DataFrame(
        {"sample_uid": [1, 2, 2], "frame": [None, 0, 1], "strata_in__video__frames": ["a", "b", "b"]},
        schema_overrides={"frame": pl.Int64},
    ).with_columns(strata_dv__pixels=pl.lit("p"))
    gone = pl.DataFrame(
        {"sample_uid": [1, 2], "frame": [None, None]}, schema={"sample_uid": pl.Int64, "frame": pl.Int64}
    )
    seen = []
    for store in (
        st.InMemoryStore(graph=lineage_graph()),
        st.DuckDBStore(tmp_path / "meta.duckdb", graph=lineage_graph()),
    ):
        with store:
            store.write("video", pl.DataFrame({"sample_uid": [1, 2], "strata_dv__frames": ["a", "b"]}))
            store.write("frames", children)
            deleted = store.delete("frames", gone, soft=soft)
            seen.append((deleted, latest(store, "frames"), stored(store, "frames"), store.resolve_update("frames")))
    (deleted, live, rows, inc), duck = seen
    assert duck[0] == deleted == 0  # the row said "no children": no live row was deleted
    assert duck[1] == live == [(2, 0, False), (2, 1, False)]
    assert_frame_equal(duck[2], rows, check_dtypes=False)
    assert duck[3].added.to_native()["sample_uid"].to_list() == inc.added.to_native()["sample_uid"].to_list() == [1]
