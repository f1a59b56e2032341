# ruff: noqa: T201, INP001 - an example script: printing is its output, and it is not a package
"""The reference graph end to end with the Python API and the project's DuckDB store.

1. write 100 videos (the root feature) with a content hash per field as its data version;
2. resolve transcript and embedding, compute them, write the results;
3. change the audio of 5 videos;
4. resolve again: exactly those 5 transcripts are stale (cause ``video.audio``); once they are
   recomputed, exactly those 5 embeddings are stale (cause ``transcript.text``), and nothing
   else is touched: the frames did not change, so no other embedding is.

Run it from anywhere: ``python examples/reference/run.py``. It starts from an empty store, so
every run prints the same numbers; afterwards ``strata status`` in this directory shows the
store in sync.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import polars as pl

import strata as st

ROOT = Path(__file__).resolve().parent
SAMPLES = 100
CHANGED = ("v003", "v021", "v042", "v067", "v088")


def content_hash(value: object) -> str:
    """What a root field's data version is here: a hash of its content."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def videos(changed: tuple[str, ...] = ()) -> pl.DataFrame:
    """The root samples: ids, user columns, and a data version per field."""
    uids = [f"v{i:03d}" for i in range(SAMPLES)]
    audio = [f"{i:03d}" + ("7" if uid in changed else "") for i, uid in enumerate(uids)]
    frames = [[(i * 37 + j * 11) % 256 for j in range(8)] for i in range(SAMPLES)]
    return pl.DataFrame(
        {
            "sample_uid": uids,
            "audio": audio,
            "frames": frames,
            "strata_dv__audio": [content_hash(a) for a in audio],
            "strata_dv__frames": [content_hash(f) for f in frames],
        }
    )


def describe(step: str, increment: st.Increment) -> str:
    """``[step] transcript: 0 added, 5 changed, 0 removed; text <- video.audio (5)``."""
    counts = increment.counts()
    line = f"[{step}] {increment.feature}: " + ", ".join(f"{n} {part}" for part, n in counts.items())
    causes = [
        f"{field} <- " + ", ".join(f"{cause} ({n})" for cause, n in sorted(by_cause.items()))
        for field, by_cause in sorted(increment.changed_fields().items())
    ]
    return line + (f"; {'; '.join(causes)}" if causes else "")


def rows_to_write(increment: st.Increment) -> pl.DataFrame:
    """The increment's added and changed rows, without the ``strata_cause__*`` columns."""
    added: pl.DataFrame = increment.added.to_native()
    changed: pl.DataFrame = increment.changed.to_native()
    return pl.concat([added, changed.select(added.columns)])


def user_columns(store: st.MetadataStore, key: st.FeatureKey) -> pl.DataFrame:
    """An upstream's live rows: id columns and the user's own columns (what ``compute`` reads)."""
    frame: pl.DataFrame = store.read(key).to_native()
    return frame.select([c for c in frame.columns if not c.startswith("strata_")])


def materialize(store: st.MetadataStore, graph: st.FeatureGraph, key: str, step: str) -> st.Increment:
    """Resolve ``key``, compute its stale samples with its ``compute`` and write them."""
    increment = store.resolve_update(key)
    print(describe(step, increment))
    rows = rows_to_write(increment)
    if len(rows) == 0:
        return increment
    spec = graph.spec(key)
    ids = list(spec.id_columns)
    inputs = rows.select(ids)
    for dep in spec.deps:
        inputs = inputs.join(user_columns(store, dep.feature), on=ids, how="left")
    feature: Any = graph.feature(key)()
    values: pl.DataFrame = feature.compute(inputs)
    store.write(key, rows.join(values, on=ids, how="left"))
    return increment


def write_roots(store: st.MetadataStore, samples: pl.DataFrame, step: str) -> st.Increment:
    """Resolve the root feature against ``samples`` and write the new and changed ones."""
    increment = store.resolve_update("video", samples=samples.drop("audio", "frames"))
    print(describe(step, increment))
    stale = rows_to_write(increment).select("sample_uid")
    store.write("video", samples.join(stale, on="sample_uid", how="semi"))
    return increment


def main() -> None:
    """Empty the store, then walk the graph twice: first run, then after the audio change."""
    project = st.open_project(ROOT)
    graph = project.graph
    store = project.store()
    path = Path(getattr(store, "path", ":memory:"))
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"store: {project.describe_store()} (emptied)")
    with store:
        write_roots(store, videos(), "first run")
        materialize(store, graph, "transcript", "first run")
        materialize(store, graph, "embedding", "first run")

        write_roots(store, videos(changed=CHANGED), "audio changed")
        transcript = materialize(store, graph, "transcript", "audio changed")
        embedding = materialize(store, graph, "embedding", "audio changed")
        stale = sorted(transcript.changed["sample_uid"].to_list())
        assert stale == sorted(embedding.changed["sample_uid"].to_list()) == list(CHANGED)
        print(f"recomputed: {', '.join(stale)}")

        texts = store.read("transcript", columns=["sample_uid", "text"]).to_native()
        for uid, text in texts.filter(pl.col("sample_uid").is_in(CHANGED[:2])).sort("sample_uid").iter_rows():
            print(f"  {uid}: {text}")
        for key in ("transcript", "embedding"):
            print(describe("after recompute", store.resolve_update(key)))


if __name__ == "__main__":
    main()
