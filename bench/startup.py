"""CLI start-up benchmark: strata versus Meltano 4.4.1, side by side.

Times two commands per tool, each in a fresh throwaway project (bench/.work/startup/,
the only folder this script removes) that declares the same custom `target-jsonl` loader:

    strata --help                    vs  meltano --help
    strata config target-jsonl list  vs  meltano config list target-jsonl

Each runs once untimed (so one-off work like Meltano creating its system
database is not counted), then N times alternating strata, meltano, ... so
noise hits both alike. Reports median and min seconds, the ratio of medians,
and the targets strata median <= 0.15 s and ratio <= 0.2 (PASS/MISS).

Meltano gets its own venv, bench/.venvs/meltano, installed with uv on first
use; strata is the project venv's console script (`make install` first). Both
get their bytecode compiled before timing (PYTHONDONTWRITEBYTECODE=1 here).

Usage:  python bench/startup.py [--repeat N] [--json PATH]
Exits 0 even when a target is missed; non-zero if a command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from subprocess import DEVNULL, PIPE

MELTANO_VERSION = "4.4.1"
TARGET_SECONDS = 0.15
TARGET_RATIO = 0.2

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
"""Where every benchmark keeps its throwaway files, each in a folder of its own."""
MELTANO_VENV = BENCH / ".venvs" / "meltano"
MELTANO = MELTANO_VENV / "bin" / "meltano"
STRATA = REPO / ".venv" / "bin" / "strata"
STRATA_PYTHON = REPO / ".venv" / "bin" / "python"

Pair = tuple[list[str], list[str]]  # (strata args, meltano args)
COMMANDS: list[Pair] = [  # Meltano 4 spells it `config list PLUGIN`
    (["--help"], ["--help"]),
    (["config", "target-jsonl", "list"], ["config", "list", "target-jsonl"]),
]

PROJECT_YAML = """\
version: 1
{extra}project_id: bench
default_environment: dev
environments: [{{name: dev}}]
plugins:
  loaders:
    - name: target-jsonl
{namespace}      pip_url: target-jsonl==0.1.4
      settings: [{{name: destination_path, value: output}}, \
{{name: do_timestamp_file, kind: boolean, value: false}}]
      config: {{destination_path: out}}
"""

# Checked against meltano/core/bundle/settings.yml and core/version_check.py.
QUIET_ENV = {
    "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    "MELTANO_DISABLE_TRACKING": "true",
    "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
}


Env = dict[str, str]


class BenchError(Exception):
    """A setup step or a benchmarked command failed."""


@dataclass
class Row:
    """Timings of one command for both tools."""

    command: str
    strata_median: float
    strata_min: float
    meltano_median: float
    meltano_min: float

    @property
    def ratio(self) -> float:
        return self.strata_median / self.meltano_median

    @property
    def passes(self) -> tuple[bool, bool]:
        """Whether the strata-seconds and the ratio targets are met."""
        return self.strata_median <= TARGET_SECONDS, self.ratio <= TARGET_RATIO

    def as_json(self) -> dict[str, object]:
        fast, ratio_ok = self.passes
        extra = {"ratio": self.ratio, "strata_pass": fast, "ratio_pass": ratio_ok}
        return {**asdict(self), **extra}


def run_checked(cmd: list[str], cwd: Path, env: Env) -> None:
    """Run an untimed setup command; raise with its output if it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out = proc.stdout + proc.stderr
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}\n{out}")


def ensure_meltano(env: Env) -> None:
    """Install Meltano into its own venv unless there, then compile its bytecode."""
    if MELTANO.exists():
        return
    uv = shutil.which("uv")
    if uv is None:
        raise BenchError("`uv` is not on PATH; it is needed to install Meltano")
    pkg = f"meltano=={MELTANO_VERSION}"
    print(f"installing {pkg} in {MELTANO_VENV} ...", file=sys.stderr)
    uv_env = {**env, "UV_PYTHON_DOWNLOADS": "never"}
    python = str(MELTANO_VENV / "bin" / "python")
    venv = [uv, "venv", "--clear", "--python", "python3.11", str(MELTANO_VENV)]
    run_checked(venv, REPO, uv_env)
    run_checked([uv, "pip", "install", "--python", python, pkg], REPO, uv_env)
    site = str(MELTANO_VENV / "lib")  # holds python3.11/site-packages
    run_checked([python, "-m", "compileall", "-q", site], REPO, env)


def make_projects() -> tuple[Path, Path]:
    """Recreate the throwaway strata and Meltano projects in bench/.work/startup/, and nothing else."""
    own = WORK / "startup"
    shutil.rmtree(own, ignore_errors=True)
    strata_dir, meltano_dir = own / "strata", own / "meltano"
    strata_dir.mkdir(parents=True)
    meltano_dir.mkdir(parents=True)
    strata_yml = PROJECT_YAML.format(extra="", namespace="")
    (strata_dir / "strata.yml").write_text(strata_yml)
    # Without `namespace` Meltano takes the plugin for a Hub one and fetches
    # its definition over the network; with it, the plugin is custom.
    meltano_yml = PROJECT_YAML.format(
        extra="send_anonymous_usage_stats: false\n",
        namespace="      namespace: target_jsonl\n",
    )
    (meltano_dir / "meltano.yml").write_text(meltano_yml)
    return strata_dir, meltano_dir


def timed(cmd: list[str], cwd: Path, env: Env) -> float:
    """Wall-clock seconds of one run; raise with its stderr if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=DEVNULL, stderr=PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        raise BenchError(f"{' '.join(cmd)} (in {cwd}) exited {proc.returncode}\n{err}")
    return elapsed


def compare(pair: Pair, dirs: tuple[Path, Path], repeat: int, env: Env) -> Row:
    """Warm both tools up once, then time them alternately, `repeat` runs each."""
    strata_args, meltano_args = pair
    strata_cmd = [str(STRATA), *strata_args]
    meltano_cmd = [str(MELTANO), *meltano_args]
    timed(strata_cmd, dirs[0], env)
    timed(meltano_cmd, dirs[1], env)
    ss: list[float] = []
    ms: list[float] = []
    for _ in range(repeat):
        ss.append(timed(strata_cmd, dirs[0], env))
        ms.append(timed(meltano_cmd, dirs[1], env))
    med = statistics.median
    return Row(" ".join(strata_args), med(ss), min(ss), med(ms), min(ms))


def print_table(rows: list[Row], repeat: int) -> None:
    """Print the results with ratios and PASS/MISS against the targets."""
    mark = {True: "PASS", False: "MISS"}
    print(f"CLI start-up, {repeat} interleaved runs each (seconds: median / min)")
    print(
        f"{'command':<26} {'strata':>13} {'meltano':>13} {'ratio':>6}  strata<={TARGET_SECONDS}s  ratio<={TARGET_RATIO}"
    )
    for r in rows:
        strata = f"{r.strata_median:.3f} / {r.strata_min:.3f}"
        meltano = f"{r.meltano_median:.3f} / {r.meltano_min:.3f}"
        fast, ratio_ok = r.passes
        print(f"{r.command:<26} {strata:>13} {meltano:>13} {r.ratio:>6.3f}  {mark[fast]:<14} {mark[ratio_ok]}")


def write_json(path: Path, rows: list[Row], repeat: int) -> None:
    """Write the results as JSON."""
    results = [r.as_json() for r in rows]
    targets = {"strata_seconds": TARGET_SECONDS, "ratio": TARGET_RATIO}
    data = {"meltano_version": MELTANO_VERSION, "repeat": repeat, "targets": targets}
    path.write_text(json.dumps({**data, "results": results}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Set up both tools, time them side by side, report."""
    parser = argparse.ArgumentParser(description="strata vs Meltano CLI start-up")
    parser.add_argument("--repeat", type=int, default=10, help="runs per command")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write results here")
    opts = parser.parse_args(argv)
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not STRATA.exists():
        msg = f"{STRATA} not found: run `make install` (or `uv sync`) first"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    env = {**os.environ, **QUIET_ENV}
    try:
        ensure_meltano(env)
        # Fair to strata too: compile src with the venv's own interpreter.
        src = str(REPO / "src")
        run_checked([str(STRATA_PYTHON), "-m", "compileall", "-q", src], REPO, env)
        dirs = make_projects()
        rows = [compare(pair, dirs, opts.repeat, env) for pair in COMMANDS]
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_table(rows, opts.repeat)
    if opts.json is not None:
        write_json(opts.json, rows, opts.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
