"""strata half of the incremental feature-metadata benchmark (see README.md here).

Same graph, scenario, flags and JSON keys as ``metaxy_run.py``; run with the project's venv:

    .venv/bin/python bench/features/strata_run.py --n 100000 --store duckdb-file --workdir bench/.work/features

``--lazy``: the first pass and the delta steps resolve with ``lazy=True`` and write the
increment's parts as returned (DuckDB relations, written in place: the rows never leave DuckDB);
the delta's id sets are read between resolve and write, off the clock. Output gains ``"lazy": true``.

Extra keys: ``noop_leaf_runs`` (each of the three no-op calls; the first after the first pass
is a full comparison, later ones find the sync record), ``delta_leaf_fields`` (changed samples
per field and cause), and ``leaf_process`` (``duckdb-file`` only): the delta leaf resolve
repeated in a fresh process that only opens the store and resolves, with its own seconds and
peak RSS — the memory a CI job asking "what changed?" needs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

import strata as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: the graph is the store tests'
from tests.stores.graphs import embedding, transcript, video

ID = "sample_uid"
AUDIO_MOD, AUDIO_REM = 200, 0
FRAMES_MOD, FRAMES_REM = 200, 100
DROP_MOD, DROP_REM = 1000, 7
NEW_PER = 1000
NOOP_REPEAT = 3


def build_graph() -> st.FeatureGraph:
    """video(audio, frames) -> transcript(text <- audio) -> embedding(vector <- text, frames)."""
    graph = st.FeatureGraph()
    with graph.use():
        source = video("audio", "frames")
        embedding(transcript(source), source, source_first=True)
    return graph


def root_samples(n: int, *, delta: bool) -> pl.DataFrame:
    """Ids 0..n-1 with data versions a{i}/f{i}; with ``delta`` the README's delta applied."""
    ids = pl.int_range(0, n + (n // NEW_PER if delta else 0), dtype=pl.Int64, eager=True).alias(ID)
    i = pl.col(ID)
    audio, frames = pl.format("a{}", i), pl.format("f{}", i)
    frame = pl.DataFrame(ids)
    if delta:
        old = i < n
        frame = frame.filter(~(old & (i % DROP_MOD == DROP_REM)))
        audio = pl.when(old & (i % AUDIO_MOD == AUDIO_REM)).then(pl.format("a{}v2", i)).otherwise(audio)
        frames = pl.when(old & (i % FRAMES_MOD == FRAMES_REM)).then(pl.format("f{}v2", i)).otherwise(frames)
    return frame.with_columns(audio.alias("strata_dv__audio"), frames.alias("strata_dv__frames"))


def expected_delta(n: int) -> dict[str, dict[str, set[int]]]:
    """Exact new / stale / orphaned ids per feature after the delta."""
    audio = set(range(AUDIO_REM, n, AUDIO_MOD))
    frames = set(range(FRAMES_REM, n, FRAMES_MOD))
    new = set(range(n, n + n // NEW_PER))
    dropped = set(range(DROP_REM, n, DROP_MOD))
    return {
        "video": {"new": new, "stale": audio | frames, "orphaned": dropped},
        "transcript": {"new": new, "stale": audio, "orphaned": dropped},
        "embedding": {"new": new, "stale": audio | frames, "orphaned": dropped},
    }


def id_sets(inc: st.Increment) -> dict[str, set[int]]:
    """The increment's id sets under Metaxy's names."""
    return {
        "new": set(inc.added.to_native()[ID].to_list()),
        "stale": set(inc.changed.to_native()[ID].to_list()),
        "orphaned": set(inc.removed.to_native()[ID].to_list()),
    }


def lazy_ids(inc: st.Increment) -> dict[str, set[int]]:
    """The id sets of a lazy increment, reading only the id column of each part."""
    parts = {"new": inc.added, "stale": inc.changed, "orphaned": inc.removed}
    return {name: set(part.select(ID).collect(backend="polars")[ID].to_list()) for name, part in parts.items()}


def write_parts(store: st.DuckDBStore, key: str, inc: st.Increment, *, delete: bool = False) -> int:
    """Write a lazy increment's added and changed parts in place (and soft-delete its removed ids)."""
    written = store.write(key, inc.added) + store.write(key, inc.changed)
    if delete:
        store.delete(key, inc.removed)
    return written


def writable(inc: st.Increment) -> pl.DataFrame:
    """Added and changed rows as a user writes them back."""
    changed: pl.DataFrame = inc.changed.to_native()
    changed = changed.drop([c for c in changed.columns if c.startswith("strata_cause__")])
    added: pl.DataFrame = inc.added.to_native()
    return pl.concat([added, changed], how="vertical_relaxed")


def first_pass(store: st.DuckDBStore, samples: pl.DataFrame, *, lazy: bool, problems: list[str]) -> dict[str, float]:
    """Resolve and write each feature once; seconds per feature (resolve + write)."""
    n = len(samples)
    steps = {}
    for key in ("video", "transcript", "embedding"):
        kwargs = {"samples": samples} if key == "video" else {}
        took, inc = seconds(lambda k=key, kw=kwargs: store.resolve_update(k, lazy=lazy, **kw))
        if lazy:
            took_write, written = seconds(lambda k=key, i=inc: write_parts(store, k, i))
            if written != n:
                problems.append(f"first pass {key}: {written} rows written")
        else:
            if inc.counts() != {"added": n, "changed": 0, "removed": 0}:
                problems.append(f"first pass {key}: {inc.counts()}")
            took_write, _ = seconds(lambda k=key, i=inc: store.write(k, writable(i)))
        steps[key] = round(took + took_write, 4)
    return steps


def delta_step(store: st.DuckDBStore, key: str, *, lazy: bool, **kwargs: Any) -> tuple[float, dict[str, set[int]]]:
    """Resolve ``key`` after the delta, write new + stale (video: soft-delete the orphans); seconds and id sets."""
    took, inc = seconds(lambda: store.resolve_update(key, lazy=lazy, **kwargs))
    if lazy:
        ids = lazy_ids(inc)  # off the clock: only the check needs them
        took_write, _ = seconds(lambda: write_parts(store, key, inc, delete=key == "video"))
        return took + took_write, ids

    def write() -> None:
        store.write(key, writable(inc))
        if key == "video":
            store.delete(key, inc.removed)

    took_write, _ = seconds(write)
    return took + took_write, id_sets(inc)


def seconds(fn: Any) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def leaf_only(path: Path) -> None:
    """Open an existing store, resolve the leaf once, print seconds and peak RSS."""
    graph = build_graph()
    store_class = st.DuckDBStore  # imports DuckDB, Polars and Narwhals before the clock starts
    start = time.perf_counter()
    with store_class(path, graph=graph) as store:
        inc = store.resolve_update("embedding")
        counts = inc.counts()
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": round(elapsed, 4), "counts": counts, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> int:
    """Run the scenario and print the JSON."""
    parser = argparse.ArgumentParser(description="strata half of the feature benchmark")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--store", choices=["duckdb-file", "duckdb-memory"], default="duckdb-file")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work/features/strata"))
    parser.add_argument("--lazy", action="store_true", help="resolve lazily and write the parts in place")
    parser.add_argument("--leaf-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leaf_only:
        leaf_only(args.leaf_only)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "strata.duckdb"
    path.unlink(missing_ok=True)
    graph = build_graph()
    location = ":memory:" if args.store == "duckdb-memory" else path
    out: dict[str, Any] = {"n": args.n, "store": args.store, "strata_version": st.__version__}
    if args.lazy:
        out["lazy"] = True
    problems: list[str] = []
    first = root_samples(args.n, delta=False)
    delta = root_samples(args.n, delta=True)
    store = st.DuckDBStore(location, graph=graph)
    with store:
        steps = first_pass(store, first, lazy=args.lazy, problems=problems)
        out["first"] = round(sum(steps.values()), 4)
        out["first_steps"] = steps
        runs = []
        for _ in range(NOOP_REPEAT):
            took, inc = seconds(lambda: store.resolve_update("embedding"))
            runs.append(round(took, 4))
            if not inc.is_empty:
                problems.append(f"no-op: {inc.counts()}")
        out["noop_leaf"] = round(statistics.median(runs), 4)
        out["noop_leaf_runs"] = runs

        took_video, video_ids = delta_step(store, "video", lazy=args.lazy, samples=delta)
        took_transcript, transcript_ids = delta_step(store, "transcript", lazy=args.lazy)
        out["delta_steps"] = {"video": round(took_video, 4), "transcript": round(took_transcript, 4)}
        took, leaf_inc = seconds(lambda: store.resolve_update("embedding"))
        out["delta_leaf"] = round(took, 4)
        out["delta_leaf_fields"] = leaf_inc.changed_fields()
    if args.store == "duckdb-file":  # the same question from a fresh process (the store is closed now)
        done = subprocess.run(
            [sys.executable, __file__, "--leaf-only", str(path)], capture_output=True, text=True, check=True
        )
        out["leaf_process"] = json.loads(done.stdout)
    got = {"video": video_ids, "transcript": transcript_ids, "embedding": id_sets(leaf_inc)}
    out["delta_counts"] = {k: {part: len(ids) for part, ids in v.items()} for k, v in got.items()}
    for key, want in expected_delta(args.n).items():
        if got[key] != want:
            problems.append(f"delta {key}: {out['delta_counts'][key]}")
    for problem in problems:
        print(f"check failed: {problem}", file=sys.stderr)
    out["checks_ok"] = not problems
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
