"""How the DuckDB store lays out its tables: hash columns stored uncompressed, older layouts kept working."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

import strata as st
from tests.stores.test_conformance import graph_of, roots, rows, sync

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


def video_with_captions() -> st.FeatureGraph:
    """graph_of()'s video with a third field: a later write adds its data-version column."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio", "frames", "captions"])):
            pass

    return graph


def test_data_and_input_versions_are_stored_uncompressed_in_every_table(tmp_path: Path) -> None:
    path = tmp_path / "meta.duckdb"
    n = 5000  # enough rows that DuckDB would otherwise pick a compression for them
    with st.DuckDBStore(path, graph=graph_of()) as store:
        sync(store, roots(n))
        sync(store, roots(n, audio=dict.fromkeys(range(0, n, 2), "new")))  # superseded rows go to history
    for table in TABLES:
        for name in (table, f"{table}$history"):
            assert declared_uncompressed(path, name) == set(HASHES[table]), name
            stored = stored_compression(path, name)
            for column in HASHES[table]:
                assert stored[column] == {"Uncompressed"}, (name, column)
            assert stored["strata_feature_version"] != {"Uncompressed"}  # other columns as DuckDB picks
    with st.DuckDBStore(path, graph=video_with_captions()) as store:
        captions = roots(n).with_columns(pl.format("c{}", pl.col("sample_uid")).alias("strata_dv__captions"))
        store.write("video", captions)
    for name in ("video", "video$history"):
        assert declared_uncompressed(path, name) == {*HASHES["video"], "strata_dv__captions"}, name
    assert stored_compression(path, "video")["strata_dv__captions"] == {"Uncompressed"}


def to_older_layout(path: Path) -> None:
    """Rebuild every feature table as strata did before hash columns were declared uncompressed."""
    with duckdb.connect(str(path)) as con:
        for table in TABLES:
            for name in (table, f"{table}$history"):
                con.execute(f'CREATE TABLE "old" AS SELECT * FROM "{name}"')  # noqa: S608 - fixed names
                con.execute(f'DROP TABLE "{name}"')
                con.execute(f'ALTER TABLE "old" RENAME TO "{name}"')


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
