"""Ingest benchmark: the bare `tap | target` pipe, `strata run` and `meltano run`, side by side.

All three move the same generated JSONL file through the same real Singer plugins from PyPI,
tap-jsonl 0.3.1 -> target-jsonl 0.1.4, in one throwaway project (bench/.work/ingest/project)
whose `meltano.yml` both strata and Meltano read:

    pipe     sh -c 'tap-jsonl --config c.json --catalog catalog.json | target-jsonl --config t.json'
             with the executables strata installed (.strata/plugins/...), so the plugin code is
             the very code strata runs; the catalog is the tap's discovery with every stream and
             property selected (what `select: *.*` gives)
    strata   .venv/bin/strata run tap-jsonl target-jsonl --state-id-suffix S
    meltano  bench/.venvs/meltano/bin/meltano run --state-id-suffix S tap-jsonl target-jsonl

Meltano installs the same pip_urls into .meltano/ (the bench checks that both resolved the same
distributions) and gets its plugins' bytecode compiled, as strata's installer does.

Phases:
1. warm-up: one untimed run of each on a 1,000-record file, so both tools discover and cache
   the catalog and create their databases. The tap's config (`path: data/input.jsonl`, a
   symlink to the current input) never changes, so the cached catalogs stay valid throughout.
2. nothing new: the state the warm-up pipe ended with is stored for the state id
   `dev:tap-jsonl-to-target-jsonl:noop` (`strata state set`, `meltano state set`) and handed to
   the pipe with `--state`, and the input becomes an empty file. (tap-jsonl 0.3.1 cannot skip
   an unchanged file: it looks its bookmark up under `_sdc_last_modified` while the SDK stores
   it as `replication_key_value`, so it re-reads every file whatever the state says.) Each tool
   thus does what an incremental run with nothing new does: start, hand over the state, run
   both plugins, store the state the target prints. The fixed cost is a tool's median minus
   the pipe's.
3. full loads at each size: every timed run gets a fresh state id suffix (so it loads
   everything; the catalog stays cached), `repeat` rounds, the order of the three tools rotated
   each round so drift hits all alike. Every run's output is checked to hold exactly N records.

Per run: wall seconds; CPU seconds of the whole process tree (RUSAGE_CHILDREN delta); the
orchestrator's peak RSS (VmHWM of strata's / Meltano's own process, or the pipe's `sh`,
polled from /proc every 20 ms for 5 s, then every 100 ms) and its own CPU (the last /proc
sample, so up to one interval short); the CPU everything else on the machine used meanwhile.
Tables show medians.

Targets (SPEC section 7), each PASS/MISS:
  strata wall <= pipe wall + 3 % at each size;   strata wall < Meltano wall at each size;
  memory flat: strata's peak RSS at every size <= its nothing-new peak + 10 MB;
  nothing-new fixed cost: strata median - pipe median <= 0.15 s.

Usage:  python bench/ingest.py [--sizes 100000,1000000] [--repeat N] [--noop-repeat N] [--json PATH]
Default repeats: 5 for sizes up to 200k records, 3 above. Exits 0 even when a target is missed;
1 if a setup step or a benchmarked command fails (or loads the wrong number of records).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from subprocess import DEVNULL, STDOUT
from typing import Any

from startup import (
    MELTANO,
    MELTANO_VERSION,
    QUIET_ENV,
    REPO,
    STRATA,
    STRATA_PYTHON,
    WORK,
    BenchError,
    Env,
    ensure_meltano,
    run_checked,
)

TAP_PIP_URL = "tap-jsonl==0.3.1"
TARGET_PIP_URL = "target-jsonl==0.1.4"
TAP, TARGET, STREAM = "tap-jsonl", "target-jsonl", "rows"
TOOLS = ("pipe", "strata", "meltano")
NOOP_SUFFIX = "noop"
STATE_ID_BASE = f"dev:{TAP}-to-{TARGET}"

TARGET_WALL_OVERHEAD = 0.03
TARGET_NOOP_SECONDS = 0.15
FLAT_MB = 10.0
NOISY_SHARE = 0.05

HERE = WORK / "ingest"
PROJECT = HERE / "project"
DATA = HERE / "data"
PIPE_DIR = PROJECT / "pipe"
LOGS = HERE / "logs"
INPUT_LINK = PROJECT / "data" / "input.jsonl"
OUTPUT = PROJECT / "out" / f"{STREAM}.jsonl"
WARMUP_RECORDS = 1000
POLL_SECONDS = 0.02
POLL_FAST_FOR = 5.0
POLL_SLOW = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TAP_CONFIG = {"path": "data/input.jsonl", "stream_name": STREAM, "primary_keys": ["id"]}
TARGET_CONFIG = {"destination_path": "out", "do_timestamp_file": False}

# `namespace` makes both plugins custom for Meltano (no Hub lookup); the settings are declared
# so that config, .env and environment variables apply to them in both tools.
PROJECT_YAML = f"""\
send_anonymous_usage_stats: false
project_id: strata-ingest-bench
default_environment: dev
environments: [{{name: dev}}]
plugins:
  extractors:
    - name: {TAP}
      namespace: tap_jsonl
      pip_url: {TAP_PIP_URL}
      executable: {TAP}
      capabilities: [discover, catalog, state]
      settings: [{{name: path}}, {{name: stream_name}}, {{name: primary_keys, kind: array}}]
      config: {json.dumps(TAP_CONFIG)}
  loaders:
    - name: {TARGET}
      namespace: target_jsonl
      pip_url: {TARGET_PIP_URL}
      executable: {TARGET}
      settings: [{{name: destination_path}}, {{name: do_timestamp_file, kind: boolean}}]
      config: {json.dumps(TARGET_CONFIG)}
"""


@dataclass
class Sample:
    """One timed run."""

    wall: float
    cpu: float
    rss_mb: float
    own_cpu: float
    other_cpu: float  # CPU the rest of the machine used meanwhile: noise, should be ~0


@dataclass
class Series:
    """All runs of one tool in one phase."""

    samples: list[Sample] = field(default_factory=list)

    def median(self, name: str) -> float:
        values: list[float] = [getattr(s, name) for s in self.samples]
        return statistics.median(values)

    def spread(self, name: str) -> float:
        """Half the range of the runs, relative to their median (the noise between runs)."""
        values: list[float] = [getattr(s, name) for s in self.samples]
        return (max(values) - min(values)) / 2 / statistics.median(values)

    def as_json(self) -> dict[str, Any]:
        names = ("wall", "cpu", "rss_mb", "own_cpu", "other_cpu")
        return {"median": {n: self.median(n) for n in names}, "samples": [asdict(s) for s in self.samples]}


Phase = dict[str, Series]  # tool -> its runs


@dataclass
class Verdict:
    """One target, met or missed."""

    name: str
    value: str
    target: str
    passed: bool


# -- measuring -------------------------------------------------------------------------------


class _Poller(threading.Thread):
    """Samples a process's peak RSS (VmHWM) and own CPU time from /proc until told to stop."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.hwm_kb = 0
        self.cpu = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while True:
            self.sample()
            # Start-up is where a short run spends its time; later on, sample less to stay out of the way.
            slow = time.monotonic() - started > POLL_FAST_FOR
            if self.stop.wait(POLL_SLOW if slow else POLL_SECONDS):
                return

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:  # gone (reaped) between two samples
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):  # absent once the process is a zombie
                self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
        fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
        self.cpu = max(self.cpu, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)  # utime, stime


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> float:
    """CPU seconds all processes on the machine have used since boot (all cores)."""
    with Path("/proc/stat").open() as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def measure(cmd: list[str], env: Env, log: Path) -> Sample:
    """Run ``cmd`` in the project, output to ``log``; raise if it fails."""
    tree_before, self_before, busy_before = (
        _cpu_seconds(resource.RUSAGE_CHILDREN),
        _cpu_seconds(resource.RUSAGE_SELF),
        _machine_busy(),
    )
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdin=DEVNULL, stdout=out, stderr=STDOUT)
        poller = _Poller(proc.pid)
        poller.start()
        code = proc.wait()
        wall = time.perf_counter() - start
    poller.stop.set()
    poller.join()
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - tree_before
    busy = _machine_busy() - busy_before
    other = max(0.0, busy - cpu - (_cpu_seconds(resource.RUSAGE_SELF) - self_before))
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BenchError(f"{shlex.join(cmd)} exited {code}; last lines of {log}:\n" + "\n".join(tail))
    return Sample(wall, cpu, poller.hwm_kb / 1024, poller.cpu, other)


# -- the project -----------------------------------------------------------------------------


def plugin_bin(tool: str, kind: str, name: str) -> Path:
    """Where a tool installed a plugin's venv (strata: the `current` install)."""
    if tool == "strata":
        return PROJECT / ".strata" / "plugins" / kind / name / "current" / "bin"
    return PROJECT / ".meltano" / kind / name / "venv" / "bin"


def distributions(venv_bin: Path) -> list[str]:
    """The `name-version` of every distribution installed in a plugin venv."""
    found = sorted(venv_bin.parent.glob("lib/python*/site-packages/*.dist-info"))
    return [p.name.removesuffix(".dist-info") for p in found]


def setup_project(env: Env) -> list[str]:
    """Write the project, install the plugins with both tools; return warnings (if any)."""
    for path in (PROJECT / "data", PROJECT / "out", PIPE_DIR, DATA, LOGS):
        path.mkdir(parents=True, exist_ok=True)
    (PROJECT / "meltano.yml").write_text(PROJECT_YAML)
    print("installing the plugins with strata and with Meltano ...", file=sys.stderr)
    run_checked([str(STRATA), "install"], PROJECT, env)
    run_checked([str(MELTANO), "install"], PROJECT, env)
    warnings = []
    for kind, name in (("extractors", TAP), ("loaders", TARGET)):
        meltano_bin = plugin_bin("meltano", kind, name)
        # strata's installer compiles bytecode; with PYTHONDONTWRITEBYTECODE set, Meltano's
        # plugins would otherwise compile every module again on every start.
        run_checked([str(meltano_bin / "python"), "-m", "compileall", "-q", str(meltano_bin.parent / "lib")], REPO, env)
        ours, theirs = distributions(plugin_bin("strata", kind, name)), distributions(meltano_bin)
        if ours != theirs:
            diff = sorted(set(ours) ^ set(theirs))
            warnings.append(f"{name}: strata and Meltano installed different distributions: {diff}")
    (PIPE_DIR / "c.json").write_text(json.dumps(TAP_CONFIG))
    (PIPE_DIR / "t.json").write_text(json.dumps(TARGET_CONFIG))
    return warnings


def write_input(records: int) -> Path:
    """A deterministic JSONL file of ``records`` rows (kept between runs of the bench)."""
    path = DATA / f"{STREAM}-{records}.jsonl"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for start in range(0, records, 10_000):
            lines = (
                json.dumps(
                    {
                        "id": i,
                        "name": f"user-{i}",
                        "score": round(i * 0.37 % 1000, 3),
                        "active": i % 3 != 0,
                        "created_at": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                    }
                )
                for i in range(start, min(start + 10_000, records))
            )
            out.write("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def point_input(path: Path) -> None:
    """Make data/input.jsonl (the tap's configured path) point at ``path``."""
    INPUT_LINK.unlink(missing_ok=True)
    INPUT_LINK.symlink_to(path)


def pipe_catalog(env: Env) -> None:
    """The tap's own discovery with every stream and property selected, for the bare pipe."""
    tap = plugin_bin("strata", "extractors", TAP) / TAP
    cmd = [str(tap), "--config", str(PIPE_DIR / "c.json"), "--discover"]
    proc = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} exited {proc.returncode}\n{proc.stderr[-2000:]}")
    catalog = json.loads(proc.stdout)
    for stream in catalog["streams"]:
        for entry in stream.get("metadata", []):
            if entry.get("metadata", {}).get("inclusion") != "unsupported":
                entry.setdefault("metadata", {})["selected"] = True
    (PIPE_DIR / "catalog.json").write_text(json.dumps(catalog))


def command(tool: str, suffix: str) -> list[str]:
    """The command line of one run; the pipe keeps the target's stdout (its states)."""
    if tool == "strata":
        return [str(STRATA), "run", TAP, TARGET, "--state-id-suffix", suffix]
    if tool == "meltano":
        return [str(MELTANO), "run", "--state-id-suffix", suffix, TAP, TARGET]
    tap = plugin_bin("strata", "extractors", TAP) / TAP
    target = plugin_bin("strata", "loaders", TARGET) / TARGET
    state = ["--state", "pipe/state.json"] if suffix == NOOP_SUFFIX else []
    tap_cmd = shlex.join([str(tap), "--config", "pipe/c.json", "--catalog", "pipe/catalog.json", *state])
    target_cmd = shlex.join([str(target), "--config", "pipe/t.json"])
    script = f"{tap_cmd} 2>pipe/tap.log | {target_cmd} >pipe/states.out 2>pipe/target.log"
    return ["/bin/sh", "-c", script]


def output_records() -> int:
    """Lines target-jsonl wrote (0 when it wrote no file)."""
    if not OUTPUT.exists():
        return 0
    count = 0
    with OUTPUT.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def run_once(tool: str, suffix: str, expected: int, env: Env) -> Sample:
    """One run of ``tool`` on an empty output directory; check it loaded ``expected`` records."""
    OUTPUT.unlink(missing_ok=True)
    sample = measure(command(tool, suffix), env, LOGS / f"{tool}-{suffix}.log")
    got = output_records()
    if got != expected:
        raise BenchError(f"{tool} (state id suffix {suffix}) loaded {got} records, expected {expected}")
    return sample


def interleaved(phase: Phase, rounds: int, suffix: str, expected: int, env: Env) -> None:
    """``rounds`` runs of every tool, the order rotated each round."""
    for i in range(rounds):
        order = TOOLS[i % len(TOOLS) :] + TOOLS[: i % len(TOOLS)]
        for tool in order:
            run_suffix = suffix if suffix == NOOP_SUFFIX else f"{suffix}r{i}"
            sample = run_once(tool, run_suffix, expected, env)
            phase[tool].samples.append(sample)
            print(f"  {suffix} round {i + 1}/{rounds} {tool:<8} {sample.wall:8.2f} s", file=sys.stderr)


def warm_up_and_seed(env: Env) -> None:
    """Discover and cache catalogs (untimed); store the warm-up pipe's final state for `noop`."""
    point_input(write_input(WARMUP_RECORDS))
    pipe_catalog(env)
    for tool in TOOLS:
        run_once(tool, "warmup", WARMUP_RECORDS, env)
    lines = [ln for ln in (PIPE_DIR / "states.out").read_text().splitlines() if ln.strip()]
    if not lines:
        raise BenchError("the warm-up pipe's target printed no state; cannot set up the nothing-new case")
    state = json.loads(lines[-1])
    (PIPE_DIR / "state.json").write_text(json.dumps(state))
    stored = json.dumps({"singer_state": state})
    state_id = f"{STATE_ID_BASE}:{NOOP_SUFFIX}"
    run_checked([str(STRATA), "state", "set", state_id, stored], PROJECT, env)
    run_checked([str(MELTANO), "state", "set", "--force", state_id, stored], PROJECT, env)


# -- the report ------------------------------------------------------------------------------


def verdicts(sizes: dict[int, Phase], noop: Phase) -> list[Verdict]:
    """Every SPEC target, with the measured value."""
    out = []
    fixed = noop["strata"].median("wall") - noop["pipe"].median("wall")
    for n, phase in sizes.items():
        pipe, strata, meltano = (phase[t].median("wall") for t in TOOLS)
        over = strata / pipe - 1
        # The fixed cost alone predicts the overhead; the spread says how much the runs disagree.
        noise = max(phase["pipe"].spread("wall"), phase["strata"].spread("wall"))
        value = f"{over:+.1%} (runs vary ±{noise:.1%}; fixed cost alone {fixed / pipe:+.1%})"
        out.append(Verdict(f"{n:,} records: strata wall over pipe", value, "<= +3 %", over <= TARGET_WALL_OVERHEAD))
        ratio = strata / meltano
        out.append(Verdict(f"{n:,} records: strata / Meltano wall", f"{ratio:.3f}", "< 1", ratio < 1))
    base = noop["strata"].median("rss_mb")
    peak = max(phase["strata"].median("rss_mb") for phase in sizes.values())
    growth = peak - base
    value = f"{peak:.1f} MB vs {base:.1f} MB nothing-new ({growth:+.1f} MB)"
    out.append(Verdict("strata peak RSS flat", value, f"<= +{FLAT_MB:.0f} MB", growth <= FLAT_MB))
    out.append(Verdict("nothing new: strata over pipe", f"{fixed:+.3f} s", "<= +0.15 s", fixed <= TARGET_NOOP_SECONDS))
    return out


def noise_warnings(phases: dict[str, Phase]) -> list[str]:
    """A warning per phase in which other processes took a noticeable share of the CPU."""
    out = []
    for name, phase in phases.items():
        samples = [s for series in phase.values() for s in series.samples]
        busy = [s for s in samples if s.other_cpu > NOISY_SHARE * s.wall]
        if busy:
            worst = max(s.other_cpu / s.wall for s in busy)
            out.append(
                f"{name}: other processes used over {NOISY_SHARE:.0%} of a core during {len(busy)} of "
                f"{len(samples)} runs (up to {worst:.0%}); rerun on a quiet machine for clean figures"
            )
    return out


def print_phase(title: str, phase: Phase) -> None:
    """One block of the table: medians per tool, overheads against the pipe."""
    pipe_wall, pipe_cpu = phase["pipe"].median("wall"), phase["pipe"].median("cpu")
    print(f"\n{title} ({len(phase['pipe'].samples)} interleaved runs each, medians)")
    head = ("tool", "wall s", "±", "vs pipe", "tree CPU s", "vs pipe", "orch RSS MB", "orch CPU s", "other CPU s")
    print("{:<8} {:>9} {:>6} {:>16} {:>11} {:>16} {:>12} {:>11} {:>12}".format(*head))
    for tool in TOOLS:
        s = phase[tool]
        wall, cpu = s.median("wall"), s.median("cpu")
        dwall = f"{wall - pipe_wall:+.2f} {wall / pipe_wall - 1:+.1%}" if tool != "pipe" else ""
        dcpu = f"{cpu - pipe_cpu:+.2f} {cpu / pipe_cpu - 1:+.1%}" if tool != "pipe" else ""
        rss, own, other = s.median("rss_mb"), s.median("own_cpu"), s.median("other_cpu")
        spread = f"{s.spread('wall'):.1%}"
        head_cols = f"{tool:<8} {wall:>9.3f} {spread:>6} {dwall:>16} {cpu:>11.2f} {dcpu:>16}"
        print(f"{head_cols} {rss:>12.1f} {own:>11.2f} {other:>12.2f}")
    strata, meltano = phase["strata"], phase["meltano"]
    ratios = (
        f"strata/pipe wall {strata.median('wall') / pipe_wall:.3f}, "
        f"strata/meltano wall {strata.median('wall') / meltano.median('wall'):.3f}, "
        f"CPU {strata.median('cpu') / meltano.median('cpu'):.3f}, "
        f"orch RSS {strata.median('rss_mb') / meltano.median('rss_mb'):.3f}"
    )
    print(ratios)


def print_report(sizes: dict[int, Phase], noop: Phase, results: list[Verdict], warnings: list[str]) -> None:
    """The tables, then every target with PASS/MISS."""
    print(f"Ingest: {TAP_PIP_URL} -> {TARGET_PIP_URL}; pipe vs strata vs Meltano {MELTANO_VERSION}")
    print("orch = the orchestrator's own process (the pipe's: sh); tree CPU includes the plugins;")
    print("± = half the range of the runs over their median; other = CPU used meanwhile by everything")
    print("else on the machine (noise; should be near 0)")
    print_phase("nothing new (state in place, empty input file)", noop)
    for n, phase in sizes.items():
        print_phase(f"{n:,} records", phase)
    print("\ntargets (SPEC section 7)")
    for v in results:
        print(f"  {v.name:<40} {v.value:<50} {v.target:<10} {'PASS' if v.passed else 'MISS'}")
    for warning in warnings:
        print(f"warning: {warning}")


def write_json(path: Path, sizes: dict[int, Phase], noop: Phase, results: list[Verdict], warnings: list[str]) -> None:
    """Every sample, the medians and the verdicts."""
    data = {
        "plugins": {"tap": TAP_PIP_URL, "target": TARGET_PIP_URL},
        "meltano_version": MELTANO_VERSION,
        "noop": {tool: series.as_json() for tool, series in noop.items()},
        "sizes": {str(n): {tool: s.as_json() for tool, s in phase.items()} for n, phase in sizes.items()},
        "targets": [asdict(v) for v in results],
        "warnings": warnings,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="bare pipe vs strata run vs meltano run")
    parser.add_argument("--sizes", default="100000,1000000", help="record counts, comma-separated")
    parser.add_argument("--repeat", type=int, help="timed runs per tool and size (default 5 up to 200k, else 3)")
    parser.add_argument("--noop-repeat", type=int, default=10, help="timed nothing-new runs per tool")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every sample and verdict here")
    opts = parser.parse_args(argv)
    try:
        opts.sizes = [int(s) for s in opts.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes integers, e.g. 100000,1000000")
    if not opts.sizes or min(opts.sizes) < 1:
        parser.error("--sizes needs at least one positive record count")
    if (opts.repeat is not None and opts.repeat < 1) or opts.noop_repeat < 1:
        parser.error("repeats must be at least 1")
    return opts


def bench(opts: argparse.Namespace, env: Env) -> tuple[dict[int, Phase], Phase, list[str]]:
    """Set everything up, then run the phases."""
    ensure_meltano(env)
    run_checked([str(STRATA_PYTHON), "-m", "compileall", "-q", str(REPO / "src")], REPO, env)
    warnings = setup_project(env)
    warm_up_and_seed(env)
    noop: Phase = {tool: Series() for tool in TOOLS}
    point_input(write_input(0))
    interleaved(noop, opts.noop_repeat, NOOP_SUFFIX, 0, env)
    sizes: dict[int, Phase] = {}
    for n in opts.sizes:
        print(f"{n:,} records: writing the input ...", file=sys.stderr)
        point_input(write_input(n))
        sizes[n] = {tool: Series() for tool in TOOLS}
        rounds = opts.repeat or (5 if n <= 200_000 else 3)
        interleaved(sizes[n], rounds, f"n{n}", n, env)
    OUTPUT.unlink(missing_ok=True)  # up to a few hundred MB
    warnings += noise_warnings({"nothing new": noop} | {f"{n:,} records": p for n, p in sizes.items()})
    return sizes, noop, warnings


def main(argv: list[str] | None = None) -> int:
    """Benchmark, print the table and the verdicts; optionally write JSON."""
    opts = parse_args(argv)
    if not STRATA.exists():
        print(f"error: {STRATA} not found: run `make install` (or `uv sync`) first", file=sys.stderr)
        return 2
    env = {**os.environ, **QUIET_ENV}
    try:
        sizes, noop, warnings = bench(opts, env)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results = verdicts(sizes, noop)
    print_report(sizes, noop, results, warnings)
    if opts.json is not None:
        write_json(opts.json, sizes, noop, results, warnings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
