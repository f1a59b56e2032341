"""The first pass of the feature benchmark alone (eager, lazy or as scale.py runs it), CPU seconds beside wall.

The graph and samples of ``strata_run.py`` (see README.md here); each feature is resolved and its
increment written, in order video, transcript, embedding:

    .venv/bin/python bench/features/first_pass.py --n 1000000 [--lazy | --relation]
        [--store duckdb-memory | sqlite-file]
        [--memory-limit 4GB] [--statements]

``--lazy`` resolves with ``lazy=True`` and writes the increment's parts as returned (DuckDB
relations of the store, written in place); without it the increment comes out as Polars frames
and goes back in as one frame per feature, as ``strata_run.py`` writes it. ``--relation`` is the
first pass of ``scale.py``: the root samples are a relation of the store's own connection over
``range(n)`` (never built in Python) and every feature is resolved lazily and written in place.
``--memory-limit`` sets DuckDB's (scale.py uses 4GB). ``--statements`` adds, per SQL statement the
store ran that took 5 ms or more, its wall and CPU seconds and its first 100 characters.

Prints one JSON object: ``first`` / ``first_steps`` (wall seconds), ``first_cpu`` /
``first_cpu_steps`` (process CPU seconds, every thread: the work done, whatever else runs on the
machine), ``peak_rss_mb`` and ``checks_ok`` (each feature got exactly N rows). The store is
dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parent))

import scale
import strata_run as bench

import strata as st

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@contextmanager
def timed_statements(log: list[dict[str, Any]]) -> Iterator[None]:
    """Record each statement the DuckDB store runs (through its ``_run``) with its wall and CPU seconds."""
    from strata.stores.duckdb import store as module

    run: Callable[..., list[tuple[Any, ...]]] = module._run  # noqa: SLF001 - the bench looks inside on purpose

    def timed(con: Any, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        wall, used = time.perf_counter(), time.process_time()
        rows = run(con, query, params)
        wall, used = time.perf_counter() - wall, time.process_time() - used
        if wall >= 0.005:  # below this a statement is bookkeeping
            log.append({"s": round(wall, 4), "cpu_s": round(used, 4), "sql": query[:100]})
        return rows

    module._run = timed  # noqa: SLF001
    try:
        yield
    finally:
        module._run = run  # noqa: SLF001


def main() -> int:
    """Run the first pass and print the JSON."""
    parser = argparse.ArgumentParser(description="first pass of the feature benchmark")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["duckdb-file", "duckdb-memory", "sqlite-file"], default="duckdb-file")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work/features/first"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lazy", action="store_true")
    mode.add_argument("--relation", action="store_true")
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--statements", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / ("first.sqlite" if args.store == "sqlite-file" else "first.duckdb")
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    lazy = args.lazy or args.relation
    samples = None if args.relation else bench.root_samples(args.n, delta=False)
    location = ":memory:" if args.store == "duckdb-memory" else path
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}
    written: dict[str, int] = {}
    statements: list[dict[str, Any]] = []
    opened: st.MetadataStore = (
        st.SQLiteStore(path, graph=bench.build_graph())
        if args.store == "sqlite-file"
        else st.DuckDBStore(location, graph=bench.build_graph())
    )
    with opened as store:
        duck = store if isinstance(store, st.DuckDBStore) else None  # --memory-limit, --relation: DuckDB's
        if args.memory_limit and duck is not None:
            duck.to_native().execute(f"SET memory_limit = '{args.memory_limit}'")
        with timed_statements(statements) if args.statements else nullcontext():
            for key in ("video", "transcript", "embedding"):
                wall, used = time.perf_counter(), time.process_time()
                kwargs: dict[str, Any] = {}
                if key == "video":
                    kwargs["samples"] = (
                        duck.to_native().sql(scale.snapshot_sql(args.n, 0)) if args.relation and duck else samples
                    )
                inc = store.resolve_update(key, lazy=lazy, **kwargs)
                if lazy:
                    written[key] = store.write(key, inc.added) + store.write(key, inc.changed)
                else:
                    written[key] = store.write(key, bench.writable(inc))
                steps[key] = round(time.perf_counter() - wall, 4)
                cpu[key] = round(time.process_time() - used, 4)
    path.unlink(missing_ok=True)
    out = {
        "n": args.n,
        "store": args.store,
        "lazy": lazy,
        "relation": args.relation,
        "first": round(sum(steps.values()), 4),
        "first_steps": steps,
        "first_cpu": round(sum(cpu.values()), 4),
        "first_cpu_steps": cpu,
        "peak_rss_mb": bench.peak_rss_mb(),
        "checks_ok": all(count == args.n for count in written.values()),
    }
    if args.statements:
        out["statements"] = statements
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
