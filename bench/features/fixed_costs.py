"""Fixed costs of the DuckDB store and of ``strata build`` (issue 13, item 1).

Printed, each the median of ``--repeat`` runs:

- ``import``: seconds of ``import strata`` in a fresh interpreter, and of ``import strata`` plus
  everything the first resolve of a DuckDB store imports (DuckDB, Polars, Narwhals, pyarrow);
- per size in ``--sizes`` (the three features of ``strata_run.py``, stores kept in
  ``--workdir`` between runs): a fresh process that has done those imports opens the store and
  answers its first resolve of the leaf, ``embedding``,
  - ``noop``: nothing changed since the last sync;
  - ``change``: after 1,000 samples of ``video.frames`` changed (the parent then writes the
    leaf's increment back, so every run sees the same 1,000);
- ``build``: ``strata build`` overhead per batch, from ``bench/bridge.py`` (100,000 samples in
  one batch against batches of 1,000).

Usage:  .venv/bin/python bench/features/fixed_costs.py [--sizes 1e6,1e7] [--repeat 5] [--no-build | --build-only]

``--build-only`` measures the build part alone (no imports, no stores), and adds the CPU
seconds of the ``strata build`` processes per batch, which other work on the machine barely changes.
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

HERE = Path(__file__).resolve().parent
CHANGE = 1_000
FIRST_CHUNK = 1_000_000
"""The first pass writes the root in chunks of this many samples (the leaves in one resolve each)."""
PRELOAD = "import strata, strata.stores.duckdb.store, duckdb, polars, narwhals, pyarrow"


def child(mode: str, path: str) -> None:
    """In a fresh process: the imports, then open the store and resolve the leaf; print seconds."""
    started = time.perf_counter()
    exec(PRELOAD)  # noqa: S102 - a fixed statement
    imported = time.perf_counter() - started
    sys.path.insert(0, str(HERE))
    from strata_run import build_graph

    import strata as st

    graph = build_graph()
    before = set(sys.modules)
    started, cpu = time.perf_counter(), time.process_time()
    with st.DuckDBStore(path, graph=graph) as store:
        counts = store.resolve_update("embedding").counts()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    late = sorted(m for m in set(sys.modules) - before if "." not in m)
    print(
        json.dumps(
            {"mode": mode, "seconds": seconds, "cpu": cpu, "imports": imported, "counts": counts, "late_imports": late}
        )
    )


def make_store(path: Path, n: int) -> None:
    """The three features at ``n`` samples, in sync (kept between runs)."""
    if path.exists():
        return
    import polars as pl
    from strata_run import build_graph, root_samples, writable

    import strata as st

    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    with st.DuckDBStore(tmp, graph=build_graph()) as store:
        for lo in range(0, n, FIRST_CHUNK):
            chunk = root_samples(min(n, lo + FIRST_CHUNK), delta=False).filter(pl.col("sample_uid") >= lo)
            store.write("video", chunk)
        for key in ("transcript", "embedding"):
            store.write(key, writable(store.resolve_update(key)))
        assert store.resolve_update("embedding").is_empty
    tmp.rename(path)
    print(f"  made {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def change(path: Path, round_: int) -> None:
    """Change ``frames`` of 1,000 video samples (a different value each round)."""
    import polars as pl
    from strata_run import build_graph

    import strata as st

    ids = pl.int_range(0, CHANGE, dtype=pl.Int64, eager=True).alias("sample_uid") * 7
    frame = pl.DataFrame(ids).with_columns(
        pl.format("a{}", pl.col("sample_uid")).alias("strata_dv__audio"),
        pl.format("f{}r{}", pl.col("sample_uid"), pl.lit(round_)).alias("strata_dv__frames"),
    )
    with st.DuckDBStore(path, graph=build_graph()) as store:
        store.write("video", frame)


def settle(path: Path) -> None:
    """Write the leaf's increment back, so the next change starts from a sync record."""
    from strata_run import build_graph, writable

    import strata as st

    with st.DuckDBStore(path, graph=build_graph()) as store:
        store.write("embedding", writable(store.resolve_update("embedding")))
        assert store.resolve_update("embedding").is_empty


def run_child(mode: str, path: Path) -> dict[str, Any]:
    """What :func:`child` printed."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def import_seconds(statement: str, repeat: int) -> float:
    """Median wall seconds of a fresh interpreter running ``statement`` minus one running nothing."""

    def once(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = statistics.median(once("pass") for _ in range(repeat))
    return statistics.median(once(statement) for _ in range(repeat)) - bare


def sizes(text: str) -> list[int]:
    """``1e6,1e7`` as integers."""
    return [int(float(part)) for part in text.split(",") if part]


def main() -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=HERE.parent / ".work" / "fixed")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--no-build", action="store_true", help="leave out the build part")
    parts.add_argument("--build-only", action="store_true", help="measure only the build part")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    sys.path.insert(0, str(HERE))
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared), median of {args.repeat}")
    if not args.build_only:
        stores(args)
    if not args.no_build:
        build(args.repeat)
    return 0


def stores(args: argparse.Namespace) -> None:
    """The import and store parts."""
    print(f"import strata                      {import_seconds('import strata', args.repeat):7.3f} s")
    print(f"import strata + first-use modules  {import_seconds(PRELOAD, args.repeat):7.3f} s")
    for n in args.sizes:
        path = args.workdir / f"store-{n}.duckdb"
        make_store(path, n)
        run_child("noop", path)  # unmeasured: the file in the page cache, as for any store in use
        noop = [run_child("noop", path) for _ in range(args.repeat)]
        assert all(r["counts"] == {"added": 0, "changed": 0, "removed": 0} for r in noop), noop
        changed = []
        for round_ in range(args.repeat):
            change(path, round_ + int(time.time()))
            changed.append(run_child("change", path))
            settle(path)
        assert all(r["counts"]["changed"] == CHANGE for r in changed), changed
        for name, runs in (("no-op", noop), ("1,000-change", changed)):
            seconds = statistics.median(r["seconds"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            print(f"{n:>12,} samples  fresh process, first {name:12} resolve {seconds:7.4f} s  (CPU {cpu:.4f} s)")
        print(f"{'':>12}  imported during the first resolve: {noop[0]['late_imports'] or 'nothing'}")


def build(repeat: int) -> None:
    """``strata build`` overhead per batch, wall and CPU (``bench/bridge.py``)."""
    sys.path.insert(0, str(HERE.parent))
    import bridge

    bridge.WORK.mkdir(parents=True, exist_ok=True)
    (bridge.WORK / "config").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "TARGET_"))}
    overhead = bridge.build_overhead(100_000, env, repeat)
    print(
        f"build 100,000 samples: one batch {overhead['one batch']:.3f} s, batches of 1,000 "
        f"{overhead['batches of 1000']:.3f} s, overhead per batch {overhead['overhead per batch'] * 1000:.1f} ms "
        f"(CPU {overhead['CPU per batch'] * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
