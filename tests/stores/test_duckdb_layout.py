"""How the DuckDB store lays out its tables: hash columns stored uncompressed, older layouts kept working."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

import strata as st
from strata.resolve.plan import stored_code_version
from tests.stores.test_conformance import graph_of, roots, rows, sync

if TYPE_CHECKING:
    from collections.abc import Sequence

TABLES = ("video", "transcript", "embedding")
HASHES = {
    "video": ["strata_dv__audio", "strata_dv__frames"],
    "transcript": ["strata_in__video__audio", "strata_dv__text"],
    "embedding": ["strata_in__transcript__text", "strata_in__video__frames", "strata_dv__vector"],
}


def declared_uncompressed(path: Path, table: str) -> set[str]:
    """The columns of ``table`` declared ``USING COMPRESSION uncompressed``, from DuckDB's catalog."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [str(r[0]) for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
        (ddl,) = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone() or ("",)
    return {n for n in names if f"{n} VARCHAR USING COMPRESSION Uncompressed".lower() in str(ddl).lower()}


def stored_compression(path: Path, table: str) -> dict[str, set[str]]:
    """Each column's compression as stored, from ``pragma_storage_info`` (validity segments aside)."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "SELECT column_name, compression FROM pragma_storage_info(?) WHERE segment_type <> 'VALIDITY'", [table]
        ).fetchall()
    kinds: dict[str, set[str]] = {}
    for column, compression in found:
        kinds.setdefault(str(column), set()).add(str(compression))
    return kinds


def declared_in_runs(path: Path, table: str) -> set[str]:
    """The columns of ``table`` declared ``USING COMPRESSION rle``, from DuckDB's catalog."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [str(r[0]) for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
        (ddl,) = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone() or ("",)
    return {n for n in names if re.search(rf"\b{re.escape(n)} \w+ USING COMPRESSION RLE\b", str(ddl), re.IGNORECASE)}


def video_with_captions() -> st.FeatureGraph:
    """graph_of()'s video with a third field: a later write adds its data-version column."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio", "frames", "captions"])):
            pass

    return graph


def test_data_and_input_versions_are_stored_uncompressed_in_every_table(tmp_path: Path) -> None:
    """Hashes do not compress: DuckDB's analysis of them was most of a write. The number, deletion flag and
    writes entry of a row are the same for every row of a write: declared in runs, analysed for nothing else."""
    path = tmp_path / "meta.duckdb"
    n = 5000  # enough rows that DuckDB would otherwise pick a compression for them
    with st.DuckDBStore(path, graph=graph_of()) as store:
        sync(store, roots(n))
        sync(store, roots(n, audio=dict.fromkeys(range(0, n, 2), "new")))  # superseded rows go to history
    for table in TABLES:
        for name in (f"{table}$rows", f"{table}$history$rows"):  # the tables that hold the rows (split)
            assert declared_uncompressed(path, name) == set(HASHES[table]), name
            stored = stored_compression(path, name)
            for column in HASHES[table]:
                assert stored[column] == {"Uncompressed"}, (name, column)
            assert stored["strata_seq"] != {"Uncompressed"}  # other columns as DuckDB picks
            assert declared_in_runs(path, name) == {"strata_seq", "strata_deleted", "strata_write"}, name
    with st.DuckDBStore(path, graph=video_with_captions()) as store:
        captions = roots(n).with_columns(pl.format("c{}", pl.col("sample_uid")).alias("strata_dv__captions"))
        store.write("video", captions)
    for name in ("video$rows", "video$history$rows"):
        assert declared_uncompressed(path, name) == {*HASHES["video"], "strata_dv__captions"}, name
    assert stored_compression(path, "video$rows")["strata_dv__captions"] == {"Uncompressed"}


def to_older_layout(path: Path) -> None:
    """Rebuild every feature table as strata did before hash columns were declared uncompressed (and tables split).

    Each view of a split table becomes a table of its rows, every column in every row, and the
    bookkeeping forgets that the tables were split.
    """
    with duckdb.connect(str(path)) as con:
        for table in TABLES:
            for name in (table, f"{table}$history"):
                con.execute(f'CREATE TABLE "old" AS SELECT * FROM "{name}"')  # noqa: S608 - fixed names
                con.execute(f'DROP VIEW "{name}"')
                con.execute(f'DROP TABLE "{name}$rows"')
                con.execute(f'ALTER TABLE "old" RENAME TO "{name}"')
            con.execute(f'DROP TABLE "{table}$writes"')
        con.execute("""DELETE FROM "strata$meta" WHERE name LIKE 'split@%'""")


def test_a_store_with_the_older_layout_gives_the_same_increments_and_rows(tmp_path: Path) -> None:
    older, fresh = tmp_path / "older.duckdb", tmp_path / "fresh.duckdb"
    for path in (older, fresh):
        with st.DuckDBStore(path, graph=graph_of()) as store:
            sync(store, roots(8))
    to_older_layout(older)
    assert all(not declared_uncompressed(older, table) for table in TABLES)
    seen = {}
    for path in (older, fresh):
        with st.DuckDBStore(path, graph=graph_of(text_cv="2")) as store:
            changes = sync(store, roots(10, audio={1: "x"}, frames={2: "y"}).filter(pl.col("sample_uid") != 3))
            again = {key: store.resolve_update(key) for key in TABLES[1:]}
            again["video"] = store.resolve_update("video", samples=roots(10))
            store.write("video", rows(again["video"]))
            reads = {k: store.read(k, feature_version="all").to_native().drop("strata_written_at") for k in TABLES}
            seen[path] = (changes, again, reads)
    for key in TABLES:
        for inc in (0, 1):
            a, b = seen[older][inc][key], seen[fresh][inc][key]
            for part in ("added", "changed", "removed"):
                assert (
                    getattr(a, part)
                    .to_native()
                    .sort("sample_uid")
                    .equals(getattr(b, part).to_native().sort("sample_uid"))
                ), (key, inc, part)
        order = ["strata_seq", "sample_uid"]
        assert seen[older][2][key].sort(order).equals(seen[fresh][2][key].sort(order)), key
    with st.DuckDBStore(older, graph=video_with_captions()) as store:  # a column added to an older table
        store.write("video", roots(10).with_columns(pl.lit("c").alias("strata_dv__captions")))
    assert declared_uncompressed(older, "video") == {"strata_dv__captions"}


OLD_LAYOUT = Path(__file__).parent / "data" / "old_layout"
"""A store file written by strata before tables were split, and what that strata read and resolved from it.

Made by ``tests/stores/data/make_old_layout.py`` with strata at main 2f209ec (every column in every row).
"""


def before_split(store: st.DuckDBStore) -> None:
    """The writes and deletes the old-layout file holds: changes, soft deletes (tombstones), a hard delete."""
    sync(store, roots(10))
    sync(store, roots(10, audio={1: "x"}).filter(pl.col("sample_uid") != 3))
    store.delete("video", pl.DataFrame({"sample_uid": [5]}), soft=False)


def everything(store: st.DuckDBStore, until: dt.datetime | None = None) -> dict[str, pl.DataFrame]:
    """Every row of every feature through the public API: latest rows with tombstones, and the full history.

    Sorted by sample and sequence number. ``until``: times after it (rows written since) become null.
    """
    seen = {}
    for key in TABLES:
        for name, read in (
            ("latest", store.read(key, include_deleted=True)),
            ("all", store.read(key, feature_version="all")),
        ):
            frame: pl.DataFrame = read.to_native().sort(["sample_uid", "strata_seq", "strata_deleted"])
            if until is not None:
                time = pl.col("strata_written_at")
                frame = frame.with_columns(
                    pl.when(time > until).then(None).otherwise(time).alias(time.meta.output_name())
                )
            seen[f"{key}.{name}"] = frame
    return seen


def newest(frames: dict[str, pl.DataFrame]) -> dt.datetime:
    """The latest ``strata_written_at`` of any row of ``frames``."""
    times = [frame["strata_written_at"].max() for frame in frames.values()]
    return max(t for t in times if isinstance(t, dt.datetime))


def a_round(path: Path) -> dict[str, pl.DataFrame]:
    """A code change, changed, new and removed samples, compaction and a soft delete; the increments seen."""
    seen = {}
    with st.DuckDBStore(path, graph=graph_of(text_cv="2")) as store:
        changes = sync(store, roots(12, frames={2: "y"}).filter(pl.col("sample_uid") != 4))
        store.compact(keep=1)
        store.delete("embedding", pl.DataFrame({"sample_uid": [7]}))
        again = {key: store.resolve_update(key) for key in TABLES[1:]}
        for round_name, increments in (("sync", changes), ("again", again)):
            for key, inc in increments.items():
                for part in ("added", "changed", "removed"):
                    seen[f"{round_name}.{key}.{part}"] = getattr(inc, part).to_native().sort("sample_uid")
    return seen


def expected(prefix: str) -> dict[str, pl.DataFrame]:
    """What strata before the split read or resolved (``OLD_LAYOUT``), by name without ``prefix``."""
    files = sorted((OLD_LAYOUT / "expected").glob(f"{prefix}.*.parquet"))
    assert files, prefix
    return {f.name.removeprefix(f"{prefix}.").removesuffix(".parquet"): pl.read_parquet(f) for f in files}


def with_input_lists(frames: dict[str, pl.DataFrame], *, every: bool) -> dict[str, pl.DataFrame]:
    """``frames`` (as strata wrote them before code versions carried input lists) as this strata writes them.

    A non-root field's ``strata_cv__`` value comes with its input list's hash: in every row
    (``every``), or in the rows written since the old file (``everything(store, until)`` nulls
    their time; the old file's own rows keep their plain code versions, which still count as
    current, and a tombstone keeps the code versions of the row it deletes).
    """
    graph = graph_of()
    out: dict[str, pl.DataFrame] = {}
    for name in sorted(frames, key=lambda n: not n.endswith(".all")):  # a tombstone's row is in ``.all``
        frame, key = frames[name], name.split(".")[0]
        if key in TABLES[1:]:
            written = pl.lit(value=True) if every else pl.col("strata_written_at").is_null()
            for column in (c for c in frame.columns if c.startswith("strata_cv__")):
                inputs = tuple(graph.field_inputs(key, column.removeprefix("strata_cv__")))
                tokens = {v: stored_code_version(v, inputs) for v in frame[column].drop_nulls().unique()}
                frame = frame.with_columns(
                    pl.when(written).then(pl.col(column).replace(tokens)).otherwise(pl.col(column))
                )
                if not every:
                    frame = frame.with_columns(kept_by_tombstones(frame, out.get(f"{key}.all", frame), column))
        out[name] = frame
    return out


def kept_by_tombstones(frame: pl.DataFrame, every: pl.DataFrame, column: str) -> pl.Series:
    """``column`` of ``frame`` with each tombstone written since the old file holding its deleted row's value."""
    values = frame[column].to_list()
    for index, row in enumerate(frame.iter_rows(named=True)):
        if row["strata_deleted"] and row["strata_written_at"] is None:
            older = every.filter(
                (pl.col("sample_uid") == row["sample_uid"]) & (pl.col("strata_seq") < row["strata_seq"])
            )
            values[index] = older.sort("strata_seq")[column][-1]
    return pl.Series(column, values, dtype=pl.String)


def assert_same(seen: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame], *, drop: Sequence[str] = ()) -> None:
    """Equal frames by name: same columns (in any order), types and rows."""
    assert sorted(seen) == sorted(want)
    for name, frame in want.items():
        wanted = frame.drop(drop, strict=False)
        got = seen[name].drop(drop, strict=False).select(wanted.columns)
        assert got.schema == wanted.schema, name
        assert got.equals(wanted), (name, got, wanted)


def test_a_store_file_written_before_tables_were_split_reads_and_resolves_as_before(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    path.write_bytes(gzip.decompress((OLD_LAYOUT / "store.duckdb.gz").read_bytes()))
    with st.DuckDBStore(path, graph=graph_of(), read_only=True) as store:  # read-only: nothing may change
        assert_same(everything(store), expected("before"))
    with st.DuckDBStore(tmp_path / "dev.duckdb", graph=graph_of(), fallbacks=[st.DuckDBStore(path)]) as dev:
        assert_same(
            {
                f"{k}.all": dev.read(k, feature_version="all")
                .to_native()
                .sort(["sample_uid", "strata_seq", "strata_deleted"])
                for k in TABLES
            },
            {k: v for k, v in expected("before").items() if k.endswith(".all")},
        )
    want = expected("after")
    until = newest(expected("before"))
    assert_same(a_round(path), {k: v for k, v in want.items() if k.startswith(("sync.", "again."))})
    with st.DuckDBStore(path, graph=graph_of(text_cv="2"), read_only=True) as store:
        rows_after = {k: v for k, v in want.items() if not k.startswith(("sync.", "again."))}
        assert_same(everything(store, until), with_input_lists(rows_after, every=False))
    with duckdb.connect(str(path), read_only=True) as con:  # written as before: never split
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == [(0,)]


def test_rows_read_back_from_split_tables_are_those_of_the_layout_before(tmp_path: Path) -> None:
    """The same writes, deletes and compaction on a new store give the rows and increments strata gave before the split.

    Times differ (the rows are written now), so they are compared apart: every row of one write
    or delete carries its time, and times grow with the sequence numbers.
    """
    path = tmp_path / "new.duckdb"
    with st.DuckDBStore(path, graph=graph_of()) as store:
        before_split(store)
        before = everything(store)
    assert_same(before, with_input_lists(expected("before"), every=True), drop=["strata_written_at"])
    want = expected("after")
    assert_same(a_round(path), {k: v for k, v in want.items() if k.startswith(("sync.", "again."))})
    with st.DuckDBStore(path, graph=graph_of(text_cv="2"), read_only=True) as store:
        after = everything(store)
    rows_after = {k: v for k, v in want.items() if not k.startswith(("sync.", "again."))}
    assert_same(after, with_input_lists(rows_after, every=True), drop=["strata_written_at"])
    for frame in [*before.values(), *after.values()]:
        times = (
            frame.group_by("strata_seq")
            .agg(pl.col("strata_written_at").n_unique().alias("n"), pl.col("strata_written_at").first())
            .sort("strata_seq")
        )
        assert times["n"].to_list() == [1] * len(times)
        assert times["strata_written_at"].is_sorted()
    with duckdb.connect(str(path), read_only=True) as con:  # split: the constant columns are no row's
        columns = {str(r[0]) for r in con.execute('DESCRIBE "video$rows"').fetchall()}
        assert "strata_written_at" not in columns
        assert "strata_cv__audio" not in columns
