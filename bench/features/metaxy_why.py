"""Metaxy half of the per-sample lookup benchmark (``why.py`` drives it; see README.md here).

Metaxy has no per-sample lookup. What its user does to see why one sample of the leaf is
stale, on the graph of ``metaxy_run.py``: resolve each non-root feature on the way and keep
the sample's rows, and read the root's row. Two ways:

- ``whole``: ``resolve_update`` of transcript and embedding, each increment filtered to the
  sample afterwards (what its docs show);
- ``narrowed``: the same with ``global_filters=[sample_uid == ID]``, which Metaxy pushes into
  every read (its closest thing to a lookup; no cause per field comes out, only provenance).

    bench/.venvs/metaxy/bin/python bench/features/metaxy_why.py setup --n 1000000 --workdir DIR
    bench/.venvs/metaxy/bin/python bench/features/metaxy_why.py lookup --way whole --repeat 1 --workdir DIR

``setup``: the first pass of every feature, then the README's delta written at the root only
(transcript and embedding left stale). ``lookup``: opens the store, looks the sample up
``--repeat`` times; prints JSON: seconds to open, seconds and CPU seconds per lookup.
"""

# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import metaxy as mx
import narwhals as nw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metaxy_run as run
from metaxy_run import ID, Embedding, Transcript, Video


def setup(n: int, workdir: Path) -> dict[str, object]:
    """A store with every feature written for ``n`` samples, then the root delta (nothing downstream redone)."""
    problems: list[str] = []
    store = run.open_store("duckdb-file", workdir)
    with store.open("w"):
        run.first_pass(store, n, problems)
        video = store.resolve_update(Video, samples=run.root_samples(n, delta=True))
        run.write_changes(store, Video, video)
    return {"n": n, "problems": problems}


def lookup(store: object, sample: int, way: str) -> dict[str, int]:
    """The sample's rows: the root's, and each non-root feature's increment cut to it."""
    wanted = [nw.col(ID) == sample]
    found = {"video": len(store.read(Video, filters=wanted).collect())}  # type: ignore[attr-defined]
    for name, feature in (("transcript", Transcript), ("embedding", Embedding)):
        narrowed = {"global_filters": wanted} if way == "narrowed" else {}
        inc = store.resolve_update(feature, **narrowed)  # type: ignore[attr-defined]
        found[name] = sum(len(getattr(inc, part).filter(*wanted)) for part in ("new", "stale", "orphaned"))
    return found


def lookups(workdir: Path, sample: int, way: str, repeat: int) -> dict[str, object]:
    """Open the store read-only and look the sample up ``repeat`` times."""
    started = time.perf_counter()
    store: Any = _open(workdir)
    seconds, cpu = [], []
    with store.open("r"):
        opened = time.perf_counter() - started
        for _ in range(repeat):
            wall, proc = time.perf_counter(), time.process_time()
            found = lookup(store, sample, way)
            seconds.append(time.perf_counter() - wall)
            cpu.append(time.process_time() - proc)
    return {"open": opened, "seconds": seconds, "cpu": cpu, "found": found}


def _open(workdir: Path) -> object:
    """The store ``setup`` filled (``run.open_store`` starts afresh), hashing with MD5 as it did."""
    from metaxy.ext.duckdb import DuckDBMetadataStore

    store = DuckDBMetadataStore(str(workdir / "metaxy.duckdb"), hash_algorithm=mx.HashAlgorithm.MD5)
    store.extensions = [ext for ext in store.extensions if ext.name != "hashfuncs"]
    return store


def main() -> int:
    """Parse the flags, run the mode, print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["setup", "lookup"])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--way", choices=["whole", "narrowed"], default="whole")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, required=True)
    opts = parser.parse_args()
    warnings.filterwarnings("ignore", message="AUTO_CREATE_TABLES is enabled")
    mx.init(mx.MetaxyConfig(project="bench", auto_create_tables=True))
    with contextlib.redirect_stdout(sys.stderr):
        if opts.mode == "setup":
            result = setup(opts.n, opts.workdir)
        else:
            result = lookups(opts.workdir, opts.sample, opts.way, opts.repeat)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
