"""strata half of the feature-resolution benchmark (see bench/features/README.md).

Run with the project's venv: ``python bench/features/strata_run.py --n 100000 --store duckdb-file
--workdir DIR``. Prints one JSON object with the same keys as ``metaxy_run.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

import strata as st


def build_graph() -> tuple[st.FeatureGraph, type[st.Feature], type[st.Feature], type[st.Feature]]:
    """The reference graph: video(audio, frames) -> transcript(text <- audio) -> embedding(vector <- text, frames)."""
    graph = st.FeatureGraph()
    with graph.use():

        class Video(st.Feature, spec=st.FeatureSpec("video", fields=[st.FieldSpec("audio"), st.FieldSpec("frames")])):
            pass

        class Transcript(
            st.Feature,
            spec=st.FeatureSpec(
                "transcript", deps=[Video], fields=[st.FieldSpec("text", deps=[st.FieldDep(Video, ["audio"])])]
            ),
        ):
            pass

        class Embedding(
            st.Feature,
            spec=st.FeatureSpec(
                "embedding",
                deps=[Transcript, Video],
                fields=[
                    st.FieldSpec("vector", deps=[st.FieldDep(Transcript, ["text"]), st.FieldDep(Video, ["frames"])])
                ],
            ),
        ):
            pass

    return graph, Video, Transcript, Embedding


def samples(n: int) -> pl.DataFrame:
    """Root samples 0..n-1 with a data version per field."""
    ids = pl.int_range(0, n, eager=True).alias("sample_uid")
    return pl.DataFrame([ids]).with_columns(
        ("a" + pl.col("sample_uid").cast(pl.String)).alias("strata_dv__audio"),
        ("f" + pl.col("sample_uid").cast(pl.String)).alias("strata_dv__frames"),
    )


def delta(base: pl.DataFrame, n: int) -> pl.DataFrame:
    """0.5 % new audio, another 0.5 % new frames, +0.1 % new ids, -0.1 % dropped ids."""
    step = 200  # 1 in 200 = 0.5 %
    uid = pl.col("sample_uid")
    changed = base.with_columns(
        pl.when(uid % step == 0)
        .then("a2-" + uid.cast(pl.String))
        .otherwise(pl.col("strata_dv__audio"))
        .alias("strata_dv__audio"),
        pl.when(uid % step == 1)
        .then("f2-" + uid.cast(pl.String))
        .otherwise(pl.col("strata_dv__frames"))
        .alias("strata_dv__frames"),
    )
    dropped = changed.filter(uid % 1000 != 2)
    extra = samples(n // 1000).with_columns(uid + n)
    return pl.concat([dropped, extra])


def timed(fn: Any) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    """Run the scenario and print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--store", choices=["duckdb-file", "duckdb-memory"], default="duckdb-file")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work/features"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"strata-{args.n}.duckdb"
    path.unlink(missing_ok=True)
    graph, video, transcript, embedding = build_graph()
    store = st.DuckDBStore(":memory:" if args.store == "duckdb-memory" else path, graph=graph)
    out: dict[str, Any] = {"n": args.n, "store": args.store, "strata_version": st.__version__}
    base = samples(args.n)
    with store:
        steps = {}
        t0 = time.perf_counter()
        for name, feature in (("video", video), ("transcript", transcript), ("embedding", embedding)):
            kwargs = {"samples": base} if feature is video else {}
            seconds, inc = timed(lambda f=feature, k=kwargs: store.resolve_update(f, **k))
            write_s, _ = timed(lambda f=feature, i=inc: store.write(f, i.added))
            steps[name] = {"resolve": round(seconds, 4), "write": round(write_s, 4)}
        out["first"] = round(time.perf_counter() - t0, 4)
        out["first_steps"] = steps
        noops = [timed(lambda: store.resolve_update(embedding))[0] for _ in range(3)]
        out["noop_leaf"] = round(statistics.median(noops), 4)
        out["noop_leaf_runs"] = [round(x, 4) for x in noops]
        new = delta(base, args.n)
        _, inc = timed(lambda: store.resolve_update(video, samples=new))
        store.write(video, pl.concat([inc.added.to_native(), inc.changed.to_native().select(inc.added.columns)]))
        store.delete(video, inc.removed)
        _, tinc = timed(lambda: store.resolve_update(transcript))
        keep = tinc.added.columns
        store.write(transcript, pl.concat([tinc.added.to_native(), tinc.changed.to_native().select(keep)]))
        store.delete(transcript, tinc.removed)
        seconds, linc = timed(lambda: store.resolve_update(embedding))
        out["delta_leaf"] = round(seconds, 4)
        out["delta_counts"] = {
            "leaf": linc.counts(),
            "transcript": tinc.counts(),
            "leaf_fields": linc.changed_fields(),
            "mode": linc.meta.get("mode"),
        }
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
