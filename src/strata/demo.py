"""The demo behind ``strata demo``.

It grows with the product. Today: a new project, a real Singer target (``target-jsonl``)
installed from PyPI into its own venv, its config resolved through the project file, the
environment and ``.env``, and a generated Singer stream loaded through it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TARGET = "target-jsonl"
TARGET_PIP_URL = "target-jsonl==0.1.4"


def singer_stream(rows: int) -> Iterator[str]:
    """A small Singer stream: one SCHEMA, ``rows`` RECORDs and a STATE."""
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "views": {"type": "integer"}},
    }
    yield json.dumps({"type": "SCHEMA", "stream": "videos", "schema": schema, "key_properties": ["id"]})
    for i in range(rows):
        record = {"id": i, "title": f"video {i}", "views": (i * 7919) % 1000}
        yield json.dumps({"type": "RECORD", "stream": "videos", "record": record})
    yield json.dumps({"type": "STATE", "value": {"bookmarks": {"videos": {"id": rows - 1}}}})


def run_demo(directory: Path | None, rows: int, echo: Callable[[str], Any] | None) -> dict[str, Any]:
    """Run the demo in ``directory`` (a new temporary one by default); return a summary."""
    from strata.ingest import venv
    from strata.ingest.invoke import run_captured
    from strata.project.edit import add_plugin, set_config
    from strata.project.init import init_project
    from strata.project.project import Project
    from strata.project.settings import redact_urls, resolve

    say = echo or (lambda _: None)
    started = time.perf_counter()
    root = directory or Path(tempfile.mkdtemp(prefix="strata-demo-"))
    if not (root / "strata.yml").exists():
        init_project(root)
        say(f"1. created a project in {root}")
    project = Project(root)
    if not any(ref.name == TARGET for ref in project.plugins()):
        add_plugin(project, "loaders", TARGET, pip_url=TARGET_PIP_URL)
        project = Project(root)
        set_config(project, TARGET, "destination_path", "${STRATA_PROJECT_ROOT}/output", in_environment=False)
        project = Project(root)
        set_config(project, TARGET, "do_timestamp_file", value=False, in_environment=True)
        project = Project(root)
    env = venv.plugin_env(project, project.plugin(TARGET))
    status = venv.install(project, env)
    say(f"2. {TARGET} {status} in its own environment ({env.current.resolve().relative_to(root)})")
    for item in resolve(project, TARGET).values.values():
        say(f"   {item.name} = {item.shown!r}  (from {item.describe()})")
    output = root / "output"
    output.mkdir(exist_ok=True)
    payload = "\n".join(singer_stream(rows)) + "\n"
    load_started = time.perf_counter()
    done = run_captured(project, TARGET, [], payload)
    if done.returncode != 0:
        from strata.errors import RuntimeFailure

        tail = " / ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeFailure(
            f"{TARGET} failed with exit code {done.returncode}: {redact_urls(tail)}",
            f"run `strata -C {root} invoke {TARGET}` to see all of its output",
        )
    load_seconds = time.perf_counter() - load_started
    written = sum(1 for _ in (output / "videos.jsonl").open(encoding="utf-8"))
    state = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    say(f"3. loaded {written} records into {output / 'videos.jsonl'} in {load_seconds:.2f} s")
    say(f"4. state the target confirmed: {state}")
    summary = {
        "project": str(root),
        "install": status,
        "records_written": written,
        "state": json.loads(state) if state else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
    say(f"done in {summary['seconds']} s")
    return summary
