"""The PostgreSQL store at scale, side by side with the DuckDB store and with hand-written PostgreSQL SQL.

    .venv/bin/python bench/features/postgres.py [--sizes 1e6] [--big] [--repeat 3] [--json PATH]

The graph and data of ``strata_run.py`` (video -> transcript -> embedding; the README's delta:
1 % of the samples changed, 0.1 % new, 0.1 % dropped). Each side runs each size in its own
process (``--worker``), against a PostgreSQL server this script starts for the run (the tests'
``running_postgres``: a throwaway cluster, ``fsync=off``) and a DuckDB file under
``bench/.work/features/postgres/``. Steps, each timed in wall seconds, the worker's CPU seconds
and the PostgreSQL server's CPU seconds (its backends' and its own, from ``/proc``):

- ``first_pass``: every sample of the root resolved and written, then transcript and embedding;
- ``noop``: the leaf resolved again with nothing changed (median of ``--repeat``);
- ``root_1pct``: the delta's snapshot resolved against video and written (removed ids deleted),
  then transcript brought up to date (not timed);
- ``leaf_1pct``: the leaf's increment after the delta (checked id by id);
- ``delta_write``: that increment written back.

The hand-written side keeps one plain table per feature (id, version) and asks the same
questions in one query each, as ``scale.py`` does for DuckDB: a full outer join of the expected
versions (``md5`` on the server) against the stored ones; writes are ``COPY`` into a temp table,
then ``INSERT`` / ``UPDATE`` / ``DELETE``. It keeps no sync record, so its no-op is a full
comparison. ``--big`` adds 10M.

Metaxy 0.1.11's PostgreSQL store (``metaxy.ext.postgresql.PostgreSQLMetadataStore``, through ibis)
runs ``metaxy_run.py --store postgres`` in the shared Metaxy venv (``metaxy_venv.py``; up to
``--metaxy-max`` samples) on a database of its own. That venv lacks ibis' driver, psycopg 3: the
run puts this checkout's psycopg on its ``PYTHONPATH`` (links under ``bench/.work``), the venv is
left as it is. Its steps are Metaxy's own (wall seconds of the whole process's step; no delta write).
"""

# ruff: noqa: S608 - the SQL is built from this file's own constants and integers, never from input

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work" / "features" / "postgres"
ID = "sample_uid"
SIDES = ("duckdb", "postgres", "sql")
METAXY_PYTHON = Path(
    os.environ.get("STRATA_BENCH_METAXY_PYTHON", ROOT / "bench" / ".venvs" / "metaxy" / "bin" / "python")
)
"""Metaxy's venv (``metaxy_venv.py`` makes it); another checkout's with ``STRATA_BENCH_METAXY_PYTHON``."""
sys.path[:0] = [str(HERE), str(ROOT)]


def server_cpu(data: Path | None) -> float:
    """CPU seconds of the server whose data directory is ``data``: the postmaster, its reaped and live children."""
    if data is None or not (data / "postmaster.pid").exists():
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    master = int((data / "postmaster.pid").read_text().split()[0])
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(proc.name), int(fields[1])
        if pid == master:
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif parent == master:
            total += int(fields[11]) + int(fields[12])
    return total / tick


class Steps:
    """Timed steps: median wall seconds, worker CPU and server CPU per step; failed checks."""

    def __init__(self, data: Path | None) -> None:
        self.data = data
        self.out: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []

    def run(self, name: str, fn: Callable[[], Any], *, repeat: int = 1) -> Any:
        walls, cpus, servers, result = [], [], [], None
        for _ in range(repeat):
            wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu(self.data)
            result = fn()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            servers.append(server_cpu(self.data) - server)
        self.out[name] = {
            "s": round(statistics.median(walls), 3),
            "cpu_s": round(statistics.median(cpus), 3),
            "server_cpu_s": round(statistics.median(servers), 3),
        }
        return result

    def check(self, what: str, got: dict[str, set[int]], want: dict[str, set[int]]) -> None:
        if got != want:
            off = {k: (len(got[k]), len(want[k] - got[k]), len(got[k] - want[k])) for k in want}
            self.problems.append(f"{what}: (ids, missing, extra) per part {off}")


# -- strata (either store) ------------------------------------------------------------------


def strata_worker(side: str, n: int, dsn: str, repeat: int) -> dict[str, Any]:
    """The scenario through strata's API on the DuckDB or the PostgreSQL store."""
    import strata_run

    import strata as st

    data = None
    if side == "postgres":
        data = Path(os.environ["STRATA_BENCH_PG_DATA"])
        store: Any = st.PostgresStore(dsn, schema=f"strata_{n}", graph=strata_run.build_graph())
    else:
        path = WORK / f"strata_{n}.duckdb"
        path.unlink(missing_ok=True)
        store = st.DuckDBStore(path, graph=strata_run.build_graph())
    steps = Steps(data)
    lazy = side == "duckdb"  # each store's own best: DuckDB writes lazy increments in place

    def write(key: str, inc: Any, *, delete: bool = False) -> None:
        if inc.lazy:
            store.write(key, inc.added)
            store.write(key, inc.changed)
        else:
            store.write(key, strata_run.writable(inc))
        if delete and len(inc.removed.collect() if inc.lazy else inc.removed):
            store.delete(key, inc.removed)

    def first_pass() -> None:
        write("video", store.resolve_update("video", samples=strata_run.root_samples(n, delta=False), lazy=lazy))
        for key in ("transcript", "embedding"):
            write(key, store.resolve_update(key, lazy=lazy))

    with store:
        steps.run("first_pass", first_pass)
        inc = steps.run("noop", lambda: store.resolve_update("embedding"), repeat=repeat)
        steps.out["noop"]["mode"] = inc.meta.get("mode")
        delta = strata_run.root_samples(n, delta=True)
        steps.run("root_1pct", lambda: write("video", store.resolve_update("video", samples=delta), delete=True))
        write("transcript", store.resolve_update("transcript"), delete=True)
        inc = steps.run("leaf_1pct", lambda: store.resolve_update("embedding"))
        steps.out["leaf_1pct"]["mode"] = inc.meta.get("mode")
        steps.check("leaf, 1 %", strata_run.id_sets(inc), strata_run.expected_delta(n)["embedding"])
        steps.run("delta_write", lambda: store.write("embedding", strata_run.writable(inc)))
    return {"steps": steps.out, "problems": steps.problems}


# -- hand-written PostgreSQL SQL --------------------------------------------------------------

EXPECTED = {
    "transcript": ("text", "SELECT sample_uid, md5(audio) AS text FROM video"),
    "embedding": (
        "vector",
        (
            "SELECT v.sample_uid, md5(t.text || '|' || v.frames) AS vector "
            "FROM video v JOIN transcript t USING (sample_uid)"
        ),
    ),
}


def compare(expected: str, table: str, columns: list[str]) -> str:
    """One query: part, id and new versions of every sample to add, change or remove."""
    differ = " OR ".join(f"e.{c} IS DISTINCT FROM s.{c}" for c in columns)
    return (
        "SELECT CASE WHEN s.sample_uid IS NULL THEN 'added' WHEN e.sample_uid IS NULL THEN 'removed' "
        f"ELSE 'changed' END AS part, coalesce(e.sample_uid, s.sample_uid) AS sample_uid, "
        f"{', '.join(f'e.{c}' for c in columns)} FROM ({expected}) e FULL JOIN {table} s "
        f"ON e.sample_uid = s.sample_uid WHERE {differ}"
    )


def ids(rows: list[tuple[Any, ...]]) -> dict[str, set[int]]:
    """The id sets of the hand-written increment's rows, under strata_run's names."""
    names = {"added": "new", "changed": "stale", "removed": "orphaned"}
    got: dict[str, set[int]] = {name: set() for name in names.values()}
    for row in rows:
        got[names[row[0]]].add(row[1])
    return got


def sql_worker(n: int, dsn: str, repeat: int) -> dict[str, Any]:
    """The scenario in plain PostgreSQL: one table per feature, one query per question."""
    import polars as pl
    import psycopg
    import strata_run

    steps = Steps(Path(os.environ["STRATA_BENCH_PG_DATA"]))
    con = psycopg.connect(dsn, autocommit=True)
    schema = f"sql_{n}"
    con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    con.execute(f"CREATE SCHEMA {schema}")
    con.execute(f"SET search_path TO {schema}")
    con.execute("SET jit TO off")  # as the store's session has it: compiling these queries costs more than running

    def copy_in(table: str, frame: pl.DataFrame) -> None:
        with con.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
            copy.write(frame.write_csv(include_header=False).encode())

    def resolve(expected: str, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
        return con.execute(compare(expected, table, columns)).fetchall()

    def apply(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        """Write an increment in one transaction: COPY it into a temp table, then insert, update, delete."""
        frame = pl.DataFrame(rows, schema=["part", ID, *columns], orient="row")
        with con.transaction():
            con.execute(
                f"CREATE TEMP TABLE inc (part text, sample_uid bigint, {', '.join(f'{c} text' for c in columns)})"
            )
            copy_in("inc", frame)
            values = ", ".join(columns)
            con.execute(f"INSERT INTO {table} SELECT sample_uid, {values} FROM inc WHERE part = 'added'")
            sets = ", ".join(f"{c} = inc.{c}" for c in columns)
            con.execute(
                f"UPDATE {table} SET {sets} FROM inc WHERE inc.part = 'changed' AND {table}.sample_uid = inc.sample_uid"
            )
            con.execute(f"DELETE FROM {table} WHERE sample_uid IN (SELECT sample_uid FROM inc WHERE part = 'removed')")
            con.execute("DROP TABLE inc")

    def snapshot(delta: bool) -> pl.DataFrame:
        return strata_run.root_samples(n, delta=delta).rename(
            {"strata_dv__audio": "audio", "strata_dv__frames": "frames"}
        )

    def first_pass() -> None:
        con.execute("CREATE TABLE video (sample_uid bigint PRIMARY KEY, audio text, frames text)")
        copy_in("video", snapshot(delta=False))
        for table, (column, expected) in EXPECTED.items():
            con.execute(f"CREATE TABLE {table} AS {expected}")
            con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (sample_uid)")
            con.execute(f"ANALYZE {table}")
            del column

    def root_step() -> None:
        con.execute("CREATE TEMP TABLE snapshot (sample_uid bigint, audio text, frames text)")
        copy_in("snapshot", snapshot(delta=True))
        apply("video", ["audio", "frames"], resolve("SELECT * FROM snapshot", "video", ["audio", "frames"]))
        con.execute("DROP TABLE snapshot")

    text, vector = EXPECTED["transcript"], EXPECTED["embedding"]
    steps.run("first_pass", first_pass)
    steps.run("noop", lambda: resolve(vector[1], "embedding", ["vector"]), repeat=repeat)
    steps.run("root_1pct", root_step)
    apply("transcript", ["text"], resolve(text[1], "transcript", ["text"]))
    rows = steps.run("leaf_1pct", lambda: resolve(vector[1], "embedding", ["vector"]))
    steps.check("leaf, 1 %", ids(rows), strata_run.expected_delta(n)["embedding"])
    steps.run("delta_write", lambda: apply("embedding", ["vector"], rows))
    con.close()
    return {"steps": steps.out, "problems": steps.problems}


# -- the run ----------------------------------------------------------------------------------


def worker(side: str, n: int, dsn: str, repeat: int) -> None:
    """One side at one size; its JSON on stdout."""
    report = sql_worker(n, dsn, repeat) if side == "sql" else strata_worker(side, n, dsn, repeat)
    print(json.dumps({"side": side, "n": n, **report}))


def metaxy(n: int, server: Any) -> dict[str, Any] | None:
    """Metaxy's PostgreSQL store at size ``n`` on a fresh database, as this run's steps; None without its venv."""
    if not METAXY_PYTHON.exists():
        return None
    import psycopg

    links = WORK / "metaxy-psycopg"
    links.mkdir(parents=True, exist_ok=True)
    site = Path(psycopg.__file__).parent.parent
    for name in ("psycopg", "psycopg_binary", "psycopg_binary.libs"):
        if (site / name).exists() and not (links / name).exists():
            (links / name).symlink_to(site / name)
    database = server.create_database()
    command = [str(METAXY_PYTHON), str(HERE / "metaxy_run.py"), "--n", str(n), "--store", "postgres"]
    command += ["--dsn", server.dsn(database), "--workdir", str(WORK / "metaxy")]
    env = {**os.environ, "PYTHONPATH": str(links)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    server.drop_database(database)
    if done.returncode != 0:
        sys.exit(f"metaxy at {n} failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    steps = {"first_pass": got["first"], "noop": got["noop_leaf"], "root_1pct": got["delta_steps"]["video"]}
    steps["leaf_1pct"] = got["delta_leaf"]
    problems = [] if got["checks_ok"] else ["its checks failed (see its stderr)"]
    return {"side": "metaxy", "n": n, "steps": {k: {"s": v} for k, v in steps.items()}, "problems": problems}


def cell(got: dict[str, Any] | None) -> str:
    """Seconds, and CPU seconds (worker + server) when measured."""
    if got is None:
        return "-"
    if "cpu_s" not in got:
        return f"{got['s']:.3f} s"
    return f"{got['s']:.3f} s (cpu {got['cpu_s']:.2f}+{got['server_cpu_s']:.2f})"


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table: seconds per step and side (CPU: worker + server), and the PostgreSQL store / each other."""
    steps = ["first_pass", "noop", "root_1pct", "leaf_1pct", "delta_write"]
    sides = (*SIDES, "metaxy")
    lines = [
        (
            "| N | step | DuckDB store | PostgreSQL store | hand-written PG SQL | Metaxy PG store "
            "| PG store / DuckDB | PG store / PG SQL | PG store / Metaxy |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["side"], r["n"]): r["steps"] for r in results}
    for n in sorted({r["n"] for r in results}):
        for step in steps:
            got = {side: by.get((side, n), {}).get(step) for side in sides}
            mine = got["postgres"]
            ratios = [
                f"{mine['s'] / other['s']:.2f}" if mine and other and other["s"] else "-"
                for other in (got["duckdb"], got["sql"], got["metaxy"])
            ]
            lines.append(f"| {n:,} | {step} | {' | '.join(cell(got[s]) for s in sides)} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def main() -> int:
    """Start a server, run every side at every size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e6")
    parser.add_argument("--big", action="store_true", help="add 10M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--metaxy-max", type=float, default=1e6, help="largest size Metaxy runs (0: none)")
    parser.add_argument("--sides", default=",".join(SIDES), help="which of duckdb, postgres, sql to run")
    parser.add_argument("--worker", choices=SIDES)
    parser.add_argument("--n", type=int)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.dsn, args.repeat)
        return 0
    from tests.servers import postgres_bin_dir, running_postgres

    sizes = [int(float(s)) for s in args.sizes.split(",")] + ([10_000_000] if args.big else [])
    WORK.mkdir(parents=True, exist_ok=True)
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        sys.exit("PostgreSQL is not installed: apt-get install -y postgresql")
    results, problems = [], []
    with running_postgres(bin_dir) as server:
        assert server.control is not None
        env = {**os.environ, "STRATA_BENCH_PG_DATA": str(server.control.data)}
        for n in sizes:
            for side in args.sides.split(","):
                if not side:
                    continue
                command = [sys.executable, __file__, "--worker", side, "--n", str(n), "--dsn", server.dsn()]
                done = subprocess.run(
                    [*command, "--repeat", str(args.repeat)], capture_output=True, text=True, env=env, check=False
                )
                if done.returncode != 0:
                    sys.exit(f"{side} at {n} failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results.append(result)
                problems += [f"{side} {n}: {p}" for p in result["problems"]]
                print(f"{side} n={n}: {json.dumps(result['steps'])}", file=sys.stderr)
            found = metaxy(n, server) if n <= args.metaxy_max else None
            if found is not None:
                results.append(found)
                problems += [f"metaxy {n}: {p}" for p in found["problems"]]
                print(f"metaxy n={n}: {json.dumps(found['steps'])}", file=sys.stderr)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(table(results))
    print(f"\nload average {' '.join(load)}; problems: {problems or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "load": load, "problems": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
