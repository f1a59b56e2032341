"""The first pass of the feature benchmark alone, eager or lazy, with CPU seconds beside wall seconds.

The graph and samples of ``strata_run.py`` (see README.md here); each feature is resolved and its
increment written, in order video, transcript, embedding:

    .venv/bin/python bench/features/first_pass.py --n 1000000 [--lazy] [--store duckdb-memory]

``--lazy`` resolves with ``lazy=True`` and writes the increment's parts as returned (DuckDB
relations of the store, written in place); without it the increment comes out as Polars frames
and goes back in as one frame per feature, as ``strata_run.py`` writes it. Prints one JSON
object: ``first`` / ``first_steps`` (wall seconds), ``first_cpu`` (process CPU seconds, every
thread: the work done, whatever else runs on the machine), ``peak_rss_mb`` and ``checks_ok``
(each feature got exactly N rows). The store is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import strata_run as bench

import strata as st


def main() -> int:
    """Run the first pass and print the JSON."""
    parser = argparse.ArgumentParser(description="first pass of the feature benchmark")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["duckdb-file", "duckdb-memory"], default="duckdb-file")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work/features/first"))
    parser.add_argument("--lazy", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "first.duckdb"
    path.unlink(missing_ok=True)
    samples = bench.root_samples(args.n, delta=False)
    location = ":memory:" if args.store == "duckdb-memory" else path
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}
    written: dict[str, int] = {}
    with st.DuckDBStore(location, graph=bench.build_graph()) as store:
        for key in ("video", "transcript", "embedding"):
            kwargs: dict[str, Any] = {"samples": samples} if key == "video" else {}
            wall, used = time.perf_counter(), time.process_time()
            inc = store.resolve_update(key, lazy=args.lazy, **kwargs)
            if args.lazy:
                written[key] = store.write(key, inc.added) + store.write(key, inc.changed)
            else:
                written[key] = store.write(key, bench.writable(inc))
            steps[key] = round(time.perf_counter() - wall, 4)
            cpu[key] = round(time.process_time() - used, 4)
    path.unlink(missing_ok=True)
    out = {
        "n": args.n,
        "store": args.store,
        "lazy": args.lazy,
        "first": round(sum(steps.values()), 4),
        "first_steps": steps,
        "first_cpu": round(sum(cpu.values()), 4),
        "first_cpu_steps": cpu,
        "peak_rss_mb": bench.peak_rss_mb(),
        "checks_ok": all(count == args.n for count in written.values()),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
