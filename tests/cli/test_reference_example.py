"""``examples/reference`` end to end: run.py, then the CLI in the same project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import Cli, run_strata


def test_run_py_recomputes_exactly_what_changed(reference: Path, strata: Cli) -> None:
    done = subprocess.run(
        [sys.executable, "run.py"], cwd=reference, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"store: duckdb at {reference / '.strata' / 'metadata.duckdb'} (emptied)"
    assert lines[1:7] == [
        "[first run] video: 100 added, 0 changed, 0 removed",
        "[first run] transcript: 100 added, 0 changed, 0 removed",
        "[first run] embedding: 100 added, 0 changed, 0 removed",
        "[audio changed] video: 0 added, 5 changed, 0 removed; audio <- data (5)",
        "[audio changed] transcript: 0 added, 5 changed, 0 removed; text <- video.audio (5)",
        "[audio changed] embedding: 0 added, 5 changed, 0 removed; vector <- transcript.text (5)",
    ]
    assert "recomputed: v003, v021, v042, v067, v088" in lines
    assert "  v003: zero zero three seven" in lines  # the new audio really was transcribed
    assert lines[-2:] == [
        "[after recompute] transcript: 0 added, 0 changed, 0 removed",
        "[after recompute] embedding: 0 added, 0 changed, 0 removed",
    ]

    in_sync = run_strata("status", "--assert-in-sync", cwd=reference)
    assert in_sync.code == 0, in_sync.err
    assert [line.split()[:2] for line in in_sync.out.splitlines()[2:]] == [
        ["video", "100"],
        ["transcript", "100"],
        ["embedding", "100"],
    ]
    listed = strata("features", "list")
    assert [line.split()[0] for line in listed.out.splitlines()[1:]] == ["video", "transcript", "embedding"]
    mermaid = strata("graph", "render", "--format", "mermaid")
    assert mermaid.out.startswith("graph TD\n")
    assert '    f1 -->|"text"| f2' in mermaid.out

    again = subprocess.run([sys.executable, "run.py"], cwd=reference, capture_output=True, text=True, check=False)
    assert again.stdout == done.stdout  # every run starts from an empty store
