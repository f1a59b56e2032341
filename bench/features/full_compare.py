"""The full comparison: strata's resolve with no sync record against hand-written DuckDB SQL.

    .venv/bin/python bench/features/full_compare.py [--sizes 1e6,1e7] [--repeat 3] [--workdir DIR]

A store in a DuckDB file holds the graph of ``strata_run.py`` (video -> transcript -> embedding)
as it stands after that README's delta: video and transcript are up to date, the leaf
(embedding) still has the first pass. The tables are filled by SQL in the store's own layout
(a tiny write through strata makes them), so no resolve ever ran and there is no sync record:
``resolve_update("embedding")`` is the full comparison (``_resolve(plan, since=None)``), the
one a store runs after a definition change, a hard delete or rows written without a resolve.

The hand-written side asks plain DuckDB the same question over the same file: which samples
of the leaf are new, stale (with the cause per field) and removed, fetched as a Polars frame.
strata answers it and also hashes the new data versions of the new and stale samples.

Each side runs in its own process per size (``--side``), ``--repeat`` times; printed: the
median seconds, every run, the peak RSS of that process, and the ratio strata / SQL. The
expected increment (N/1000 new, N/100 stale, N/1000 removed) is checked on both sides.
Also printed: the root resolve of a full snapshot (every sample, 1,000 changed) with the
samples as a Polars frame and as a DuckDB relation of the store's connection.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

import strata as st
from strata.resolve.plan import FeaturePlan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strata_run import build_graph, peak_rss_mb

ID = "sample_uid"
CHANGED_ROOT = 1000


def generate(path: Path, n: int) -> None:
    """The store after the delta of ``strata_run.py``, written by SQL into strata's own tables."""
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    with st.DuckDBStore(path, graph=build_graph()) as store:
        import polars as pl

        one = pl.DataFrame({ID: [0]}, schema={ID: pl.Int64})
        store.write("video", one.with_columns(strata_dv__audio=pl.lit("a"), strata_dv__frames=pl.lit("f")))
        store.write("transcript", one.with_columns(strata_in__video__audio=pl.lit("a"), strata_dv__text=pl.lit("t")))
        store.write(
            "embedding",
            one.with_columns(
                strata_in__transcript__text=pl.lit("t"),
                strata_in__video__frames=pl.lit("f"),
                strata_dv__vector=pl.lit("e"),
            ),
        )
        con = store.to_native()
        con.execute("SET enable_progress_bar = false")
        new = n // 1000
        audio = "CASE WHEN i < {n} AND i % 200 = 0 THEN 'a' || i || 'v2' ELSE 'a' || i END"
        frames = "CASE WHEN i < {n} AND i % 200 = 100 THEN 'f' || i || 'v2' ELSE 'f' || i END"
        text = "CASE WHEN i < {n} AND i % 200 = 0 THEN 't' || i || 'v2' ELSE 't' || i END"
        fill = {
            "video": (
                n + new,
                (
                    f"i AS {ID}, {audio} AS strata_dv__audio, {frames} AS strata_dv__frames, "
                    "i < {n} AND i % 1000 = 7 AS strata_deleted"
                ),
            ),
            "transcript": (n + new, f"i AS {ID}, {audio} AS strata_in__video__audio, {text} AS strata_dv__text"),
            "embedding": (
                n,
                (
                    f"i AS {ID}, 't' || i AS strata_in__transcript__text, 'f' || i AS strata_in__video__frames, "
                    "'e' || i AS strata_dv__vector"
                ),
            ),
        }
        split = {str(t) for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for name, (rows, columns) in fill.items():
            # the table that holds the rows: a split table's (its row points at the tiny write's versions)
            table = f'"{name}$rows"' if f"{name}$rows" in split else name
            con.execute(f"CREATE TEMP TABLE tpl AS SELECT * FROM {table}")  # noqa: S608 - the bench's own names
            con.execute(f"DELETE FROM {table}")  # noqa: S608
            con.execute(
                f"INSERT INTO {table} SELECT tpl.* REPLACE ({columns.format(n=n)}) "  # noqa: S608
                f"FROM tpl, (SELECT range AS i FROM range({rows}))"
            )
            con.execute("DROP TABLE tpl")
        con.execute("CHECKPOINT")


def hand_written(con: duckdb.DuckDBPyConnection, code: dict[str, str]) -> Any:
    """New / stale (cause per field) / removed samples of the leaf, in one plain query."""
    query = f"""
        WITH e AS (
            SELECT v.{ID}, t.strata_dv__text AS text, v.strata_dv__frames AS frames
            FROM video v JOIN transcript t USING ({ID})
            WHERE NOT v.strata_deleted AND NOT t.strata_deleted
        ), c AS (SELECT * FROM embedding WHERE NOT strata_deleted)
        SELECT {ID}, part, NULLIF(concat_ws(',', code, text, frames), '') AS cause FROM (
            SELECT coalesce(e.{ID}, c.{ID}) AS {ID},
                CASE WHEN c.{ID} IS NULL THEN 'new' WHEN e.{ID} IS NULL THEN 'removed' ELSE 'stale' END AS part,
                CASE WHEN c.strata_cv__vector IS DISTINCT FROM '{code["vector"]}' THEN 'code' END AS code,
                CASE WHEN c.strata_in__transcript__text IS DISTINCT FROM e.text THEN 'transcript.text' END AS text,
                CASE WHEN c.strata_in__video__frames IS DISTINCT FROM e.frames THEN 'video.frames' END AS frames
            FROM e FULL JOIN c ON e.{ID} = c.{ID}
            WHERE c.{ID} IS NULL OR e.{ID} IS NULL
                OR c.strata_cv__vector IS DISTINCT FROM '{code["vector"]}'
                OR c.strata_in__transcript__text IS DISTINCT FROM e.text
                OR c.strata_in__video__frames IS DISTINCT FROM e.frames
        )
    """  # noqa: S608 - the names and constants of this bench
    frame = con.sql(query).pl()
    counts = frame["part"].value_counts()
    return {str(k): int(v) for k, v in zip(counts["part"], counts["count"], strict=True)}


def side(name: str, path: Path, n: int, repeat: int) -> dict[str, Any]:
    """One side's runs over the store at ``path`` (in this process)."""
    graph = build_graph()
    runs: list[float] = []
    counts: Any = None
    if name == "sql":
        vector = FeaturePlan.build(graph, st.FeatureKey("embedding")).fields[0]
        code = {"vector": vector.stored_code_version}  # as the store writes it: with the field's input list
        con = duckdb.connect(str(path), read_only=True)
        for _ in range(repeat):
            start = time.perf_counter()
            counts = hand_written(con, code)
            runs.append(time.perf_counter() - start)
        con.close()
        counts = {"added": counts.get("new", 0), "changed": counts.get("stale", 0), "removed": counts.get("removed", 0)}
    elif name == "strata":
        with st.DuckDBStore(path, graph=graph, read_only=True) as store:
            for _ in range(repeat):
                start = time.perf_counter()
                inc = store.resolve_update("embedding")
                runs.append(time.perf_counter() - start)
                assert inc.meta["mode"] == "full", inc.meta
                counts = inc.counts()
    else:
        return root_side(name, path, n, repeat)
    return {"median": round(statistics.median(runs), 4), "runs": [round(r, 4) for r in runs], "counts": counts}


def root_side(name: str, path: Path, n: int, repeat: int) -> dict[str, Any]:
    """The root resolve of a full snapshot (every live video sample, 1,000 changed) from Polars or DuckDB."""
    runs: list[float] = []
    counts: Any = None
    with st.DuckDBStore(path, graph=build_graph(), read_only=True) as store:
        step = max(1, n // CHANGED_ROOT)  # ids 1, 1 + step, ...: never a dropped one (i % 1000 == 7)
        snapshot = (
            f"SELECT {ID}, CASE WHEN {ID} % {step} = 1 AND {ID} < {n} THEN strata_dv__audio || 'x' "  # noqa: S608
            f"ELSE strata_dv__audio END AS strata_dv__audio, strata_dv__frames FROM video WHERE NOT strata_deleted"
        )
        polars = store.to_native().sql(snapshot).pl() if name == "root-polars" else None
        for _ in range(repeat):
            samples = polars if polars is not None else store.to_native().sql(snapshot)
            start = time.perf_counter()
            inc = store.resolve_update("video", samples=samples)
            runs.append(time.perf_counter() - start)
            counts = inc.counts()
    return {"median": round(statistics.median(runs), 4), "runs": [round(r, 4) for r in runs], "counts": counts}


def run_side(name: str, path: Path, n: int, repeat: int) -> dict[str, Any]:
    """``side`` in a fresh process, with that process's peak RSS."""
    cmd = [sys.executable, __file__, "--side", name, "--path", str(path), "--n", str(n), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"side {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> int:
    """Generate each size, run both sides, print one line per size and the JSON."""
    parser = argparse.ArgumentParser(description="full comparison: strata vs hand-written DuckDB SQL")
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work/features/full_compare"))
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.nice(10)  # other work on the machine comes first; the sides inherit it
    if args.side:
        out = side(args.side, args.path, args.n, args.repeat)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        n = int(float(size))
        path = args.workdir / f"full_{n}.duckdb"
        generate(path, n)
        want = {"added": n // 1000, "changed": n // 100, "removed": n // 1000}
        result: dict[str, Any] = {"n": n}
        for name in ("strata", "sql", "root-polars", "root-duckdb"):
            result[name] = run_side(name, path, n, args.repeat)
        for name in ("strata", "sql"):
            if result[name]["counts"] != want:
                print(f"check failed: {name} at {n}: {result[name]['counts']} != {want}", file=sys.stderr)
        for name in ("root-polars", "root-duckdb"):
            if result[name]["counts"] != {"added": 0, "changed": CHANGED_ROOT, "removed": 0}:
                print(f"check failed: {name} at {n}: {result[name]['counts']}", file=sys.stderr)
        ratio = result["strata"]["median"] / result["sql"]["median"]
        print(
            f"n={n:>11,}  full comparison: strata {result['strata']['median']:.3f} s "
            f"({result['strata']['peak_rss_mb']:.0f} MB)  hand-written SQL {result['sql']['median']:.3f} s "
            f"({result['sql']['peak_rss_mb']:.0f} MB)  strata/SQL {ratio:.2f}x   root snapshot: "
            f"Polars {result['root-polars']['median']:.3f} s, DuckDB relation {result['root-duckdb']['median']:.3f} s",
            file=sys.stderr,
        )
        results.append(result)
        path.unlink(missing_ok=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
