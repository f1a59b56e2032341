"""Bridge benchmark: target-strata's load rate against target-jsonl and target-duckdb; build overhead.

1. Load rate. One generated Singer stream (``--records`` records, 8 properties, one SCHEMA and
   a STATE every 10 000 records) is piped from a file into each target, each in a fresh
   directory; wall seconds and records/s, median of ``--repeat`` runs:

   - ``target-strata`` (strata's built-in loader, into the default DuckDB store);
   - ``target-strata`` again on the same input with the store in place (nothing changed:
     every record is hashed and compared, no row written);
   - ``target-jsonl==0.1.4`` and ``target-duckdb==0.8.0`` from PyPI, installed by
     ``strata install`` into a bench project (same input, their own venvs).

   Target (SPEC section 7): target-strata >= 200k records/s.

2. Build overhead per batch. ``strata build`` of one feature whose compute is a cheap column
   copy over ``--build-samples`` samples, once with one batch and once with batches of 1 000
   samples; overhead per batch = (many - one) / (batches - 1).

3. Where target-strata's time goes: the CPU seconds of the process (user + system, on both
   cores; unlike wall time, barely changed by other work on the machine) and the phase seconds
   its last stderr line reports (opening, reading records, hashing + comparing + writing),
   median per phase of the timed runs; the rest of the wall time is start-up and exit.

Usage:  python bench/bridge.py [--records N] [--repeat N] [--build-samples N] [--strata-only] [--run-id ID]
                               [--json PATH]

``--strata-only`` times target-strata alone (no target-jsonl, target-duckdb or build part), for
quick iterations; the default runs everything. ``--run-id`` loads as a ``strata run`` does
(``STRATA_RUN_ID`` set): each row also carries the run's id and the stream (what ``strata why``
reads), so the two can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work" / "bridge"
BIN = REPO / ".venv" / "bin"
STRATA = BIN / "strata"
TARGET_STRATA = BIN / "target-strata"
RATE_TARGET = 200_000

PROJECT = """\
version: 1
project_id: bench-bridge
plugins:
  loaders:
    - name: target-jsonl
      pip_url: target-jsonl==0.1.4
    - name: target-duckdb
      pip_url: target-duckdb==0.8.0
"""

BUILD_FEATURES = """
import polars as pl
import strata as st


class Copy(st.Feature, spec=st.FeatureSpec("copy", id_columns=["id"], deps=["items"],
        fields=[st.FieldSpec("value", deps=[st.FieldDep("items", ["name"])])])):
    batch_size = {batch}

    def compute(self, inputs):
        return inputs["items"].select("id", pl.col("name").alias("value"))
"""


def messages(path: Path, records: int) -> None:
    """A Singer stream with ids from 1 (target-duckdb 0.8.0 drops a row whose key is 0)."""
    schema = {
        "type": "SCHEMA",
        "stream": "items",
        "key_properties": ["id"],
        "schema": {
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": ["null", "string"]},
                "email": {"type": ["null", "string"]},
                "score": {"type": ["null", "number"]},
                "active": {"type": ["null", "boolean"]},
                "city": {"type": ["null", "string"]},
                "visits": {"type": ["null", "integer"]},
                "updated_at": {"type": ["null", "string"], "format": "date-time"},
            }
        },
    }
    with path.open("w") as out:
        out.write(json.dumps(schema) + "\n")
        for i in range(1, records + 1):
            record = {
                "id": i,
                "name": f"name {i}",
                "email": f"user{i}@example.org",
                "score": i * 0.25,
                "active": i % 3 == 0,
                "city": ("Lisbon", "Oslo", "Quito", "Perth")[i % 4],
                "visits": i % 97,
                "updated_at": "2026-01-01T00:00:00Z",
            }
            out.write(json.dumps({"type": "RECORD", "stream": "items", "record": record}) + "\n")
            if i % 10_000 == 0:
                out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"items": {"id": i}}}}) + "\n")


def timed(
    argv: list[str], stdin: Path, cwd: Path, env: dict[str, str], phases: list[dict[str, float]] | None = None
) -> float:
    """Seconds one command takes with ``stdin`` as its input; exits on failure.

    ``phases``: gets the phase seconds of target-strata's last stderr line appended, and the
    CPU seconds (user + system) the process used, which other work on the machine barely changes.

    Dirty pages of the previous run are flushed first (``os.sync``), so no target pays for the
    writeback of another's output when it commits.
    """
    os.sync()
    with stdin.open("rb") as handle:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, stdin=handle, cwd=cwd, env=env, capture_output=True, check=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{tail}")
    if phases is not None:
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        phases.append({"CPU": cpu, **phase_seconds(done.stderr.decode(errors="replace"))})
    return seconds


def phase_seconds(stderr: str) -> dict[str, float]:
    """``{"opening": s, "reading records": s, ...}`` from target-strata's summary line (its last)."""
    lines = stderr.strip().splitlines()
    summary = lines[-1].split(": ", 2)[-1] if lines else ""
    parts = (re.fullmatch(r"([0-9.]+) s (.+)", part) for part in re.split(r", (?=[0-9.]+ s )", summary))
    return {match[2]: float(match[1]) for match in parts if match}


def fresh_project(path: Path, text: str = "version: 1\nproject_id: bench\n") -> Path:
    """An empty directory with a project file."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "strata.yml").write_text(text)
    return path


def load_rates(
    records: int, repeat: int, env: dict[str, str], *, strata_only: bool = False
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]]]:
    """Median seconds and records/s per target on the same input; target-strata's median phases per load."""
    data = WORK / f"items-{records}.jsonl"
    if not data.exists():
        messages(data, records)
    config = WORK / "config"
    config.mkdir(exist_ok=True)
    exe = None if strata_only else plugin_executables(env)
    names = ["target-strata", "target-strata (no change)"] + ([] if strata_only else ["target-jsonl", "target-duckdb"])
    times: dict[str, list[float]] = {name: [] for name in names}
    phases: dict[str, list[dict[str, float]]] = {name: [] for name in names[:2]}
    for _ in range(repeat):
        project = fresh_project(WORK / "strata-project")
        cfg = config / "strata.json"
        cfg.write_text("{}")
        run_env = {**env, "STRATA_PROJECT_ROOT": str(project)}
        for name in names[:2]:
            argv = [str(TARGET_STRATA), "--config", str(cfg)]
            times[name].append(timed(argv, data, project, run_env, phases[name]))
        if exe is None:
            continue
        out = WORK / "jsonl-out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cfg = config / "jsonl.json"
        cfg.write_text(json.dumps({"destination_path": str(out), "do_timestamp_file": False}))
        times["target-jsonl"].append(timed([exe("target-jsonl"), "--config", str(cfg)], data, WORK, env))
        db = WORK / "target.duckdb"
        db.unlink(missing_ok=True)
        cfg = config / "duckdb.json"
        cfg.write_text(json.dumps({"filepath": str(db), "default_target_schema": "main"}))
        times["target-duckdb"].append(timed([exe("target-duckdb"), "--config", str(cfg)], data, WORK, env))
    rates = {
        name: {
            "seconds": statistics.median(values),
            "records_per_second": records / statistics.median(values),
            "runs": values,
        }
        for name, values in times.items()
    }
    medians = {
        name: {phase: statistics.median(run.get(phase, 0.0) for run in runs) for phase in runs[0]}
        for name, runs in phases.items()
        if runs
    }
    return rates, medians


def plugin_executables(env: dict[str, str]) -> Callable[[str], str]:
    """Install target-jsonl and target-duckdb into the bench project; a name -> its executable."""
    plugins = WORK / "plugins"
    if not (plugins / "strata.yml").exists():
        fresh_project(plugins, PROJECT)
    done = subprocess.run([str(STRATA), "install"], cwd=plugins, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"strata install failed:\n{done.stderr}")
    venvs = plugins / ".strata" / "plugins" / "loaders"

    def exe(name: str) -> str:
        current = next(p for p in (venvs / name).iterdir() if p.name.startswith("v-") and p.is_dir())
        link = venvs / name / "current"
        return str((link if link.exists() else current) / "bin" / name)

    return exe


def build_overhead(samples: int, env: dict[str, str], repeat: int = 3) -> dict[str, float]:
    """Median seconds of `strata build` with one batch and with batches of 1 000 (fresh store each run).

    Also the overhead per batch in CPU seconds of the build process (user + system), which
    other work on the machine barely changes.
    """
    data = WORK / f"items-{samples}.jsonl"
    if not data.exists():
        messages(data, samples)
    out: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for label, batch in (("one batch", samples), ("batches of 1000", 1000)):
        runs, cpu_runs = [], []
        for _ in range(repeat):
            project = fresh_project(
                WORK / f"build-{batch}", "version: 1\nproject_id: b\nfeatures: {entrypoints: [feats]}\n"
            )
            (project / "feats.py").write_text(BUILD_FEATURES.format(batch=batch))
            (WORK / "config" / "strata.json").write_text("{}")
            run_env = {**env, "STRATA_PROJECT_ROOT": str(project)}
            timed([str(TARGET_STRATA), "--config", str(WORK / "config" / "strata.json")], data, project, run_env)
            os.sync()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                [str(STRATA), "build", "--workers", "1"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"strata build failed:\n{done.stderr}")
            runs.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_runs.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        out[label] = statistics.median(runs)
        cpu[label] = statistics.median(cpu_runs)
    batches = max(1, samples // 1000 - 1)
    out["overhead per batch"] = (out["batches of 1000"] - out["one batch"]) / batches
    out["CPU per batch"] = (cpu["batches of 1000"] - cpu["one batch"]) / batches
    return out


def main() -> int:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build-samples", type=int, default=100_000)
    parser.add_argument("--strata-only", action="store_true", help="time target-strata alone (quick iterations)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--run-id", help="load as inside `strata run`: STRATA_RUN_ID set, so each row carries the run and stream"
    )
    args = parser.parse_args()
    if not TARGET_STRATA.exists():
        raise SystemExit("run `make install` first")
    WORK.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "TARGET_"))}
    if args.run_id:
        env["STRATA_RUN_ID"] = args.run_id
    rates, phases = load_rates(args.records, args.repeat, env, strata_only=args.strata_only)
    strata_rate = rates["target-strata"]["records_per_second"]
    print(f"load rate, {args.records:,} records (median of {args.repeat}):")
    print(f"  {'target':28} {'seconds':>8} {'records/s':>11} {'vs target-strata':>17}")
    for name, row in rates.items():
        ratio = row["records_per_second"] / strata_rate
        print(f"  {name:28} {row['seconds']:8.2f} {row['records_per_second']:11,.0f} {ratio:16.2f}x")
    verdict = "PASS" if strata_rate >= RATE_TARGET else "MISS"
    print(f"  target-strata >= {RATE_TARGET:,} records/s: {verdict}")
    print("target-strata's CPU seconds and wall seconds by phase (medians; the rest is start-up and exit):")
    for name, row in phases.items():
        print(f"  {name:28} " + ", ".join(f"{seconds:.2f} s {phase}" for phase, seconds in row.items()))
    if args.strata_only:
        if args.json:
            args.json.write_text(json.dumps({"records": args.records, "rates": rates, "phases": phases}, indent=2))
        return 0
    overhead = build_overhead(args.build_samples, env, args.repeat)
    print(f"build of {args.build_samples:,} samples (one cheap feature, 1 worker, median of {args.repeat}):")
    for name, seconds in overhead.items():
        print(
            f"  {name:22} {seconds * (1000 if 'per batch' in name else 1):8.3f} {'ms' if 'per batch' in name else 's'}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"records": args.records, "rates": rates, "phases": phases, "build": overhead}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
