"""`type: clickhouse` with `host:` in strata.yml: what reaching a server that is not there says.

Run as a real process: its whole stderr is what a user sees (a library's log lines included).
"""

from __future__ import annotations

from tests.cli.conftest import MakeProject
from tests.cli.test_store_chains import GRAPH
from tests.helpers import run_strata
from tests.servers import free_port


def test_an_unreachable_server_is_one_line(make_project: MakeProject) -> None:
    root = make_project(
        {"feats.py": GRAPH},
        extra=f"  store: ch\nstores:\n  ch: {{type: clickhouse, host: 127.0.0.1, port: {free_port()}, password: pw}}\n",
    )
    result = run_strata("status", cwd=root, timeout=120)
    assert result.code == 1
    assert "cannot reach ch" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err

