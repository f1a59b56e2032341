"""Run the feature benchmark for strata and Metaxy side by side and print the ratios.

    python bench/features/compare.py [--n 100000 1000000] [--store duckdb-file] [--json PATH]

Metaxy 0.1.11 runs in its own venv (``metaxy_venv.py`` makes it); strata in the project venv.
Each tool runs in its own process per size, one after the other, so peak memory is per tool.
Targets (spec section 7, at 1M on DuckDB): leaf resolve after a 1 % change <= 0.5 s and
<= 500 MB, no-op resolve <= 0.1 s, first pass <= 2 s, and at least 10x faster than Metaxy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STRATA_PY = ROOT / ".venv" / "bin" / "python"


def run(python: str | Path, script: str, n: int, store: str, workdir: Path) -> dict[str, Any]:
    """One tool, one size: the JSON its script prints."""
    cmd = [str(python), str(HERE / script), "--n", str(n), "--store", store, "--workdir", str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def row(name: str, strata: float, metaxy: float, target: str = "") -> str:
    """One printed line: both figures, the speed-up and the target."""
    speedup = metaxy / strata if strata else float("inf")
    return f"  {name:<34} {strata:>9.3f} {metaxy:>9.3f} {speedup:>8.1f}x  {target}"


def main() -> int:
    """Set up Metaxy, run both tools at each size, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--store", choices=["duckdb-file", "duckdb-memory"], default="duckdb-file")
    parser.add_argument("--json", type=Path, help="write all results here")
    args = parser.parse_args()
    if not STRATA_PY.exists():
        sys.exit("the project venv is missing: run `make install` first")
    made = subprocess.run([sys.executable, str(HERE / "metaxy_venv.py")], capture_output=True, text=True, check=True)
    metaxy_py = made.stdout.strip().splitlines()[-1]
    work = ROOT / "bench" / ".work" / "features"
    results = []
    for n in args.n:
        strata = run(STRATA_PY, "strata_run.py", n, args.store, work / "strata")
        metaxy = run(metaxy_py, "metaxy_run.py", n, args.store, work / "metaxy")
        results.append({"n": n, "strata": strata, "metaxy": metaxy})
        big = n >= 1_000_000
        print(f"N = {n:,} ({args.store}); seconds unless noted       strata    metaxy  speed-up")
        print(row("first pass, 3 features", strata["first"], metaxy["first"], "target <= 2 s" if big else ""))
        print(
            row(
                "no-op leaf resolve (median of 3)",
                strata["noop_leaf"],
                metaxy["noop_leaf"],
                "target <= 0.1 s" if big else "",
            )
        )
        print(
            row(
                "1 % delta: leaf resolve",
                strata["delta_leaf"],
                metaxy["delta_leaf"],
                "target <= 0.5 s, >= 10x" if big else "",
            )
        )
        print(row("1 % delta: video step", strata["delta_steps"]["video"], metaxy["delta_steps"]["video"]))
        print(
            row("1 % delta: transcript step", strata["delta_steps"]["transcript"], metaxy["delta_steps"]["transcript"])
        )
        print(row("peak RSS, whole run (MB)", strata["peak_rss_mb"], metaxy["peak_rss_mb"]))
        leaf = strata.get("leaf_process")
        if leaf:
            print(
                f"  strata leaf resolve in a fresh process: {leaf['seconds']:.3f} s, peak {leaf['peak_rss_mb']:.0f} MB"
                + ("  (target <= 500 MB)" if big else "")
            )
        print(f"  strata first no-op call right after the build: {strata['noop_leaf_runs'][0]:.3f} s")
        print(f"  exact increments: strata {strata['checks_ok']}, metaxy {metaxy['checks_ok']}\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
