"""The ClickHouse store at scale: strata on chDB vs strata on DuckDB vs hand-written ClickHouse SQL in chDB.

    python bench/features/clickhouse.py [--sizes 1e6,1e7] [--rounds 3] [--json PATH]

The graph and data of ``strata_run.py`` (video -> transcript -> embedding, md5 data versions).
Per tool and size, in a fresh process each (``--worker``; chDB opens one directory at a time):

1. first pass: the root's samples resolved and written, then each feature resolved and written;
2. no-op: the leaf (``embedding``) resolved with nothing changed;
3. 1 % leaf resolve: the README's delta applied at the root (0.5 % audio, 0.5 % frames changed,
   0.1 % new, 0.1 % gone), ``transcript`` brought up to date, then the leaf resolved;
4. delta write: the leaf's increment written (and its removed ids deleted).

The hand-written SQL keeps one ``ReplacingMergeTree`` table per feature (ids, data versions, a
version column), computes data versions with ``md5`` and every increment as one full join of expected
and current rows (``FINAL``): what someone would write by hand without strata's sync records. Every
increment is checked against ``strata_run.expected_delta``; the script exits 1 if one differs.
Metaxy 0.1.11's ClickHouse store (``metaxy.ext.clickhouse``, through Ibis) needs a ClickHouse server
(Ibis's ClickHouse backend speaks clickhouse-connect's HTTP): chDB is a library with no server to
connect to, and Debian's ``clickhouse-server`` is 18.16 (2018), older than Ibis's backend supports,
so it has no column here (bench/README.md). Data lives in ``bench/.work/features/clickhouse/``, emptied at the start.
"""

# ruff: noqa: S608 - the SQL is built from this file's own constants and integers, never from input

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from strata_run import ID, build_graph, expected_delta, id_sets, root_samples, writable  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl

WORK = HERE.parent / ".work" / "features" / "clickhouse"
TOOLS = ("strata-clickhouse", "strata-duckdb", "sql-clickhouse")
STEPS = ("first pass", "no-op", "1 % leaf resolve", "delta write")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, process CPU seconds (every engine thread of this process) and the result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


# -- strata (either store) -------------------------------------------------------------------


def strata_worker(tool: str, n: int, folder: Path) -> dict[str, Any]:
    """The four steps through a strata store (ClickHouse on chDB, or DuckDB)."""
    import strata as st

    graph = build_graph()
    if tool == "strata-clickhouse":
        store: st.MetadataStore = st.ClickHouseStore(folder / "ch", graph=graph)
    else:
        store = st.DuckDBStore(folder / "meta.duckdb", graph=graph)
    out: dict[str, Any] = {}
    problems: list[str] = []
    with store:

        def catch_up(key: str) -> st.Increment:
            inc = store.resolve_update(key)
            store.write(key, writable(inc))
            if len(inc.removed):
                store.delete(key, inc.removed)
            return inc

        def first_pass() -> None:
            samples = root_samples(n, delta=False)
            store.write_changed("video", samples)
            catch_up("transcript")
            catch_up("embedding")

        out["first pass"] = timed(first_pass)[:2]
        wall, cpu, inc = timed(lambda: store.resolve_update("embedding"))
        out["no-op"] = (wall, cpu)
        if not inc.is_empty:
            problems.append("no-op: not empty")
        store.write_changed("video", root_samples(n, delta=True), snapshot=True)
        catch_up("transcript")
        wall, cpu, inc = timed(lambda: store.resolve_update("embedding"))
        out["1 % leaf resolve"] = (wall, cpu)
        if id_sets(inc) != expected_delta(n)["embedding"]:
            problems.append("1 % leaf resolve: wrong ids")

        def delta_write() -> None:
            store.write("embedding", writable(inc))
            store.delete("embedding", inc.removed)

        out["delta write"] = timed(delta_write)[:2]
        if not store.resolve_update("embedding").is_empty:
            problems.append("after the delta write: not in sync")
    out["problems"] = problems
    return out


# -- hand-written ClickHouse SQL in chDB -----------------------------------------------------

TABLES = {
    "video": ["audio", "frames"],
    "transcript": ["text", "in_audio"],
    "embedding": ["vector", "in_text", "in_frames"],
}


EXPECTED = {
    "transcript": (
        "SELECT sample_uid, lower(hex(MD5(concat('text:', audio)))) AS text, audio AS in_audio "
        "FROM video FINAL WHERE gone = 0"
    ),
    "embedding": (
        "SELECT v.sample_uid AS sample_uid, "
        "lower(hex(MD5(concat('vector:', t.text, '|', v.frames)))) AS vector, t.text AS in_text, "
        "v.frames AS in_frames FROM (SELECT * FROM video FINAL WHERE gone = 0) AS v "
        "JOIN (SELECT * FROM transcript FINAL WHERE gone = 0) AS t USING (sample_uid)"
    ),
}
INPUTS = {"transcript": ["in_audio"], "embedding": ["in_text", "in_frames"]}


class HandSql:
    """The scenario written by hand in ClickHouse SQL: ReplacingMergeTree tables, full comparisons."""

    def __init__(self, folder: Path) -> None:
        from chdb import session

        self.con = session.Session(str(folder / "sql"))  # type: ignore[no-untyped-call]
        self.con.query("SET join_use_nulls = 1")  # type: ignore[no-untyped-call]
        self.version = 0
        for table, columns in TABLES.items():
            cols = ", ".join(f"{c} String" for c in columns)
            self.run(
                f"CREATE TABLE {table} ({ID} Int64, {cols}, version UInt64, gone UInt8) "
                f"ENGINE = ReplacingMergeTree(version) ORDER BY {ID}"
            )

    def run(self, query: str) -> Any:
        """The rows of ``query`` as Arrow."""
        return self.con.query(query, "ArrowTable")  # type: ignore[no-untyped-call]

    def load_root(self, samples: pl.DataFrame) -> None:
        """The root's full snapshot in: changed and new rows written, missing ones marked gone."""
        frame = samples.rename({"strata_dv__audio": "audio", "strata_dv__frames": "frames"}).to_arrow()  # noqa: F841 - read by Python(frame)
        self.version += 1
        v = self.version
        self.con.query(  # type: ignore[no-untyped-call]  # chDB's Python() finds `frame` in the calling frame: called here, not through run()
            "INSERT INTO video SELECT s.sample_uid, s.audio, s.frames, "
            f"{v}, 0 FROM Python(frame) AS s LEFT JOIN (SELECT * FROM video FINAL WHERE gone = 0) AS c "
            "USING (sample_uid) WHERE c.sample_uid IS NULL OR c.audio != s.audio OR c.frames != s.frames"
        )
        self.con.query(  # type: ignore[no-untyped-call]
            f"INSERT INTO video SELECT c.sample_uid, c.audio, c.frames, {v}, 1 FROM "
            "(SELECT * FROM video FINAL WHERE gone = 0) AS c LEFT JOIN Python(frame) AS s USING (sample_uid) "
            "WHERE s.sample_uid IS NULL"
        )

    def increment(self, table: str) -> dict[str, set[int]]:
        """New, stale and orphaned ids: one full join of expected and current rows."""
        stale = " OR ".join(f"e.{c} != c.{c}" for c in INPUTS[table])
        rows = self.run(
            f"SELECT multiIf(c.sample_uid IS NULL, 'new', e.sample_uid IS NULL, 'orphaned', 'stale') AS part, "
            f"coalesce(e.sample_uid, c.sample_uid) AS id FROM ({EXPECTED[table]}) AS e "
            f"FULL JOIN (SELECT * FROM {table} FINAL WHERE gone = 0) AS c ON e.sample_uid = c.sample_uid "
            f"WHERE c.sample_uid IS NULL OR e.sample_uid IS NULL OR {stale}"
        ).to_pydict()
        found: dict[str, set[int]] = {"new": set(), "stale": set(), "orphaned": set()}
        for part, sample in zip(rows["part"], rows["id"], strict=True):
            found[part].add(sample)
        return found

    def apply(self, table: str, found: dict[str, set[int]]) -> None:
        """Write the new and stale rows, mark the orphaned ones gone (new versions replace old ones)."""
        import pyarrow as pa

        self.version += 1
        v = self.version
        columns = ", ".join(TABLES[table])
        for name, ids, gone in (("touched", found["new"] | found["stale"], 0), ("orphans", found["orphaned"], 1)):
            if not ids:
                continue
            frame = pa.table({ID: sorted(ids)})  # noqa: F841 - read by Python(frame)
            self.con.query(f"CREATE TABLE {name} ENGINE = Memory AS SELECT * FROM Python(frame)")  # type: ignore[no-untyped-call]
            source = f"({EXPECTED[table]})" if not gone else f"{table} FINAL"
            self.run(
                f"INSERT INTO {table} SELECT sample_uid, {columns}, {v}, {gone} FROM {source} "
                f"WHERE sample_uid IN (SELECT {ID} FROM {name})"
            )
            self.run(f"DROP TABLE {name}")

    def first_pass(self, n: int) -> None:
        self.load_root(root_samples(n, delta=False))
        for table in ("transcript", "embedding"):
            self.version += 1
            columns = ", ".join(TABLES[table])
            self.run(f"INSERT INTO {table} SELECT sample_uid, {columns}, {self.version}, 0 FROM ({EXPECTED[table]})")


def sql_worker(n: int, folder: Path) -> dict[str, Any]:
    """The four steps with hand-written ClickHouse SQL in chDB."""
    hand = HandSql(folder)
    out: dict[str, Any] = {"first pass": timed(lambda: hand.first_pass(n))[:2]}
    wall, cpu, found = timed(lambda: hand.increment("embedding"))
    out["no-op"] = (wall, cpu)
    problems = [] if not any(found.values()) else ["no-op: not empty"]
    hand.load_root(root_samples(n, delta=True))
    hand.apply("transcript", hand.increment("transcript"))
    wall, cpu, found = timed(lambda: hand.increment("embedding"))
    out["1 % leaf resolve"] = (wall, cpu)
    if found != expected_delta(n)["embedding"]:
        problems.append("1 % leaf resolve: wrong ids")
    out["delta write"] = timed(lambda: hand.apply("embedding", found))[:2]
    if any(hand.increment("embedding").values()):
        problems.append("after the delta write: not in sync")
    out["problems"] = problems
    hand.con.close()  # type: ignore[no-untyped-call]
    return out


# -- driving ---------------------------------------------------------------------------------


def worker(tool: str, n: int) -> dict[str, Any]:
    """One tool at one size, in a folder of its own (removed afterwards)."""
    folder = WORK / f"{tool}-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        return sql_worker(n, folder) if tool == "sql-clickhouse" else strata_worker(tool, n, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def spawn(tool: str, n: int) -> dict[str, Any]:
    """:func:`worker` in a fresh process (chDB: one directory open at a time); its figures."""
    command = [sys.executable, __file__, "--worker", tool, str(n)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"problems": [f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """Every tool at every size, rounds alternating; one table per size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e6", help="comma-separated sample counts (1e7 takes minutes)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, tools alternating; medians are reported")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    failed = False
    for n in sizes:
        for _ in range(args.rounds):
            for tool in TOOLS:  # alternating: A B C A B C, so load changes hit every tool alike
                result = spawn(tool, n)
                raw.setdefault(str(n), {}).setdefault(tool, []).append(result)
                if result["problems"]:
                    failed = True
                    print(f"{tool} at {n}: {result['problems']}", file=sys.stderr)
        print(f"\n{n:,} samples, medians of {args.rounds} rounds (wall s / CPU s), uptime: {uptime()}")
        print("| step | " + " | ".join(TOOLS) + " | strata CH / SQL CH | strata CH / strata DuckDB |")
        print("|---|" + "---|" * (len(TOOLS) + 2))
        for step in STEPS:
            cells, walls = [], {}
            for tool in TOOLS:
                runs = [r[step] for r in raw[str(n)][tool] if step in r]
                if not runs:
                    cells.append("—")
                    continue
                walls[tool] = statistics.median(r[0] for r in runs)
                cells.append(f"{walls[tool]:.3f} / {statistics.median(r[1] for r in runs):.2f}")
            ratios = [
                _ratio(walls.get("strata-clickhouse"), walls.get("sql-clickhouse")),
                _ratio(walls.get("strata-clickhouse"), walls.get("strata-duckdb")),
            ]
            print(f"| {step} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return 1 if failed else 0


def _ratio(top: float | None, bottom: float | None) -> str:
    return "—" if top is None or not bottom else f"{top / bottom:.2f}x"


def uptime() -> str:
    """The load averages (1, 5, 15 minutes)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
