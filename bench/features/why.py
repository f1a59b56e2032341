"""``strata.why`` of one sample at 1M samples on DuckDB, against what a Metaxy user does instead.

    .venv/bin/python bench/features/why.py [--n 1000000] [--repeat 5] [--stores sqlite,postgres] [--json PATH]

The graph and data of ``strata_run.py`` (video -> transcript -> embedding), every feature
written for ``n`` samples, then the README's delta written at the root only, so transcript is
stale for 0.5 % of the samples (cause ``video.audio``). The sample asked for is one of them
(``sample_uid`` 200): ``why("embedding", 200)`` walks video, transcript and embedding.

Each side runs in its own processes, alternating (strata, Metaxy, strata, ...):

- *cold*: a new process per lookup; timed inside it from before the store opens to the answer
  (imports done), and the whole process as the driver sees it (interpreter start and imports);
- *warm*: one process, the store open, ``--repeat`` lookups after a first one.

Metaxy (0.1.11, ``metaxy_why.py`` in its venv) has no per-sample lookup: its user resolves each
non-root feature and filters the increment to the sample (``whole``), or passes
``global_filters`` so every read is cut to it (``narrowed``: no causes come out, only
provenance). Medians of wall seconds and of the process's CPU seconds (DuckDB's threads
included), with the load average: the machine is shared. Files under ``bench/.work/features/why/``.

``--stores`` also times strata alone on the same data in other stores (``sqlite``, ``postgres``
on a server of the bench's own, ``clickhouse`` through chDB), cold and warm as above, against
its DuckDB figure: Metaxy is compared on DuckDB only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "features" / "why"
STRATA_PY = ROOT / ".venv" / "bin" / "python"
SAMPLE = 200
sys.path[:0] = [str(HERE), str(ROOT)]


STORES = ("duckdb", "sqlite", "postgres", "clickhouse")


def open_store(kind: str, n: int, *, read_only: bool, fresh: bool = False) -> Any:
    """The strata store of ``n`` samples of ``kind`` (PostgreSQL: the server in ``STRATA_BENCH_DSN``)."""
    import shutil

    import strata_run

    import strata as st

    graph = strata_run.build_graph()
    if kind == "postgres":
        return st.PostgresStore(os.environ["STRATA_BENCH_DSN"], schema=f"why_{n}", graph=graph, read_only=read_only)
    path = WORK / f"strata_{n}.{kind}"
    if fresh:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    classes = {"duckdb": st.DuckDBStore, "sqlite": st.SQLiteStore, "clickhouse": st.ClickHouseStore}
    return classes[kind](path, graph=graph, read_only=read_only)


def setup(kind: str, n: int) -> dict[str, Any]:
    """The strata store: a first pass of every feature, then the root delta alone."""
    import strata_run

    problems: list[str] = []
    with open_store(kind, n, read_only=False, fresh=True) as store:
        lazy = kind in ("duckdb", "clickhouse")
        strata_run.first_pass(store, strata_run.root_samples(n, delta=False), lazy=lazy, problems=problems)
        inc = store.resolve_update("video", samples=strata_run.root_samples(n, delta=True), lazy=lazy)
        strata_run.write_parts(store, "video", inc, delete=True)
    return {"n": n, "problems": problems}


def lookups(kind: str, n: int, repeat: int) -> dict[str, Any]:
    """Open the store read-only and ask ``why`` of the sample ``repeat`` times; check the answer."""
    import strata_run  # noqa: F401 - imported before the clock starts, as the graph's module is by then

    import strata as st

    started = time.perf_counter()
    store = open_store(kind, n, read_only=True)
    seconds: list[float] = []
    cpu: list[float] = []
    opened = 0.0
    with store:
        for _ in range(repeat):
            wall, proc = time.perf_counter(), time.process_time()
            found = st.why(store, "embedding", {"sample_uid": SAMPLE})
            seconds.append(time.perf_counter() - wall)
            cpu.append(time.process_time() - proc)
            if not seconds[1:]:
                opened = time.perf_counter() - started
    statuses = [(str(node.feature), node.status) for node in found.samples[0].nodes]
    causes = [c.input for c in found.samples[0].nodes[1].fields[0].causes]
    ok = statuses == [("video", "present"), ("transcript", "stale"), ("embedding", "up to date")]
    return {"open_and_first": opened, "seconds": seconds, "cpu": cpu, "ok": ok and causes == ["video.audio"]}


def _child(cmd: list[str]) -> tuple[dict[str, Any], float]:
    """Run a worker; its JSON and the wall seconds of the whole process."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{cmd[1]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def _metaxy_python() -> str:
    made = subprocess.run([sys.executable, str(HERE / "metaxy_venv.py")], capture_output=True, text=True, check=True)
    return made.stdout.strip().splitlines()[-1]


def median(values: list[float]) -> float:
    """The median, rounded for the report."""
    return round(statistics.median(values), 4)


def main() -> int:
    """Set both sides up, time them alternating, print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stores", default="", help="also time strata alone in: sqlite,postgres,clickhouse")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--metaxy-python", help="Metaxy's venv python (default: made by metaxy_venv.py)")
    parser.add_argument("--worker", choices=["setup", "lookup"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=STORES, default="duckdb", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        done = setup(args.kind, args.n) if args.worker == "setup" else lookups(args.kind, args.n, args.repeat)
        print(json.dumps(done))
        return 0
    others = [k for k in args.stores.split(",") if k]
    if unknown := [k for k in others if k not in STORES[1:]]:
        sys.exit(f"unknown store {', '.join(unknown)}: give some of {', '.join(STORES[1:])}")
    WORK.mkdir(parents=True, exist_ok=True)
    # Fair to strata: its bytecode compiled, as Metaxy's venv has it (PYTHONDONTWRITEBYTECODE=1 here).
    subprocess.run([str(STRATA_PY), "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    metaxy_py = args.metaxy_python or _metaxy_python()
    mine = [str(STRATA_PY), __file__, "--n", str(args.n)]
    theirs = [metaxy_py, str(HERE / "metaxy_why.py")]
    workdir = ["--workdir", str(WORK / f"metaxy_{args.n}")]
    print(f"setting up {args.n:,} samples (strata, then Metaxy)...", file=sys.stderr)
    _child([*mine, "--worker", "setup"])
    _child([*theirs, "setup", "--n", str(args.n), *workdir])
    sides = {"strata": [*mine, "--worker", "lookup"]}
    sides |= {f"metaxy_{way}": [*theirs, "lookup", "--way", way, *workdir] for way in ("whole", "narrowed")}
    result: dict[str, Any] = {"n": args.n, "repeat": args.repeat, "load": os.getloadavg()}
    result |= timed(sides, args.repeat)
    for kind in ("cold", "warm"):
        key = "inside" if kind == "cold" else "seconds"
        mine_s = result[kind]["strata"][key]
        result[kind]["ratio_whole"] = round(result[kind]["metaxy_whole"][key] / mine_s, 1)
        result[kind]["ratio_narrowed"] = round(result[kind]["metaxy_narrowed"][key] / mine_s, 1)
    if others:
        result["stores"] = other_stores(others, mine, args.repeat, result)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def timed(sides: dict[str, list[str]], repeat: int) -> dict[str, Any]:
    """Cold lookups alternating between ``sides`` (a new process each), then warm ones: medians per side."""
    cold: dict[str, dict[str, list[float]]] = {name: {"inside": [], "process": [], "cpu": []} for name in sides}
    for _ in range(repeat):  # alternating: strata, Metaxy whole, Metaxy narrowed, strata, ...
        for name, cmd in sides.items():
            got, wall = _child([*cmd, "--repeat", "1"])
            inside = got["open_and_first"] if name.startswith("strata") else got["open"] + got["seconds"][0]
            cold[name]["inside"].append(inside)
            cold[name]["process"].append(wall)
            cold[name]["cpu"].append(got["cpu"][0])
            if name.startswith("strata") and not got["ok"]:
                sys.exit(f"{name}'s answer is not the expected one")
    warm = {name: _child([*cmd, "--repeat", str(repeat + 1)])[0] for name, cmd in sides.items()}
    result: dict[str, Any] = {"cold": {}, "warm": {}}
    for name in sides:
        result["cold"][name] = {k: median(v) for k, v in cold[name].items()}
        result["warm"][name] = {k: median(warm[name][k][1:]) for k in ("seconds", "cpu")}
    return result


def other_stores(kinds: list[str], mine: list[str], repeat: int, duckdb: dict[str, Any]) -> dict[str, Any]:
    """The cold and warm lookups of strata in each of ``kinds``, each against its DuckDB figure (``x_duckdb``)."""
    from tests.servers import postgres_bin_dir, running_postgres

    bin_dir = postgres_bin_dir() if "postgres" in kinds else None
    if "postgres" in kinds and bin_dir is None:
        sys.exit("PostgreSQL is not installed: apt-get install -y postgresql")
    out: dict[str, Any] = {}
    with running_postgres(bin_dir) if bin_dir is not None else contextlib.nullcontext(None) as server:
        if server is not None:
            os.environ["STRATA_BENCH_DSN"] = server.dsn()
        for kind in kinds:
            print(f"setting up {kind}...", file=sys.stderr)
            started = time.perf_counter()
            _child([*mine, "--kind", kind, "--worker", "setup"])
            side = f"strata_{kind}"
            got = timed({side: [*mine, "--kind", kind, "--worker", "lookup"]}, repeat)
            out[kind] = {"setup_seconds": round(time.perf_counter() - started, 1)}
            out[kind] |= {part: got[part][side] for part in ("cold", "warm")}
            out[kind]["x_duckdb"] = {
                "cold": round(got["cold"][side]["inside"] / duckdb["cold"]["strata"]["inside"], 2),
                "warm": round(got["warm"][side]["seconds"] / duckdb["warm"]["strata"]["seconds"], 2),
            }
    return out


if __name__ == "__main__":
    sys.exit(main())
