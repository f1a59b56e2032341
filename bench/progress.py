"""What showing progress costs a build: `strata build` with none, plain lines, and live bars.

One project in bench/.work/progress/ (the only folder this script removes): a root of N samples
and one feature computed in batches of B by a trivial ``compute``, so per-batch costs show. Each
round deletes the computed rows and builds again three ways, alternating so noise hits all
alike: ``--json`` (no reporter), stderr on a pipe (plain lines, ``LogReporter``) and stderr on a
pseudo-terminal (``rich`` bars). Reports the median wall and process CPU seconds (the build's
own, its DuckDB threads included) per way, and the load average before and after.

Usage:  python bench/progress.py [--samples N] [--batch B] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work" / "progress"
STRATA = [sys.executable, "-m", "strata"]

FEATURES = """
import polars as pl
import strata as st


class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio"])):
    pass


class Transcript(st.Feature, spec=st.FeatureSpec("transcript", deps=[Video], fields=["text"])):
    batch_size = {batch}

    def compute(self, inputs):
        return inputs[Video].select("sample_uid", pl.col("audio").alias("text"))
"""


def make_project(samples: int, batch: int) -> Path:
    """The project, its root written, nothing computed."""
    import polars as pl

    from strata.features.project import load_graph, make_store
    from strata.features.versions import sample_hash
    from strata.project.project import Project

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "feats.py").write_text(FEATURES.format(batch=batch))
    (WORK / "strata.yml").write_text("features: {entrypoints: [feats]}\n")
    audio = [f"a{i}" for i in range(samples)]
    frame = pl.DataFrame(
        {"sample_uid": range(samples), "audio": audio, "strata_dv__audio": [sample_hash("md5", [a]) for a in audio]}
    )
    project = Project(WORK)
    with make_store(project, graph=load_graph(project)) as store:
        store.write_changed("video", frame)
    shutil.copyfile(WORK / ".strata" / "metadata.duckdb", WORK / "pristine.duckdb")
    return WORK


def forget_transcripts(root: Path) -> None:
    """Put back the store as it was before the first build, so the next computes every sample again."""
    shutil.copyfile(root / "pristine.duckdb", root / ".strata" / "metadata.duckdb")


def timed(root: Path, way: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``strata build`` shown ``way``."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if way == "bars":
        leader, follower = pty.openpty()
        process = subprocess.Popen([*STRATA, "build"], cwd=root, stdout=subprocess.DEVNULL, stderr=follower, env=env)
        os.close(follower)
        drain = threading.Thread(target=_drain, args=(leader,), daemon=True)
        drain.start()
        code = process.wait()
        drain.join(timeout=10)
        os.close(leader)
    else:
        args = [*STRATA, "--json", "build"] if way == "none" else [*STRATA, "build"]
        code = subprocess.run(args, cwd=root, capture_output=True, env=env, check=False).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"strata build ({way}) exited {code}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _drain(leader: int) -> None:
    while True:
        try:
            if not os.read(leader, 65536):
                return
        except OSError:
            return


def per_call(calls: int = 100_000) -> dict[str, float]:
    """Microseconds per ``advance`` (one per batch in a build) of each reporter, stderr sent to /dev/null."""
    import contextlib
    import logging

    from strata.cli.progress import RichReporter
    from strata.progress import LOGGER, LogReporter

    logger = logging.getLogger(LOGGER)
    out: dict[str, float] = {}
    with Path(os.devnull).open("w", encoding="utf-8") as devnull, contextlib.redirect_stderr(devnull):
        logger.addHandler(logging.StreamHandler(devnull))
        logger.setLevel(logging.INFO)
        for name, reporter in (("lines", LogReporter("bench")), ("bars", RichReporter())):
            with reporter if isinstance(reporter, RichReporter) else contextlib.nullcontext():
                reporter.start("task", calls, unit="batch", items="sample")
                started = time.perf_counter()
                for _ in range(calls):
                    reporter.advance("task", items=1_000)
                out[name] = (time.perf_counter() - started) / calls * 1e6
                reporter.finish("task")
    return out


def load() -> str:
    """The load averages (1, 5, 15 minutes)."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Build three ways, round after round, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    root = make_project(options.samples, options.batch)
    ways = ["none", "lines", "bars"]
    got: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    print(f"{options.samples:,} samples in batches of {options.batch:,}; {load()}")
    for _ in range(options.rounds):
        for way in ways:
            forget_transcripts(root)
            got[way].append(timed(root, way))
    print(f"{'progress':<8} {'wall s':>8} {'cpu s':>8}   (medians of {options.rounds})")
    for way in ways:
        wall = statistics.median(w for w, _ in got[way])
        cpu = statistics.median(c for _, c in got[way])
        print(f"{way:<8} {wall:>8.2f} {cpu:>8.2f}")
    print(load())
    shutil.rmtree(WORK, ignore_errors=True)
    calls = per_call()
    print("per advance (one a batch): " + ", ".join(f"{k} {v:.1f} µs" for k, v in calls.items()))


if __name__ == "__main__":
    main()
