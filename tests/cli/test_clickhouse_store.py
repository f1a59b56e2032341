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


def test_a_secure_server_without_a_port_is_reached_on_the_https_port(make_project: MakeProject) -> None:
    """ClickHouse serves HTTPS on 8443 (8123 is its plain HTTP port), as clickhouse-connect's default says."""
    root = make_project(
        {"feats.py": GRAPH},
        extra="  store: ch\nstores:\n  ch: {type: clickhouse, host: 127.0.0.1, secure: true, password: pw}\n",
    )
    result = run_strata("status", cwd=root, timeout=120)
    assert result.code == 1
    assert "port=8443" in result.err
    assert "8123" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
