"""Reconcile against a full recompute of the same feature, on the DuckDB and the PostgreSQL store.

    .venv/bin/python bench/features/reconcile.py [--sizes 1e6] [--repeat 3] [--stores duckdb,postgres] [--json PATH]

The graph of ``strata_run.py`` (video -> transcript -> embedding), every feature written for
``n`` samples, transcript with a user column. Then, ``--repeat`` times, alternating: transcript's
code version is bumped (every sample stale, cause ``code``) and

- ``reconcile``: ``store.reconcile("transcript")`` rewrites the provenance of all ``n`` samples
  in the database (nothing computed, no row leaves it); checked: a resolve afterwards is empty;
- ``recompute``: what a build does instead, but the user's ``compute``: the increment resolved
  and all ``n`` samples written back with their user column (DuckDB: lazily, written in place;
  PostgreSQL: eager, as its rows come out anyway).

Each store runs in its own process (``--worker``); PostgreSQL on a server this script starts
(the tests' ``running_postgres``, as ``postgres.py``), DuckDB in a file under
``bench/.work/features/reconcile/``. Per step: the median wall seconds, the worker's CPU seconds
(``time.process_time``: DuckDB's threads included) and the PostgreSQL server's CPU seconds; the
ratio is recompute / reconcile (medians). The load average comes with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "features" / "reconcile"
STORES = ("duckdb", "postgres")
sys.path[:0] = [str(HERE), str(ROOT)]


def build_graph(text_cv: int) -> Any:
    """``strata_run``'s graph with transcript's ``text`` at code version ``text_cv``."""
    from tests.stores.graphs import embedding, transcript, video

    import strata as st

    graph = st.FeatureGraph()
    with graph.use():
        source = video("audio", "frames")
        embedding(transcript(source, str(text_cv)), source, source_first=True)
    return graph


def worker(kind: str, n: int, dsn: str, repeat: int) -> dict[str, Any]:
    """Fill a store, then alternate reconcile and recompute of transcript after a code bump each."""
    import narwhals as nw
    import strata_run
    from postgres import Steps

    import strata as st

    data = None
    if kind == "postgres":
        data = Path(os.environ["STRATA_BENCH_PG_DATA"])
        store: Any = st.PostgresStore(dsn, schema=f"reconcile_{n}", graph=build_graph(1))
    else:
        path = WORK / f"reconcile_{n}.duckdb"
        path.unlink(missing_ok=True)
        store = st.DuckDBStore(path, graph=build_graph(1))
    steps, lazy = Steps(data), kind == "duckdb"
    words = nw.concat_str(nw.lit("w"), nw.col("sample_uid").cast(nw.String)).alias("words")

    def write(key: str, inc: Any) -> int:
        if inc.lazy:
            return int(
                store.write(key, inc.added.with_columns(words)) + store.write(key, inc.changed.with_columns(words))
            )
        rows = nw.from_native(strata_run.writable(inc)).with_columns(words)
        return int(store.write(key, rows))

    def recompute() -> int:
        return write("transcript", store.resolve_update("transcript", lazy=lazy))

    with store:
        write("video", store.resolve_update("video", samples=strata_run.root_samples(n, delta=False), lazy=lazy))
        for key in ("transcript", "embedding"):
            write(key, store.resolve_update(key, lazy=lazy))
        version = 1
        runs: dict[str, list[dict[str, Any]]] = {"reconcile": [], "recompute": []}
        for _ in range(repeat):
            for name in ("reconcile", "recompute"):
                version += 1
                store.graph = build_graph(version)
                done = steps.run(
                    name, (lambda: store.reconcile("transcript").samples) if name == "reconcile" else recompute
                )
                runs[name].append(steps.out[name])
                if done != n:
                    steps.problems.append(f"{name} wrote {done} samples, not {n}")
                if not store.resolve_update("transcript").is_empty:
                    steps.problems.append(f"transcript is not in sync after {name}")
        live: pl.DataFrame = store.read("transcript", columns=["words"]).to_native()
        if live["words"].null_count() or live.height != n:
            steps.problems.append("the user column did not survive")
    out: dict[str, Any] = {name: _median(rows) for name, rows in runs.items()}
    out["ratio"] = round(out["recompute"]["s"] / out["reconcile"]["s"], 1)
    return {"store": kind, "n": n, "steps": out, "problems": steps.problems}


def _median(rows: list[dict[str, Any]]) -> dict[str, float]:
    import statistics

    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


def main() -> int:
    """Start a PostgreSQL server (when asked for), run each store at each size in its own process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e6")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=STORES)
    parser.add_argument("--n", type=int)
    parser.add_argument("--dsn", default="")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.dsn, args.repeat)))
        return 0
    from tests.servers import postgres_bin_dir, running_postgres

    WORK.mkdir(parents=True, exist_ok=True)
    kinds = [k for k in args.stores.split(",") if k]
    bin_dir = postgres_bin_dir() if "postgres" in kinds else None
    if "postgres" in kinds and bin_dir is None:
        sys.exit("PostgreSQL is not installed: apt-get install -y postgresql")
    results: list[dict[str, Any]] = []
    with running_postgres(bin_dir) if bin_dir is not None else contextlib.nullcontext(None) as server:
        env = dict(os.environ)
        if server is not None and server.control is not None:
            env["STRATA_BENCH_PG_DATA"] = str(server.control.data)
        for n in (int(float(s)) for s in args.sizes.split(",")):
            for kind in kinds:
                dsn = server.dsn() if server is not None else ""
                command = [sys.executable, __file__, "--worker", kind, "--n", str(n), "--dsn", dsn]
                done = subprocess.run(
                    [*command, "--repeat", str(args.repeat)], capture_output=True, text=True, env=env, check=False
                )
                if done.returncode != 0:
                    sys.exit(f"{kind} at {n} failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results.append(result)
                print(json.dumps(result), file=sys.stderr)
    uptime = "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    for r in results:
        s = r["steps"]
        print(
            f"{r['store']:8} n={r['n']:>9}: reconcile {s['reconcile']['s']} s (cpu {s['reconcile']['cpu_s']}, "
            f"server {s['reconcile']['server_cpu_s']}) | recompute {s['recompute']['s']} s "
            f"(cpu {s['recompute']['cpu_s']}, server {s['recompute']['server_cpu_s']}) | ratio {s['ratio']}x"
        )
    problems = [f"{r['store']} {r['n']}: {p}" for r in results for p in r["problems"]]
    print(f"\n{uptime}; problems: {problems or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "uptime": uptime, "problems": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
