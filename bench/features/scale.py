"""Feature metadata at scale: strata vs hand-written DuckDB SQL vs Metaxy (see README.md here).

    python bench/features/scale.py [--sizes 1e6,1e7] [--huge] [--memory-limit 4GB] [--json PATH]

Same graph as ``strata_run.py``; the scenario is in README.md ("Scale run"). Every tool runs
each size in its own process (``--worker``), and each cold resolve in a further fresh process
(``--cold``); a worker resets its peak RSS (VmHWM, via ``/proc/self/clear_refs``) before each
step, so every step has its own peak. Data lives in ``bench/.work/features/scale/``, emptied at
the start. Metaxy runs ``metaxy_run.py`` (its own scenario, up to 1M samples) and fills the
rows that scenario shares. Exits 1 if any increment differs from the expected id sets.
"""

# ruff: noqa: S608 - the SQL is built from this file's own constants and integers, never from input

from __future__ import annotations

import argparse
import copy
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "features" / "scale"
ID = "sample_uid"
FIXED = 1000  # the fixed-size change: this many samples, at every size
HUGE = 100_000_000
METAXY_MAX = 1_000_000
REPEAT = 3
NICE = shutil.which("nice") or "nice"  # the machine is shared: every worker runs niced
STEP = Callable[[], Any]


# -- the scenario's data, as DuckDB SQL over range(n) ---------------------------------------


def snapshot_sql(n: int, stage: int) -> str:
    """Root samples: 0 the first pass, 1 with FIXED audio changes, 2 with the 1 % delta on top."""
    every = n // FIXED
    audio = "'a' || range"
    if stage >= 1:
        audio = f"CASE WHEN range % {every} = 1 THEN 'a' || range || 'k' ELSE {audio} END"
    frames, rows, where = "'f' || range", n, "true"
    if stage >= 2:  # the README's delta; its id rules are disjoint from the fixed change's
        audio = f"CASE WHEN range < {n} AND range % 200 = 0 THEN 'a' || range || 'v2' ELSE {audio} END"
        frames = f"CASE WHEN range < {n} AND range % 200 = 100 THEN 'f' || range || 'v2' ELSE {frames} END"
        rows, where = n + n // 1000, f"NOT (range < {n} AND range % 1000 = 7)"
    return (
        f"SELECT range::BIGINT AS {ID}, {audio} AS strata_dv__audio, {frames} AS strata_dv__frames "
        f"FROM range({rows}) WHERE {where}"
    )


def fixed_ids(n: int, rem: int) -> set[int]:
    """FIXED ids spread over 0..n-1 (``i % (n // FIXED) == rem``)."""
    return set(range(rem, n, n // FIXED))


def expected_fixed(n: int) -> dict[str, set[int]]:
    """Every feature's increment after the fixed change: FIXED changed samples."""
    return {"new": set(), "stale": fixed_ids(n, 1), "orphaned": set()}


def hard_deleted(n: int) -> set[int]:
    """The leaf rows erased before the full comparison (disjoint from every other change)."""
    return fixed_ids(n, 3)


# -- measuring ------------------------------------------------------------------------------


def peak_mb() -> float:
    """VmHWM of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def reset_peak() -> None:
    """Start a new peak: writing 5 to clear_refs resets VmHWM to the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


class Steps:
    """Timed steps of one worker: seconds and own peak RSS per step, and failed checks."""

    def __init__(self) -> None:
        self.out: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self.notes: list[str] = []

    def run(self, name: str, fn: STEP, *, repeat: int = 1) -> Any:
        """Time ``fn`` (median of ``repeat`` calls; wall and process CPU seconds); return the last result."""
        reset_peak()
        runs, cpus, result = [], [], None
        for _ in range(repeat):
            start, cpu = time.perf_counter(), time.process_time()
            result = fn()
            runs.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        self.out[name] = {"s": round(statistics.median(runs), 4), "cpu_s": round(statistics.median(cpus), 4)}
        self.out[name]["peak_mb"] = peak_mb()
        if repeat > 1:
            self.out[name]["runs"] = [round(r, 4) for r in runs]
        return result

    def check(self, what: str, got: dict[str, set[int]], want: dict[str, set[int]]) -> None:
        """Exact id sets, as strata_run.py checks them."""
        if got != want:
            off = {k: (len(got[k]), len(want[k] - got[k]), len(got[k] - want[k])) for k in want}
            self.problems.append(f"{what}: (ids, missing, extra) per part {off}")

    def report(self, **extra: Any) -> None:
        """Print the worker's JSON."""
        print(json.dumps({"steps": self.out, "problems": self.problems, "notes": self.notes, **extra}))


def cold(steps: Steps, name: str, cmd: list[str], changed: int) -> None:
    """Run one cold resolve in a fresh process; it must find ``changed`` changed samples and nothing else."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"cold resolve failed ({done.returncode}):\n{done.stderr[-3000:]}")
    steps.out[name] = json.loads(done.stdout)
    if steps.out[name]["counts"] != {"added": 0, "changed": changed, "removed": 0}:
        steps.problems.append(f"{name}: {steps.out[name]['counts']}")


# -- strata -----------------------------------------------------------------------------------


@contextmanager
def strata_store(path: Path, limit: str) -> Iterator[Any]:
    """The store on ``path`` with DuckDB's memory limit and spill directory set."""
    import strata_run

    import strata as st

    with st.DuckDBStore(path, graph=strata_run.build_graph()) as store:
        con = store.to_native()
        con.execute(f"SET memory_limit = '{limit}'")
        con.execute(f"SET temp_directory = '{path.parent / 'spill'}'")
        yield store


class StrataDriver:
    """Resolves and writes the way the issue asks: samples as a relation, lazy increments written as they are."""

    def __init__(self, store: Any, steps: Steps) -> None:
        self.store = store
        self.steps = steps

    def fallback(self, what: str, exc: Exception) -> None:
        """Note once that an in-place call raised and the eager path stood in."""
        note = f"{what} raised ({type(exc).__name__}: {str(exc)[:120]}); used the eager path"
        if note not in self.steps.notes:
            self.steps.notes.append(note)

    def resolve_root(self, select: str, *, lazy: bool) -> Any:
        """Resolve video against the snapshot ``select``, given as a relation of the store's connection."""
        relation = self.store.to_native().sql(select)
        try:
            return self.store.resolve_update("video", samples=relation, lazy=lazy)
        except Exception as exc:  # noqa: BLE001 - any refusal of a relation falls back to a frame
            self.fallback("resolve_update(samples=<DuckDB relation>)", exc)
            return self.store.resolve_update("video", samples=relation.pl(), lazy=lazy)

    def resolve_lazy(self, key: str) -> Any:
        """A non-root increment with ``lazy=True``."""
        try:
            return self.store.resolve_update(key, lazy=True)
        except Exception as exc:  # noqa: BLE001
            self.fallback("resolve_update(lazy=True)", exc)
            return self.store.resolve_update(key)

    def write(self, key: str, frame: Any) -> None:
        """Write rows as the increment gave them (lazy or eager)."""
        try:
            self.store.write(key, frame)
        except Exception as exc:
            if not hasattr(frame, "collect"):
                raise
            self.fallback("write(<lazy increment>)", exc)
            self.store.write(key, frame.collect())

    def write_increment(self, key: str, inc: Any) -> None:
        """Write an increment's added and changed rows, and delete its removed ones (root only)."""
        self.write(key, inc.added)
        self.write(key, inc.changed)
        if key == "video":
            self.store.delete(key, inc.removed)

    def propagate(self, key: str) -> None:
        """Resolve ``key`` lazily and write what it gives."""
        self.write_increment(key, self.resolve_lazy(key))


def strata_worker(n: int, path: Path, limit: str) -> None:
    """Run the scenario on strata at size ``n``; print the JSON."""
    import strata_run

    steps = Steps()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    cold_cmd = [sys.executable, __file__, "--cold", "strata", "--n", str(n), "--path", str(path)]

    def first_pass() -> None:
        driver.write("video", driver.resolve_root(snapshot_sql(n, 0), lazy=True).added)
        for key in ("transcript", "embedding"):
            driver.write(key, driver.resolve_lazy(key).added)

    with strata_store(path, limit) as store:
        driver = StrataDriver(store, steps)
        steps.run("first_pass", first_pass)
        modes = []
        steps.run("noop_warm", lambda: modes.append(store.resolve_update("embedding").meta["mode"]), repeat=REPEAT)
        steps.out["noop_warm"]["modes"] = modes
    cold(steps, "cold_noop", cold_cmd, 0)
    with strata_store(path, limit) as store:
        driver = StrataDriver(store, steps)
        inc = steps.run("root_fixed", lambda: driver.resolve_root(snapshot_sql(n, 1), lazy=False))
        steps.check("root, fixed change", strata_run.id_sets(inc), expected_fixed(n))
        driver.write_increment("video", inc)
        driver.propagate("transcript")
    cold(steps, "cold_fixed", cold_cmd, FIXED)
    with strata_store(path, limit) as store:
        driver = StrataDriver(store, steps)
        inc = steps.run("leaf_fixed", lambda: store.resolve_update("embedding"), repeat=REPEAT)
        steps.out["leaf_fixed"]["mode"] = inc.meta["mode"]
        steps.check("leaf, fixed change", strata_run.id_sets(inc), expected_fixed(n))
        steps.run("delta_write", lambda: store.write("embedding", strata_run.writable(inc)))

        def root_step() -> Any:
            inc = driver.resolve_root(snapshot_sql(n, 2), lazy=False)
            driver.write_increment("video", inc)
            return inc

        inc = steps.run("root_1pct", root_step)
        want = strata_run.expected_delta(n)
        steps.check("root, 1 %", strata_run.id_sets(inc), want["video"])
        steps.run("transcript_1pct", lambda: driver.propagate("transcript"))
        inc = steps.run("leaf_1pct", lambda: store.resolve_update("embedding"))
        steps.out["leaf_1pct"]["mode"] = inc.meta["mode"]
        synced = strata_run.id_sets(inc)
        steps.check("leaf, 1 %", synced, want["embedding"])
        erased = hard_deleted(n)
        frame = store.to_native().sql(f"SELECT range::BIGINT AS {ID} FROM range(3, {n}, {n // FIXED})").to_arrow_table()
        steps.run("hard_delete", lambda: store.delete("embedding", frame, soft=False))
        inc = steps.run("full_compare", lambda: store.resolve_update("embedding"), repeat=REPEAT)
        steps.out["full_compare"]["mode"] = inc.meta["mode"]
        steps.check(
            "full comparison after a hard delete", strata_run.id_sets(inc), {**synced, "new": synced["new"] | erased}
        )
    version = __import__("strata").__version__
    steps.report(n=n, tool="strata", version=version, disk_mb=disk_mb(path.parent), memory_limit=limit)


def strata_cold(n: int, path: Path) -> None:
    """A fresh process: imports, then open the store and answer the leaf's first resolve."""
    start = time.perf_counter()
    import duckdb  # noqa: F401 - what the store imports on its first use, counted as imports
    import narwhals  # noqa: F401
    import polars as pl  # noqa: F401
    import pyarrow as pa  # noqa: F401
    import strata_run

    import strata as st

    graph = strata_run.build_graph()
    store_class = st.DuckDBStore
    imports = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    store = store_class(path, graph=graph)
    with store:
        opened = time.perf_counter() - start
        inc = store.resolve_update("embedding")
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        counts, mode = inc.counts(), inc.meta["mode"]
    print(json.dumps(cold_report(imports, opened, (took, cpu), counts, mode, n)))


def cold_report(
    imports: float, opened: float, took: tuple[float, float], counts: dict[str, int], mode: str, n: int
) -> dict[str, Any]:
    """A cold resolve's JSON: seconds of open + first resolve (``took``: wall, process CPU), imports apart."""
    return {
        "s": round(took[0], 4),
        "cpu_s": round(took[1], 4),
        "open_s": round(opened, 4),
        "imports_s": round(imports, 4),
        "counts": counts,
        "mode": mode,
        "n": n,
        "peak_mb": peak_mb(),
    }


# -- hand-written DuckDB SQL ------------------------------------------------------------------

EXPECTED_TEXT = "SELECT sample_uid, md5(audio) AS text FROM video"
EXPECTED_VECTOR = (
    "SELECT v.sample_uid, md5(t.text || '|' || v.frames) AS vector FROM video v JOIN transcript t USING (sample_uid)"
)


def compare_sql(expected: str, table: str, column: str) -> str:
    """One query: the ids (and new versions) to add, change and remove for ``table``."""
    return (
        f"SELECT CASE {_parts()} ELSE 'changed' END AS part, coalesce(e.sample_uid, s.sample_uid) AS sample_uid, "
        f"e.{column} FROM ({expected}) e FULL OUTER JOIN {table} s ON e.sample_uid = s.sample_uid "
        f"WHERE e.{column} IS DISTINCT FROM s.{column}"
    )


def _parts() -> str:
    """Which side is missing says the part: no stored row = added, no expected row = removed."""
    return "WHEN s.sample_uid IS NULL THEN 'added' WHEN e.sample_uid IS NULL THEN 'removed'"


def sql_resolve(con: Any, expected: str, table: str, column: str) -> Any:
    """The increment as a PyArrow table (part, sample_uid, new version)."""
    return con.sql(compare_sql(expected, table, column)).to_arrow_table()


def sql_apply(con: Any, table: str, column: str, inc: Any) -> None:
    """Write an increment: insert the added, update the changed, delete the removed."""
    con.register("inc", inc)
    con.execute(f"INSERT INTO {table} SELECT sample_uid, {column} FROM inc WHERE part = 'added'")
    con.execute(
        f"UPDATE {table} SET {column} = inc.{column} FROM inc WHERE inc.part = 'changed' "
        f"AND {table}.sample_uid = inc.sample_uid"
    )
    con.execute(f"DELETE FROM {table} WHERE sample_uid IN (SELECT sample_uid FROM inc WHERE part = 'removed')")
    con.unregister("inc")


def sql_root(con: Any, select: str) -> Any:
    """The root increment against a snapshot: all three version columns compared in one query."""
    snapshot = f"SELECT sample_uid, strata_dv__audio AS audio, strata_dv__frames AS frames FROM ({select})"
    query = (
        f"SELECT CASE {_parts()} ELSE 'changed' END AS part, coalesce(e.sample_uid, s.sample_uid) AS sample_uid, "
        f"e.audio, e.frames FROM ({snapshot}) e FULL OUTER JOIN video s ON e.sample_uid = s.sample_uid "
        f"WHERE e.audio IS DISTINCT FROM s.audio OR e.frames IS DISTINCT FROM s.frames"
    )
    return con.sql(query).to_arrow_table()


def sql_apply_root(con: Any, inc: Any) -> None:
    """Write the root's increment."""
    con.register("inc", inc)
    con.execute("INSERT INTO video SELECT sample_uid, audio, frames FROM inc WHERE part = 'added'")
    con.execute(
        "UPDATE video SET audio = inc.audio, frames = inc.frames FROM inc "
        "WHERE inc.part = 'changed' AND video.sample_uid = inc.sample_uid"
    )
    con.execute("DELETE FROM video WHERE sample_uid IN (SELECT sample_uid FROM inc WHERE part = 'removed')")
    con.unregister("inc")


def sql_ids(inc: Any) -> dict[str, set[int]]:
    """An SQL increment's id sets under strata_run's names."""
    names = {"added": "new", "changed": "stale", "removed": "orphaned"}
    got: dict[str, set[int]] = {name: set() for name in names.values()}
    for part, uid in zip(inc.column("part").to_pylist(), inc.column(ID).to_pylist(), strict=True):
        got[names[part]].add(uid)
    return got


@contextmanager
def sql_db(path: Path, limit: str) -> Iterator[Any]:
    """A plain DuckDB connection with the same memory limit."""
    import duckdb

    con = duckdb.connect(str(path))
    con.execute(f"SET memory_limit = '{limit}'")
    con.execute(f"SET temp_directory = '{path.parent / 'spill'}'")
    try:
        yield con
    finally:
        con.close()


def sql_leaf(con: Any) -> Any:
    """The leaf's increment: always the full comparison (plain SQL keeps no sync record)."""
    return sql_resolve(con, EXPECTED_VECTOR, "embedding", "vector")


def sql_worker(n: int, path: Path, limit: str) -> None:
    """Run the scenario in plain DuckDB SQL at size ``n``; print the JSON."""
    import duckdb
    import strata_run

    steps = Steps()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    cold_cmd = [sys.executable, __file__, "--cold", "sql", "--n", str(n), "--path", str(path)]
    sample = snapshot_sql(n, 0).replace("strata_dv__audio", "audio").replace("strata_dv__frames", "frames")

    def first_pass() -> None:
        con.execute(f"CREATE TABLE video AS {sample}")
        con.execute(f"CREATE TABLE transcript AS {EXPECTED_TEXT}")
        con.execute(f"CREATE TABLE embedding AS {EXPECTED_VECTOR}")

    with sql_db(path, limit) as con:
        steps.run("first_pass", first_pass)
        steps.run("noop_warm", lambda: sql_leaf(con), repeat=REPEAT)
    cold(steps, "cold_noop", cold_cmd, 0)
    with sql_db(path, limit) as con:
        inc = steps.run("root_fixed", lambda: sql_root(con, snapshot_sql(n, 1)))
        steps.check("root, fixed change", sql_ids(inc), expected_fixed(n))
        sql_apply_root(con, inc)
        sql_apply(con, "transcript", "text", sql_resolve(con, EXPECTED_TEXT, "transcript", "text"))
    cold(steps, "cold_fixed", cold_cmd, FIXED)
    with sql_db(path, limit) as con:
        inc = steps.run("leaf_fixed", lambda: sql_leaf(con), repeat=REPEAT)
        steps.check("leaf, fixed change", sql_ids(inc), expected_fixed(n))
        steps.run("delta_write", lambda: sql_apply(con, "embedding", "vector", inc))

        def root_step() -> Any:
            inc = sql_root(con, snapshot_sql(n, 2))
            sql_apply_root(con, inc)
            return inc

        inc = steps.run("root_1pct", root_step)
        want = strata_run.expected_delta(n)
        steps.check("root, 1 %", sql_ids(inc), want["video"])
        steps.run(
            "transcript_1pct",
            lambda: sql_apply(con, "transcript", "text", sql_resolve(con, EXPECTED_TEXT, "transcript", "text")),
        )
        inc = steps.run("leaf_1pct", lambda: sql_leaf(con))
        synced = sql_ids(inc)
        steps.check("leaf, 1 %", synced, want["embedding"])
        every = n // FIXED
        steps.run("hard_delete", lambda: con.execute(f"DELETE FROM embedding WHERE sample_uid % {every} = 3"))
        inc = steps.run("full_compare", lambda: sql_leaf(con), repeat=REPEAT)
        steps.check(
            "full comparison after a hard delete", sql_ids(inc), {**synced, "new": synced["new"] | hard_deleted(n)}
        )
    steps.report(n=n, tool="sql", version=duckdb.__version__, disk_mb=disk_mb(path.parent), memory_limit=limit)


def sql_cold(n: int, path: Path) -> None:
    """A fresh process: import DuckDB, open the file, run the leaf's comparison."""
    start = time.perf_counter()
    import duckdb
    import pyarrow as pa  # noqa: F401 - the result comes back as Arrow

    imports = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(path))
    opened = time.perf_counter() - start
    inc = sql_leaf(con)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    con.close()
    ids = sql_ids(inc)
    counts = {"added": len(ids["new"]), "changed": len(ids["stale"]), "removed": len(ids["orphaned"])}
    print(json.dumps(cold_report(imports, opened, (took, cpu), counts, "full", n)))


# -- the driver -------------------------------------------------------------------------------


def disk_mb(folder: Path) -> float:
    """Bytes under ``folder`` in MB."""
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def worker(tool: str, n: int, limit: str) -> dict[str, Any] | None:
    """One tool at one size in its own process (niced); None (and why, on stderr) when it failed."""
    folder = WORK / f"{tool}-{n}"
    if tool == "metaxy":
        made = subprocess.run(
            [sys.executable, str(HERE / "metaxy_venv.py")], capture_output=True, text=True, check=True
        )
        python = made.stdout.strip().splitlines()[-1]
        cmd = [python, str(HERE / "metaxy_run.py"), "--n", str(n), "--store", "duckdb-file", "--workdir", str(folder)]
    else:
        cmd = [sys.executable, __file__, "--worker", tool, "--n", str(n), "--path", str(folder / f"{tool}.duckdb")]
        cmd += ["--memory-limit", limit]
    print(f"... {tool} at {n:,}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run([NICE, *cmd], capture_output=True, text=True, check=False)
    if done.returncode != 0:  # the other tools' figures are kept: a run at 1e8 takes long
        print(f"{tool} at {n:,} failed ({done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    result: dict[str, Any] = json.loads(done.stdout)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    if tool == "metaxy":
        result = from_metaxy(result)
    shutil.rmtree(folder, ignore_errors=True)  # the next size needs the disk more
    return result


def from_metaxy(raw: dict[str, Any]) -> dict[str, Any]:
    """metaxy_run.py's JSON in this script's shape (only the steps both scenarios share)."""
    peak = raw["peak_rss_mb"]  # whole run: metaxy_run.py measures no single step
    shared = {
        "first_pass": raw["first"],
        "noop_warm": raw["noop_leaf"],
        "leaf_1pct": raw["delta_leaf"],
        "root_1pct": raw["delta_steps"]["video"],
    }
    problems = [] if raw["checks_ok"] else ["metaxy_run.py: delta id sets (see its stderr)"]
    return {
        "steps": {k: {"s": v, "peak_mb": peak} for k, v in shared.items()},
        "problems": problems,
        "notes": [],
        "version": raw["metaxy_version"],
        "raw": raw,
    }


ROWS = [
    ("first_pass", "first pass (3 features, resolve + write)"),
    ("cold_noop", "cold first resolve, no-op"),
    ("cold_fixed", "cold first resolve, 1,000 changed"),
    ("noop_warm", "warm no-op leaf resolve"),
    ("leaf_fixed", "leaf resolve, 1,000 changed"),
    ("delta_write", "delta write (leaf, 1,000 rows)"),
    ("root_fixed", "root resolve, full snapshot, 1,000 changed"),
    ("root_1pct", "1 % root step (resolve+write+delete)"),
    ("transcript_1pct", "1 % transcript step (resolve+write)"),
    ("leaf_1pct", "1 % leaf resolve"),
    ("full_compare", "full comparison (after a hard delete)"),
]


def cell(result: dict[str, Any] | None, key: str, field: str = "s") -> float | None:
    """One figure, or None where the tool has no such step."""
    if result is None or key not in result["steps"]:
        return None
    value = result["steps"][key].get(field)
    return None if value is None else float(value)


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A figure or a dash."""
    return "—" if value is None else format(value, spec)


def ratio(top: float | None, bottom: float | None) -> str:
    """Top / bottom as ``1.2x``, or a dash."""
    return "—" if top is None or not bottom else f"{top / bottom:.1f}x"


def table(n: int, results: dict[str, dict[str, Any] | None]) -> list[str]:
    """The Markdown table for one size."""
    strata, sql, metaxy = results["strata"], results["sql"], results["metaxy"]
    lines = [
        f"N = {n:,}",
        "| step | strata s | SQL s | Metaxy s | strata / SQL | Metaxy / strata | strata MB | SQL MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in ROWS:
        s, q, m = cell(strata, key), cell(sql, key), cell(metaxy, key)
        mbs = fmt(cell(strata, key, "peak_mb"), ".0f"), fmt(cell(sql, key, "peak_mb"), ".0f")
        lines.append(
            f"| {label} | {fmt(s)} | {fmt(q)} | {fmt(m)} | {ratio(s, q)} | {ratio(m, s)} | {mbs[0]} | {mbs[1]} |"
        )
    for name, result in (("strata", strata), ("SQL", sql)):
        if result:
            imports = result["steps"]["cold_noop"]["imports_s"]
            modes = {k: v.get("mode", v.get("modes")) for k, v in result["steps"].items() if {"mode", "modes"} & set(v)}
            lines.append(f"{name}: imports in a fresh process {imports:.3f} s; disk {result['disk_mb']:,.0f} MB")
            if modes:
                lines.append(f"{name} resolve modes: {modes}")
    lines.append("SQL keeps no sync record: each of its leaf resolves (no-op, 1,000, 1 %) is the full comparison")
    if metaxy:
        lines.append(f"Metaxy {metaxy['version']}: peak RSS of its whole run {metaxy['raw']['peak_rss_mb']:.0f} MB")
    return lines


def growth(sizes: list[int], all_results: dict[int, dict[str, dict[str, Any] | None]]) -> list[str]:
    """Seconds and peak RSS of each step, each size over the one before."""
    pairs = list(itertools.pairwise(sizes))
    if not pairs:
        return []
    heads = [f"{size_label(b)}/{size_label(a)}" for a, b in pairs]
    lines = [
        "| growth | " + " | ".join(f"strata s {h} | strata MB {h} | SQL s {h}" for h in heads) + " |",
        "|---" * (1 + 3 * len(pairs)) + "|",
    ]
    for key, label in ROWS:
        parts = []
        for a, b in pairs:
            ra, rb = all_results[a], all_results[b]
            parts.append(ratio(cell(rb["strata"], key), cell(ra["strata"], key)))
            parts.append(ratio(cell(rb["strata"], key, "peak_mb"), cell(ra["strata"], key, "peak_mb")))
            parts.append(ratio(cell(rb["sql"], key), cell(ra["sql"], key)))
        lines.append(f"| {label} | " + " | ".join(parts) + " |")
    return lines


def size_label(n: int) -> str:
    """1000000 as 1M, 200000 as 200k."""
    return f"{n // 10**6}M" if n % 10**6 == 0 else f"{n // 1000}k"


def merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Several rounds of one tool at one size: per step the median seconds and peak, the rest from round one."""
    merged = copy.deepcopy(rounds[0])
    for key, step in merged["steps"].items():
        for field in ("s", "peak_mb"):
            step[field] = statistics.median(r["steps"][key][field] for r in rounds)
        if len(rounds) > 1:
            step["rounds"] = [r["steps"][key]["s"] for r in rounds]
    merged["problems"] = [p for r in rounds for p in r["problems"]]
    return merged


def parse_sizes(text: str, *, huge: bool) -> list[int]:
    """``1e6,1e7`` as ints; 1e8 and above only with ``--huge``."""
    sizes = sorted({int(float(part)) for part in text.split(",") if part.strip()})
    if huge and HUGE not in sizes:
        sizes.append(HUGE)
    if not huge and any(n >= HUGE for n in sizes):
        msg = "1e8 samples need --huge (10 GB of disk, an hour or more per tool); add --huge"
        raise ValueError(msg)
    if any(n % FIXED or n < FIXED * 200 for n in sizes):
        msg = "sizes must be multiples of 1,000 and at least 200,000; use e.g. 1e6"
        raise ValueError(msg)
    return sizes


def main() -> int:
    """Run every tool at every size and print the tables; exit 1 on a wrong increment."""
    parser = argparse.ArgumentParser(description="feature metadata at scale: strata vs SQL vs Metaxy")
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--huge", action="store_true", help="also (or allow) 1e8 samples")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB's memory_limit for strata and SQL")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--rounds", type=int, default=1, help="run each tool this often per size; medians")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier run's --json, run nothing")
    parser.add_argument("--tools", default="strata,sql,metaxy", help="which tools to run (Metaxy only up to 1M)")
    parser.add_argument("--worker", choices=["strata", "sql"], help=argparse.SUPPRESS)
    parser.add_argument("--cold", choices=["strata", "sql"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        (strata_worker if args.worker == "strata" else sql_worker)(args.n, args.path, args.memory_limit)
        return 0
    if args.cold:
        (strata_cold if args.cold == "strata" else sql_cold)(args.n, args.path)
        return 0
    if args.report:
        return report(json.loads(args.report.read_text()), args.memory_limit)
    try:
        sizes = parse_sizes(args.sizes, huge=args.huge)
    except ValueError as exc:
        parser.error(str(exc))  # exit 2: bad usage
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    all_results: dict[str, dict[str, dict[str, Any] | None]] = {}
    failed = False
    for n in sizes:
        wanted = args.tools.split(",")
        tools = [t for t in ("strata", "sql", "metaxy") if t in wanted and (t != "metaxy" or n <= METAXY_MAX)]
        rounds = [{tool: worker(tool, n, args.memory_limit) for tool in tools} for _ in range(args.rounds)]
        results: dict[str, dict[str, Any] | None] = {"strata": None, "sql": None, "metaxy": None}
        for tool in tools:
            runs = [r[tool] for r in rounds]
            failed |= any(run is None for run in runs)
            results[tool] = None if any(run is None for run in runs) else merge([run for run in runs if run])
        all_results[str(n)] = results
        if args.json:  # after every size, so a long run that stops later keeps what it measured
            args.json.write_text(json.dumps(all_results, indent=2) + "\n")
        print("\n".join(table(n, results)) + "\n", flush=True)
    return max(report(all_results, args.memory_limit, tables=False), int(failed))


def report(all_results: dict[str, dict[str, dict[str, Any] | None]], limit: str, *, tables: bool = True) -> int:
    """Print the tables (unless printed already), notes, failed checks and growth; 1 if a check failed."""
    sizes = sorted(int(n) for n in all_results)
    failed = False
    for n in sizes:
        results = all_results[str(n)]
        if tables:
            print("\n".join(table(n, results)) + "\n")
        for tool, result in results.items():
            for note in (result or {}).get("notes", []):
                print(f"note ({tool}, {n:,}): {note}")
            for problem in (result or {}).get("problems", []):
                print(f"CHECK FAILED ({tool}, {n:,}): {problem}")
                failed = True
    print("\n".join(growth(sizes, {n: all_results[str(n)] for n in sizes})))
    limits = {r["memory_limit"] for res in all_results.values() for r in res.values() if r and "memory_limit" in r}
    print(f"\nmemory_limit {', '.join(sorted(limits)) or limit}; exact increments: {'FAIL' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
