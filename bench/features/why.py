"""``strata.why`` of one sample at 1M samples on DuckDB, against what a Metaxy user does instead.

    .venv/bin/python bench/features/why.py [--n 1000000] [--repeat 5] [--json PATH]

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
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "features" / "why"
STRATA_PY = ROOT / ".venv" / "bin" / "python"
SAMPLE = 200
sys.path[:0] = [str(HERE), str(ROOT)]


def store_path(n: int) -> Path:
    """The strata store of ``n`` samples."""
    return WORK / f"strata_{n}.duckdb"


def setup(n: int) -> dict[str, Any]:
    """The strata store: a first pass of every feature, then the root delta alone."""
    import strata_run

    import strata as st

    path = store_path(n)
    path.unlink(missing_ok=True)
    problems: list[str] = []
    with st.DuckDBStore(path, graph=strata_run.build_graph()) as store:
        strata_run.first_pass(store, strata_run.root_samples(n, delta=False), lazy=True, problems=problems)
        inc = store.resolve_update("video", samples=strata_run.root_samples(n, delta=True), lazy=True)
        strata_run.write_parts(store, "video", inc, delete=True)
    return {"n": n, "problems": problems}


def lookups(n: int, repeat: int) -> dict[str, Any]:
    """Open the store read-only and ask ``why`` of the sample ``repeat`` times; check the answer."""
    import strata_run

    import strata as st

    started = time.perf_counter()
    store = st.DuckDBStore(store_path(n), graph=strata_run.build_graph(), read_only=True)
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
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--metaxy-python", help="Metaxy's venv python (default: made by metaxy_venv.py)")
    parser.add_argument("--worker", choices=["setup", "lookup"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(setup(args.n) if args.worker == "setup" else lookups(args.n, args.repeat)))
        return 0
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
    cold: dict[str, dict[str, list[float]]] = {name: {"inside": [], "process": [], "cpu": []} for name in sides}
    for _ in range(args.repeat):  # alternating: strata, Metaxy whole, Metaxy narrowed, strata, ...
        for name, cmd in sides.items():
            got, wall = _child([*cmd, "--repeat", "1"])
            inside = got["open_and_first"] if name == "strata" else got["open"] + got["seconds"][0]
            cold[name]["inside"].append(inside)
            cold[name]["process"].append(wall)
            cold[name]["cpu"].append(got["cpu"][0])
            if name == "strata" and not got["ok"]:
                sys.exit("strata's answer is not the expected one")
    warm = {name: _child([*cmd, "--repeat", str(args.repeat + 1)])[0] for name, cmd in sides.items()}
    result: dict[str, Any] = {"n": args.n, "repeat": args.repeat, "load": os.getloadavg(), "cold": {}, "warm": {}}
    for name in sides:
        result["cold"][name] = {k: median(v) for k, v in cold[name].items()}
        result["warm"][name] = {k: median(warm[name][k][1:]) for k in ("seconds", "cpu")}
    for kind in ("cold", "warm"):
        key = "inside" if kind == "cold" else "seconds"
        mine_s = result[kind]["strata"][key]
        result[kind]["ratio_whole"] = round(result[kind]["metaxy_whole"][key] / mine_s, 1)
        result[kind]["ratio_narrowed"] = round(result[kind]["metaxy_narrowed"][key] / mine_s, 1)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
