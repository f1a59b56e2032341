"""A process killed (SIGKILL) in the middle of a write, delete or copy to a DuckDB or SQLite file (or a chDB directory).

Afterwards the store holds all of the write or none of it, the next command (``strata status``)
runs and says nothing it need not, and writing again gives the right increments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from tests.helpers import Cli, write_project
from tests.stores.graphs import lineage_graph
from tests.stores.test_conformance import graph_of, roots, sync

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"duckdb": (st.DuckDBStore, "meta.duckdb", ".wal"), "sqlite": (st.SQLiteStore, "meta.sqlite", "-wal")}
GRAPH = """
import strata as st

class Video(st.Feature, spec=st.FeatureSpec("video", fields=["audio", "frames"])):
    pass

class Transcript(st.Feature, spec=st.FeatureSpec(
    "transcript", deps=[Video], fields=[st.FieldSpec("text", "1", deps=[st.FieldDep(Video, ["audio"])])]
)):
    pass

class Embedding(st.Feature, spec=st.FeatureSpec(
    "embedding",
    deps=[Transcript, Video],
    fields=[st.FieldSpec("vector", "1", deps=[st.FieldDep(Transcript, ["text"]), st.FieldDep(Video, ["frames"])])],
)):
    pass
"""
DEADLINE_S = 120.0
"""How long a test waits for the writer to reach the point it is killed at."""


def project(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose store is the file the writer writes; the working directory."""
    root = tmp_path / "proj"
    path = tmp_path / KINDS[kind][1]
    write_project(
        root,
        f"version: 1\nfeatures:\n  entrypoints: [killfeats]\n  store: main\nstores:\n"
        f"  main: {{type: {kind}, path: {str(path)!r}}}\n",
    )
    (root / "killfeats.py").write_text(textwrap.dedent(GRAPH), encoding="utf-8")
    monkeypatch.chdir(root)
    return path


def writer(kind: str, path: Path, code: str) -> subprocess.Popen[str]:
    """Another process that opens the store and runs ``code`` (``store`` is the open store)."""
    store_class = KINDS[kind][0].__name__
    script = textwrap.dedent(
        """
        import sys
        import strata as st
        from tests.stores.test_conformance import graph_of, roots
        """
    ) + textwrap.dedent(code).replace("STORE", f"st.{store_class}({str(path)!r}, graph=graph_of())")
    return spawn(script)


def spawn(script: str) -> subprocess.Popen[str]:
    """A Python process running ``script`` in the repository, its stdin and stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def every_row(store: st.MetadataStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every feature, history included."""
    out = {}
    for key in ("video", "transcript", "embedding"):
        frame = store.read(key, feature_version="all", include_deleted=True)
        out[key] = sorted(frame.select(sorted(frame.columns)).rows(), key=repr)
    return out


def killed(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=DEADLINE_S)  # reaps it and closes its pipes
    assert process.returncode == -signal.SIGKILL, err


def status_after(strata: Cli) -> dict[str, Any]:
    """``strata status`` on the store the killed process wrote: it runs, in one go, and says nothing on stderr."""
    result = strata("status", "--json")
    assert result.code == 0, result.err
    assert result.err == ""
    return {f["feature"]: f for f in result.json()["features"]}


PAUSE_AT_COMMIT = """
{patch}
def paused(*args, **kwargs):
    query = args[-1] if isinstance(args[-1], str) else args[-2]
    if 'INSERT INTO "video' in query:  # the feature's rows, whatever table holds them
        seen.append(query)
    if query == "COMMIT" and seen:
        print("mid-write", flush=True)
        sys.stdin.readline()
    return run(*args, **kwargs)
seen = []
{install}
with STORE as store:
    store.write_changed("video", roots(2000, audio={{0: "x"}}))
"""
HOOKS = {
    "duckdb": (
        "from strata.stores.duckdb import store as module\nrun = module._run",
        "module._run = paused",
    ),
    "sqlite": ("run = st.SQLiteStore._run", "st.SQLiteStore._run = paused"),
}


@pytest.mark.parametrize("first", [False, True], ids=["later write", "first write"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_killed_just_before_its_commit_a_write_leaves_nothing(
    kind: str, first: bool, strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer stops inside its transaction, every row in, the commit not yet run: then it is killed.

    The first write of a feature makes its tables too.
    """
    path = project(tmp_path, kind, monkeypatch)
    with KINDS[kind][0](path, graph=graph_of()) as store:
        if not first:
            sync(store, roots(3))
        before = every_row(store)
    patch, install = HOOKS[kind]
    process = writer(kind, path, PAUSE_AT_COMMIT.format(patch=patch, install=install))
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "mid-write", process.stderr.read() if process.stderr else ""
    killed(process)
    assert status_after(strata)["video"]["samples"] == (0 if first else 3)
    with KINDS[kind][0](path, graph=graph_of()) as store:
        assert every_row(store) == before
        assert store.has_feature("video") is not first
        assert store.resolve_update("embedding").is_empty
        counts = store.write_changed("video", roots(2000, audio={0: "x"}))
        assert counts == (
            {"added": 2000, "changed": 0, "unchanged": 0} if first else {"added": 1997, "changed": 1, "unchanged": 2}
        )
        transcript = store.resolve_update("transcript")
        assert transcript.counts() == {"added": 2000 if first else 1997, "changed": 0 if first else 1, "removed": 0}
        if not first:
            assert transcript.changed.to_native()["sample_uid"].to_list() == [0]


BIG = 200_000
"""Samples of the write that is killed while the store's files grow: seconds of work on either store."""


def sizes(path: Path, suffix: str, watched: str) -> int:
    """Bytes of the store's file and its write-ahead log (``watched="log"``: of the log alone)."""
    files = [path.with_name(path.name + suffix)] + ([] if watched == "log" else [path])
    return sum(p.stat().st_size for p in files if p.exists())


@pytest.mark.parametrize("watched", ["files", "log"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_killed_while_its_files_grow_a_write_leaves_all_or_nothing_and_a_retry_completes_it(
    kind: str, watched: str, strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hook: the writer is killed as soon as the store's files (or its log alone) show its write.

    Growth of the files comes first (rows going in), of the log later (DuckDB logs a commit, SQLite
    spills pages or commits there): between them, kills land before and around the commit.
    """
    path = project(tmp_path, kind, monkeypatch)
    suffix = KINDS[kind][2]
    with KINDS[kind][0](path, graph=graph_of()) as store:
        sync(store, roots(3))
        before = every_row(store)
    process = writer(
        kind,
        path,
        f"""
        with STORE as store:
            big = roots({BIG}, audio={{1: "x"}})
            print("writing", flush=True)
            store.write_changed("video", big)
        print("written", flush=True)
        """,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "writing", process.stderr.read() if process.stderr else ""
    start, deadline = sizes(path, suffix, watched), time.monotonic() + DEADLINE_S
    while sizes(path, suffix, watched) == start and process.poll() is None and time.monotonic() < deadline:
        os.sched_yield()
    assert process.poll() is None, "the write ended before its files showed it"
    killed(process)
    samples = status_after(strata)["video"]["samples"]
    assert samples in (3, BIG)
    with KINDS[kind][0](path, graph=graph_of()) as store:
        whole = samples == BIG
        if not whole:
            assert every_row(store) == before
        assert store.resolve_update("transcript").counts() == (
            {"added": BIG - 3, "changed": 1, "removed": 0} if whole else {"added": 0, "changed": 0, "removed": 0}
        )
        again = store.write_changed("video", roots(BIG, audio={1: "x"}))
        assert again == (
            {"added": 0, "changed": 0, "unchanged": BIG} if whole else {"added": BIG - 3, "changed": 1, "unchanged": 2}
        )
        transcript = store.resolve_update("transcript")
        assert transcript.counts() == {"added": BIG - 3, "changed": 1, "removed": 0}
        assert transcript.changed.to_native()["sample_uid"].to_list() == [1]
        assert len(store.read("video")) == BIG
        assert pl.Series(store.read("video")["sample_uid"]).n_unique() == BIG


PAUSE_AFTER_DELETE = """
{patch}
def paused(*args, **kwargs):
    query = args[-1] if isinstance(args[-1], str) else args[-2]
    if seen and seen[-1] == "COMMIT":  # the delete's transaction is in: stop at whatever comes next
        print("deleted", flush=True)
        sys.stdin.readline()
    if 'DELETE FROM "video' in query or (seen and query == "COMMIT"):
        seen.append(query)
    return run(*args, **kwargs)
seen = []
{install}
with STORE as store:
    store.delete("video", roots(2).tail(1).select("sample_uid"), soft=False)
    print("deleted", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.parametrize("kind", list(KINDS))
def test_killed_right_after_a_hard_delete_committed_the_next_resolve_still_sees_it(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hard delete and the forgetting of every sync record are one: a kill between them must not split them.

    Killed after the delete committed, with the sync records still saying what the resolves saw
    before it, the next resolve "since last sync" looked for rows written since and found none:
    the erased sample was never removed downstream.
    """
    path = project(tmp_path, kind, monkeypatch)
    with KINDS[kind][0](path, graph=graph_of()) as store:
        sync(store, roots(3))
    patch, install = HOOKS[kind]
    process = writer(kind, path, PAUSE_AFTER_DELETE.format(patch=patch, install=install))
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "deleted", process.stderr.read() if process.stderr else ""
    killed(process)
    with KINDS[kind][0](path, graph=graph_of()) as store:
        assert sorted(store.read("video")["sample_uid"].to_list()) == [0, 2]
        assert store.resolve_update("transcript").removed.to_native()["sample_uid"].to_list() == [1]


PAUSE_BEFORE_CLICKHOUSE_COMMIT = """
import sys
import strata as st
from strata.stores.clickhouse.engine import ChdbEngine
from tests.stores.graphs import lineage_graph
run = ChdbEngine.command
def paused(self, sql):
    if sql.startswith("INSERT INTO") and "strata$commits" in sql:  # the copy's one commit: every row is in
        print("before-commit", flush=True)
        sys.stdin.readline()
    return run(self, sql)
ChdbEngine.command = paused
with st.DuckDBStore({source!r}, graph=lineage_graph(), read_only=True) as source, st.ClickHouseStore(
    {target!r}, graph=lineage_graph()
) as target:
    target.copy_from(source, ["frames"])
"""


def frames_rows(store: st.MetadataStore) -> list[tuple[Any, ...]]:
    frame = store.read("frames", feature_version="all", include_deleted=True).drop("strata_seq")
    return sorted(frame.select(sorted(frame.columns)).rows(), key=repr)


def test_killed_before_the_commit_of_a_copy_into_clickhouse_the_rows_copied_before_stay(tmp_path: Path) -> None:
    """A copy puts a parent's children again into ClickHouse: killed before its commit, the earlier copies stay.

    Child 1 of parent 0 deleted at the source: the next copy puts parent 0's latest generation,
    child 0 (copied before) with child 1's tombstone. The old copy of child 0 was erased before
    the new rows were committed, so a copy killed in between lost child 0 (until a retry).
    """
    source, target = tmp_path / "dev.duckdb", tmp_path / "ch"
    with st.DuckDBStore(source, graph=lineage_graph()) as dev:
        dev.write("video", roots(1).drop("strata_dv__audio"))
        asked = dev.resolve_update("frames").added.to_native()
        dev.write(
            "frames",
            asked.join(pl.DataFrame({"frame": [0, 1]}), how="cross").with_columns(strata_dv__pixels=pl.lit("p")),
        )
    with st.DuckDBStore(source, graph=lineage_graph()) as dev, st.ClickHouseStore(target, graph=lineage_graph()) as ch:
        ch.copy_from(dev, ["frames"])
        before = frames_rows(ch)
    with st.DuckDBStore(source, graph=lineage_graph()) as dev:
        dev.delete("frames", pl.DataFrame({"sample_uid": [0], "frame": [1]}))
    script = PAUSE_BEFORE_CLICKHOUSE_COMMIT.format(source=str(source), target=str(target))
    process = spawn(script)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "before-commit", process.stderr.read() if process.stderr else ""
    killed(process)
    with st.ClickHouseStore(target, graph=lineage_graph()) as ch:
        assert frames_rows(ch) == before
