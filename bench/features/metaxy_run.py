"""Metaxy half of the incremental feature-metadata benchmark (see README.md here).

Graph (one id column, `sample_uid` int64):

    video (root; fields audio, frames)
      -> transcript (text <- video.audio)
      -> embedding (vector <- transcript.text, video.frames)

Scenario: a first full pass over N root samples, a no-op resolve of the leaf,
then a ~1 % delta at the root propagated down, timing the leaf's resolve.
Prints one JSON object on stdout, warnings (and any failed check) on stderr.

Needs Metaxy's own venv (`python bench/features/metaxy_venv.py` makes it):

    bench/.venvs/metaxy/bin/python bench/features/metaxy_run.py \
        --n 100000 --store duckdb-file --workdir bench/.work/features
"""

# Metaxy lives only in its own venv, not in the project's venv where mypy runs,
# so there it types as Any, and mypy then checks a feature class's `spec=` against
# object.__init_subclass__ (hence the call-arg ignores on the three classes).
# mypy: disable-error-code="import-not-found", allow-subclassing-any

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

try:
    import metaxy as mx
    import narwhals as nw
    import polars as pl
    from metaxy.ext.duckdb import DuckDBMetadataStore
except ModuleNotFoundError as exc:  # run with the wrong interpreter
    sys.exit(f"error: {exc}; run with the venv from `python bench/features/metaxy_venv.py`")

STORES = ("duckdb-file", "duckdb-memory", "postgres")
ID = "sample_uid"
PROVENANCE = "metaxy_provenance_by_field"
NOOP_REPEAT = 3

# The delta, as id rules over the first pass's ids 0..N-1 (disjoint by construction):
AUDIO_MOD, AUDIO_REM = 200, 0  # 0.5 %: new audio provenance  f"a{i}v2"
FRAMES_MOD, FRAMES_REM = 200, 100  # 0.5 %: new frames provenance f"f{i}v2"
DROP_MOD, DROP_REM = 1000, 7  # 0.1 %: dropped from the root samples, then soft-deleted
NEW_PER = 1000  # 0.1 %: N // 1000 new ids N, N+1, ...


class Video(  # type: ignore[call-arg,unused-ignore]
    mx.BaseFeature, spec=mx.FeatureSpec(key="video", id_columns=[ID], fields=["audio", "frames"])
):
    """Root feature; the provenance of its fields is given by the caller."""

    sample_uid: int


class Transcript(  # type: ignore[call-arg,unused-ignore]
    mx.BaseFeature,
    spec=mx.FeatureSpec(
        key="transcript",
        id_columns=[ID],
        deps=[mx.FeatureDep(feature=Video)],
        fields=[mx.FieldSpec(key="text", deps=[mx.FieldDep(feature=Video, fields=["audio"])])],
    ),
):
    """Text from the video's audio only: frames changes must not reach it."""

    sample_uid: int


class Embedding(  # type: ignore[call-arg,unused-ignore]
    mx.BaseFeature,
    spec=mx.FeatureSpec(
        key="embedding",
        id_columns=[ID],
        deps=[mx.FeatureDep(feature=Video), mx.FeatureDep(feature=Transcript)],
        fields=[
            mx.FieldSpec(
                key="vector",
                deps=[mx.FieldDep(feature=Transcript, fields=["text"]), mx.FieldDep(feature=Video, fields=["frames"])],
            )
        ],
    ),
):
    """The leaf: audio changes reach it through transcript, frames changes directly."""

    sample_uid: int


Counts = dict[str, int]
IdSets = dict[str, set[int]]


def open_store(kind: str, workdir: Path, dsn: str | None = None) -> DuckDBMetadataStore:
    """A fresh, empty Metaxy DuckDB store (file in `workdir`, or in memory), hashing with MD5.

    ``postgres``: Metaxy's PostgreSQL store on ``dsn`` instead (ibis' postgres backend; psycopg
    must be importable: ``bench/features/postgres.py`` puts it on the path).

    DuckDBMetadataStore always appends the community `hashfuncs` extension
    (xxhash) to its extension list and INSTALLs it on every open, even with
    hash_algorithm=MD5; it cannot be downloaded here, so it is taken out.
    """
    if kind == "postgres":
        from metaxy.ext.postgresql import PostgreSQLMetadataStore

        return PostgreSQLMetadataStore(
            connection_string=dsn, hash_algorithm=mx.HashAlgorithm.MD5, auto_create_tables=True
        )
    database = ":memory:"
    if kind == "duckdb-file":
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "metaxy.duckdb"
        for stale in (path, path.with_name(path.name + ".wal")):
            stale.unlink(missing_ok=True)
        database = str(path)
    store = DuckDBMetadataStore(database, hash_algorithm=mx.HashAlgorithm.MD5, auto_create_tables=True)
    store.extensions = [ext for ext in store.extensions if ext.name != "hashfuncs"]
    return store


def root_samples(n: int, *, delta: bool) -> pl.DataFrame:
    """Root samples: ids 0..n-1 with provenance a{i}/f{i}; with `delta`, the delta applied."""
    ids = pl.int_range(0, n + (n // NEW_PER if delta else 0), dtype=pl.Int64, eager=True).alias(ID)
    i = pl.col(ID)
    audio, frames = pl.format("a{}", i), pl.format("f{}", i)
    frame = pl.DataFrame(ids)
    if delta:
        old = i < n
        frame = frame.filter(~(old & (i % DROP_MOD == DROP_REM)))
        audio = pl.when(old & (i % AUDIO_MOD == AUDIO_REM)).then(pl.format("a{}v2", i)).otherwise(audio)
        frames = pl.when(old & (i % FRAMES_MOD == FRAMES_REM)).then(pl.format("f{}v2", i)).otherwise(frames)
    return frame.with_columns(pl.struct(audio=audio, frames=frames).alias(PROVENANCE))


def expected_delta(n: int) -> dict[str, IdSets]:
    """The exact new / stale / orphaned id sets each feature should report after the delta."""
    audio = set(range(AUDIO_REM, n, AUDIO_MOD))
    frames = set(range(FRAMES_REM, n, FRAMES_MOD))
    new = set(range(n, n + n // NEW_PER))
    dropped = set(range(DROP_REM, n, DROP_MOD))
    return {
        "video": {"new": new, "stale": audio | frames, "orphaned": dropped},
        "transcript": {"new": new, "stale": audio, "orphaned": dropped},
        "embedding": {"new": new, "stale": audio | frames, "orphaned": dropped},
    }


def id_sets(inc: mx.Increment) -> IdSets:
    """The ids in each frame of an Increment."""
    return {name: set(getattr(inc, name)[ID].to_list()) for name in ("new", "stale", "orphaned")}


def sizes(inc: mx.Increment) -> Counts:
    """Row counts of an Increment's frames."""
    return {name: len(getattr(inc, name)) for name in ("new", "stale", "orphaned")}


def check(label: str, got: IdSets, want: IdSets, problems: list[str]) -> None:
    """Record a problem for each frame whose ids differ from the expected set."""
    for name, ids in want.items():
        if got[name] != ids:
            missing, extra = len(ids - got[name]), len(got[name] - ids)
            problems.append(f"{label} {name}: {len(got[name])} ids, want {len(ids)} ({missing} missing, {extra} extra)")


def write_changes(store: DuckDBMetadataStore, feature: type[mx.BaseFeature], inc: mx.Increment) -> None:
    """Append an Increment's new and stale rows as they come back (no user columns needed)."""
    store.write(feature, nw.concat([inc.new, inc.stale]))


def first_pass(store: DuckDBMetadataStore, n: int, problems: list[str]) -> dict[str, float]:
    """Resolve + write every feature from scratch; seconds per feature."""
    samples = root_samples(n, delta=False)
    everything: IdSets = {"new": set(range(n)), "stale": set(), "orphaned": set()}
    steps: dict[str, float] = {}
    for name, feature in (("video", Video), ("transcript", Transcript), ("embedding", Embedding)):
        start = time.perf_counter()
        inc = store.resolve_update(feature, samples=samples if feature is Video else None)
        store.write(feature, inc.new)
        steps[name] = time.perf_counter() - start
        check(f"first {name}", id_sets(inc), everything, problems)
    return steps


def noop_leaf(store: DuckDBMetadataStore, problems: list[str]) -> float:
    """Median seconds of resolving the leaf when nothing changed."""
    times: list[float] = []
    for _ in range(NOOP_REPEAT):
        start = time.perf_counter()
        inc = store.resolve_update(Embedding)
        times.append(time.perf_counter() - start)
        if any(sizes(inc).values()):
            problems.append(f"no-op embedding: {sizes(inc)}, want all 0")
    return statistics.median(times)


def delta_pass(
    store: DuckDBMetadataStore, n: int, problems: list[str]
) -> tuple[dict[str, float], float, dict[str, Counts]]:
    """Apply the delta at the root, propagate it to transcript, time the leaf's resolve.

    Returns the seconds of the video and transcript steps, the leaf resolve's
    seconds, and the increment sizes per feature.
    """
    samples = root_samples(n, delta=True)
    want = expected_delta(n)
    steps: dict[str, float] = {}
    counts: dict[str, Counts] = {}

    start = time.perf_counter()
    video = store.resolve_update(Video, samples=samples)
    write_changes(store, Video, video)
    # As Metaxy users do: samples gone from the root are soft-deleted via the orphaned set.
    dropped = video.orphaned[ID].to_list()
    if dropped:
        store.delete(Video, nw.col(ID).is_in(dropped))
    steps["video"] = time.perf_counter() - start

    start = time.perf_counter()
    transcript = store.resolve_update(Transcript)
    write_changes(store, Transcript, transcript)
    steps["transcript"] = time.perf_counter() - start

    start = time.perf_counter()
    embedding = store.resolve_update(Embedding)
    leaf = time.perf_counter() - start

    for name, inc in (("video", video), ("transcript", transcript), ("embedding", embedding)):
        counts[name] = sizes(inc)
        check(f"delta {name}", id_sets(inc), want[name], problems)
    return steps, leaf, counts


def run(n: int, kind: str, workdir: Path, dsn: str | None = None) -> dict[str, object]:
    """The whole scenario on one store; the result as a JSON-ready dict."""
    mx.init(mx.MetaxyConfig(project="bench", auto_create_tables=True))
    problems: list[str] = []
    store = open_store(kind, workdir, dsn)
    with store.open("w"):
        first_steps = first_pass(store, n, problems)
        noop = noop_leaf(store, problems)
        delta_steps, delta_leaf, delta_counts = delta_pass(store, n, problems)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return {
        "n": n,
        "store": kind,
        "metaxy_version": mx.__version__,
        "first": round(sum(first_steps.values()), 4),
        "first_steps": {k: round(v, 4) for k, v in first_steps.items()},
        "noop_leaf": round(noop, 4),
        "delta_steps": {k: round(v, 4) for k, v in delta_steps.items()},
        "delta_leaf": round(delta_leaf, 4),
        "delta_counts": delta_counts,
        "checks_ok": not problems,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the scenario, print its JSON."""
    parser = argparse.ArgumentParser(description="Metaxy incremental resolution benchmark")
    parser.add_argument("--n", type=int, default=100_000, help="root samples in the first pass")
    parser.add_argument("--store", choices=STORES, default="duckdb-file")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work/features/metaxy"))
    parser.add_argument("--dsn", help="the PostgreSQL server for --store postgres")
    opts = parser.parse_args(argv)
    if opts.n < NEW_PER:
        parser.error(f"--n must be at least {NEW_PER} for the 0.1 % parts of the delta to be non-empty")
    # Expected on every run; the rest of Metaxy's warnings stay visible on stderr.
    warnings.filterwarnings("ignore", message="AUTO_CREATE_TABLES is enabled")
    # Nothing but the JSON may reach stdout.
    with contextlib.redirect_stdout(sys.stderr):
        result = run(opts.n, opts.store, opts.workdir, opts.dsn)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
