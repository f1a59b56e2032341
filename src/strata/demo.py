"""The demo behind ``strata demo``: source to embedding, then one column changes.

1. A new project: ``tap-jsonl`` (a real Singer tap from PyPI, in its own venv) reads generated
   articles; the built-in ``target-strata`` loads them as the root feature ``articles``; a
   feature module defines ``clean`` (``text`` <- ``articles.body``, ``headline`` <-
   ``articles.title``) and ``embedding`` (``vector`` <- ``clean.text``, ``articles.tags``), with
   small CPU-only compute functions.
2. ``strata run tap-jsonl target-strata features:build``: ingest, then build everything.
3. A few articles get a new ``body``, many a new ``views`` (a column no feature reads), and the
   same run goes again: the table shows, per field, the samples skipped and recomputed, and why.
4. The same pipeline runs on the same source into an empty copy of the project (a full rebuild),
   timed: a second table splits both runs into the tap, target-strata after the tap, each build
   and the rest (from the plugins' exit times, the builds' own seconds and target-strata's line).
5. Last, the one command that opens the project's page in a browser: ``strata -C DIR ui``.
"""

from __future__ import annotations

import json
import re
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

TAP = "tap-jsonl"
TAP_PIP_URL = "tap-jsonl==0.3.1"
CHANGED_BODIES = 5
CHANGED_VIEWS = 50
_WORDS = [
    "data",
    "feature",
    "store",
    "stream",
    "embedding",
    "vector",
    "model",
    "source",
    "column",
    "field",
    "sample",
    "graph",
    "fresh",
    "change",
    "ingest",
    "build",
    "cache",
    "query",
    "table",
    "batch",
    "version",
    "hash",
]
_TARGET_LINE = re.compile(
    r"stream (\S+) -> feature (\S+): (\d+) records, (\d+) added, (\d+) changed, (\d+) unchanged, (\d+) removed"
)
_TARGET_SECONDS = re.compile(
    r"chunk\(s\): ([\d.]+) s loading the features and opening the store, ([\d.]+) s reading records, "
    r"([\d.]+) s hashing, comparing and writing"
)

PROJECT = """\
# strata demo project: `strata run tap-jsonl target-strata features:build`
version: 1
project_id: strata-demo
default_environment: dev
environments:
  - name: dev
plugins:
  extractors:
    - name: tap-jsonl
      pip_url: {pip_url}
      settings: [{{name: path}}, {{name: stream_name}}, {{name: primary_keys, kind: array}}]
      config:
        path: ${{STRATA_PROJECT_ROOT}}/data/articles.jsonl
        stream_name: articles
        primary_keys: [id]
      schema:  # the tap infers `tags` as an array of anything: they are strings (a List(String) in compute)
        articles:
          tags: {{type: [array, "null"], items: {{type: string}}}}
  loaders:
    - name: target-strata
features:
  entrypoints: [demo_features]
"""

FEATURES = '''\
"""Features of the demo: `articles` is the Singer stream target-strata loads."""

import re
import zlib

import polars as pl

import strata as st

ARTICLES = "articles"  # defined by ingest from the stream's schema (.strata/streams.json)
DIMENSIONS = 16


class Clean(st.Feature, spec=st.FeatureSpec(
        "clean", id_columns=["id"], deps=[ARTICLES],
        fields=[
            st.FieldSpec("text", code_version="1", deps=[st.FieldDep(ARTICLES, ["body"])]),
            st.FieldSpec("headline", code_version="1", deps=[st.FieldDep(ARTICLES, ["title"])]),
        ])):
    """Normalised text and headline."""

    def compute(self, inputs):
        articles = inputs[ARTICLES]
        return articles.select(
            "id",
            pl.col("body").str.to_lowercase().str.replace_all(r"[^a-z0-9 ]", "").alias("text"),
            pl.col("title").str.to_titlecase().alias("headline"),
        )


def embed(text, tags):
    """A hashed bag of words (and tags), L2-normalised: a stand-in for a real model."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z0-9]+", text or "") + [f"#{t}" for t in tags or []]:
        vector[zlib.crc32(word.encode()) % DIMENSIONS] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vector]


class Embedding(st.Feature, spec=st.FeatureSpec(
        "embedding", id_columns=["id"], deps=[Clean, ARTICLES],
        fields=[st.FieldSpec("vector", code_version="1",
                             deps=[st.FieldDep(Clean, ["text"]), st.FieldDep(ARTICLES, ["tags"])])])):
    """A small vector per article."""

    def compute(self, inputs):
        rows = inputs[Clean].join(inputs[ARTICLES].select("id", "tags"), on="id")
        tags = rows["tags"].list.eval(pl.element().str.to_lowercase())  # tags arrive as a List(String)
        vectors = [embed(text, tags) for text, tags in zip(rows["text"], tags.to_list())]
        return pl.DataFrame({"id": rows["id"], "vector": vectors})
'''


def articles(rows: int, version: int = 0) -> list[dict[str, Any]]:
    """The source: ``rows`` articles; ``version`` 1 changes some bodies and many view counts."""
    out = []
    for i in range(1, rows + 1):
        words = [_WORDS[(i * k * 7 + k) % len(_WORDS)] for k in range(1, 9)]
        body = " ".join(words).capitalize() + "."
        views = (i * 7919) % 1000
        if version and i <= CHANGED_BODIES:
            body = f"Rewritten article {i}: the source changed this body."
        if version and i % max(1, rows // CHANGED_VIEWS) == 0 and i > CHANGED_BODIES:
            views += 1
        title = f"article {i} on {words[0]} and {words[1]}"
        out.append({"id": i, "title": title, "body": body, "tags": [words[2], words[3]], "views": views})
    return out


def write_source(root: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the source file; its modification time moves past the last one by 2 s at least.

    tap-jsonl's bookmark is the file's modification time, to the second.
    """
    import os

    path = root / "data" / "articles.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.stat().st_mtime if path.exists() else 0.0
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    stamp = max(time.time(), before + 2)
    os.utime(tmp, (stamp, stamp))
    tmp.replace(path)


def _target_counts(log: Path | None) -> dict[str, int]:
    """What target-strata's summary line in the run log says it loaded."""
    match = _last_match(log, _TARGET_LINE)
    keys = ("records", "added", "changed", "unchanged", "removed")
    return dict(zip(keys, map(int, match.groups()[2:]), strict=True)) if match else {}


def _target_seconds(log: Path | None) -> dict[str, float]:
    """Where target-strata's own time went, from its last summary line."""
    match = _last_match(log, _TARGET_SECONDS)
    keys = ("opening", "reading", "comparing")
    return dict(zip(keys, map(float, match.groups()), strict=True)) if match else {}


def _last_match(log: Path | None, pattern: re.Pattern[str]) -> re.Match[str] | None:
    if log is None or not log.exists():
        return None
    for line in reversed(log.read_text(encoding="utf-8").splitlines()):
        match = pattern.search(line)
        if match:
            return match
    return None


_DEMO_ENTRIES = frozenset({"strata.yml", "demo_features.py", ".gitignore", "data", ".strata", "__pycache__"})
"""What a demo directory holds after a run."""


def check_directory(root: Path) -> bool:
    """True for a new or empty ``root``, False for an earlier demo; raise for anything else.

    The demo writes ``data/articles.jsonl``, runs its tap and records runs: in a directory
    holding anything else (a real project, a user's files) it would change what it does not own.
    """
    from strata.errors import UsageError

    entries = {p.name for p in root.iterdir()} if root.is_dir() else set()
    if not entries:
        return True
    project = root / "strata.yml"
    if entries <= _DEMO_ENTRIES and project.is_file() and project.read_bytes() == _project_text().encode():
        return False
    raise UsageError(
        f"{root} is not empty and holds no earlier demo",
        "give --dir a new or empty directory (or leave it out for a temporary one)",
    )


def _project_text() -> str:
    return PROJECT.format(pip_url=TAP_PIP_URL)


def run_demo(directory: Path | None, rows: int, echo: Callable[[str], Any] | None) -> dict[str, Any]:
    """Run the demo in ``directory`` (a new temporary one by default); return a summary."""
    from strata.ingest import venv
    from strata.ingest.pipeline import RunOptions, run_blocks
    from strata.project.project import Project

    say = echo or (lambda _: None)
    started = time.perf_counter()
    root = (directory or Path(tempfile.mkdtemp(prefix="strata-demo-"))).resolve()
    fresh = check_directory(root)
    root.mkdir(parents=True, exist_ok=True)
    if fresh:
        (root / "strata.yml").write_text(_project_text(), encoding="utf-8")
        (root / "demo_features.py").write_text(FEATURES, encoding="utf-8")
        (root / ".gitignore").write_text(".strata/\ndata/\n", encoding="utf-8")
    write_source(root, articles(rows))
    project = Project(root)
    say(f"1. project in {root}: {TAP} -> target-strata -> clean -> embedding")
    env = venv.plugin_env(project, project.plugin(TAP))
    status = venv.install(project, env)
    say(f"2. {TAP} {status} from PyPI in its own environment")

    blocks = [TAP, "target-strata", "features:build"]
    first_started = time.perf_counter()
    [first] = run_blocks(project, blocks, RunOptions(full_refresh=fresh))
    first_seconds = time.perf_counter() - first_started
    loaded = _target_counts(first.log)
    say(
        f"3. ingested {loaded.get('records', 0)} articles ({loaded.get('added', 0)} new) and built "
        + ", ".join(f"{b['feature']} ({b['written']} computed)" for b in first.builds)
        + f" in {first_seconds:.1f} s"
    )

    write_source(root, articles(rows, version=1))
    say(f"4. changed the source: `body` of {CHANGED_BODIES} articles, `views` of others (no feature reads views)")
    second_started = time.perf_counter()
    [second] = run_blocks(project, blocks, RunOptions())
    second_seconds = time.perf_counter() - second_started
    reloaded = _target_counts(second.log)
    table = _recompute_table(project, reloaded, second.builds)
    from strata.cli.tables import table as render

    say(f"5. ingested again and rebuilt in {second_seconds:.1f} s; per feature and field, what was skipped and why:")
    say(textwrap.indent(render(list(_TABLE_COLUMNS), table), "   "))
    full_seconds, full, full_target = _full_rebuild(root, blocks)
    split = _time_split(second, second_seconds, full, full_seconds)
    say(
        f"6. where the {second_seconds:.1f} s went, beside a full rebuild of the same source "
        "(measured, into an empty copy):"
    )
    say(textwrap.indent(render(["step", "incremental s", "full rebuild s"], split), "   "))
    own = _target_seconds(second.log)
    if own:
        say(
            f"   target-strata's own work in it: {own['opening']:.2f} s loading the features and opening the store, "
            f"{own['reading']:.2f} s reading {reloaded.get('records', 0)} records, "
            f"{own['comparing']:.2f} s hashing, comparing and writing"
        )
    summary = {
        "project": str(root),
        "install": status,
        "rows": rows,
        "first_run": _run_json(first, first_seconds, loaded),
        "second_run": _run_json(second, second_seconds, reloaded) | {"target_seconds": own},
        "full_rebuild": _run_json(full, full_seconds, full_target),
        "recomputed": [dict(zip(_TABLE_COLUMNS, r, strict=True)) for r in table],
        "time_split": [dict(zip(["step", "incremental", "full_rebuild"], r, strict=True)) for r in split],
        "seconds": round(time.perf_counter() - started, 2),
    }
    say(f"done in {summary['seconds']} s; look around with `strata -C {root} status` or `strata -C {root} runs list`")
    say(f"see its graph, runs and any sample's lineage in your browser: {open_command(root)}")
    return summary


def open_command(root: Path) -> str:
    """The one command that serves the demo's page: ``strata -C DIR ui``."""
    import shlex

    return f"strata -C {shlex.quote(str(root))} ui"


_TABLE_COLUMNS = ("feature", "field", "samples", "skipped", "recomputed", "cause")


def _run_json(result: Any, seconds: float, target: dict[str, int]) -> dict[str, Any]:
    return {"seconds": round(seconds, 2), "target": target, "builds": result.builds, "exited": result.exited}


def _full_rebuild(root: Path, blocks: list[str]) -> tuple[float, Any, dict[str, int]]:
    """Time the same pipeline on the same source into an empty store: a copy of the project, without its state.

    The copy (in ``.strata/``, so on the same file system) shares the tap's installed
    environment and the source file through hard links, and its catalog is discovered before
    the clock starts, as the incremental run's was: what is timed is what a rebuild does,
    reading every record, loading every sample and computing every feature.
    """
    import shutil

    from strata.ingest.discovery import discover
    from strata.ingest.pipeline import RunOptions, run_blocks
    from strata.project.project import Project

    scratch = Path(tempfile.mkdtemp(prefix="full-rebuild-", dir=root / ".strata"))
    try:
        for name in ("strata.yml", "demo_features.py"):
            shutil.copy2(root / name, scratch / name)
        (scratch / "data").mkdir()
        _link(root / "data" / "articles.jsonl", scratch / "data" / "articles.jsonl")
        plugins = root / ".strata" / "plugins"
        shutil.copytree(plugins, scratch / ".strata" / "plugins", symlinks=True, copy_function=_link)
        project = Project(scratch)
        discover(project, project.plugin(TAP))
        started = time.perf_counter()
        [full] = run_blocks(project, blocks, RunOptions())
        return time.perf_counter() - started, full, _target_counts(full.log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _link(source: str | Path, target: str | Path) -> None:
    """A hard link, or a copy where the file system has none."""
    import os
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _time_split(second: Any, second_seconds: float, full: Any, full_seconds: float) -> list[list[Any]]:
    """Wall-clock steps of a run (they add up to its total): the tap, target-strata after it, each build, the rest."""

    def steps(result: Any, total: float) -> list[float]:
        tap = result.exited.get(TAP, 0.0)
        target = max(0.0, result.exited.get("target-strata", tap) - tap)
        builds = [float(b["seconds"]) for b in result.builds]
        return [tap, target, *builds, max(0.0, total - tap - target - sum(builds)), total]

    names = [
        f"{TAP} (reads the whole source file)",
        "target-strata (after the tap ended)",
        *(f"build {b['feature']}" for b in second.builds),
        "strata (start-up, plugins, state, run history)",
        "total",
    ]
    return [
        [name, round(a, 2), round(b, 2)]
        for name, a, b in zip(names, steps(second, second_seconds), steps(full, full_seconds), strict=True)
    ]


def _recompute_table(project: Any, target: dict[str, int], builds: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per field: its samples, how many were skipped (unchanged) and recomputed, and the cause.

    Every feature of the demo has one sample per article, as many as the source has records.
    """
    from strata.features.project import load_graph

    graph = load_graph(project)
    samples = target.get("records", 0)
    loaded = target.get("added", 0) + target.get("changed", 0)
    rows: list[list[Any]] = [["articles", "(ingest)", samples, samples - loaded, loaded, "source rows changed"]]
    for build in builds:
        for field in graph.spec(build["feature"]).fields:
            causes = build["fields"].get(field.key.name, {})
            count = sum(causes.values())
            cause = ", ".join(sorted(causes)) if causes else "-"
            rows.append([build["feature"], field.key.name, samples, samples - count, count, cause])
    return rows
