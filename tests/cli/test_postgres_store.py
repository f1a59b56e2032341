"""`type: postgres` in strata.yml, and what the store errors of every type may show: never a secret."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import MakeProject
from tests.cli.test_store_chains import GRAPH
from tests.helpers import Cli
from tests.servers import PostgresServer, free_port, postgres_server  # noqa: F401 - the fixture pg uses


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's PostgreSQL server."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server


@pytest.fixture
def schema(pg: PostgresServer) -> Iterator[str]:
    name = f"t_{secrets.token_hex(6)}"
    yield name
    pg.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def postgres_project(make_project: MakeProject, server: PostgresServer, schema: str, password: str) -> Path:
    """A project whose store `team` is the server, the password in `.env` as `${PG_PASSWORD}`."""
    uri = f"postgresql://{server.superuser}:${{PG_PASSWORD}}@{server.host}:{server.port}/postgres"
    root = make_project(
        {"feats.py": GRAPH},
        extra=f"  store: team\nstores:\n  team: {{type: postgres, uri: '{uri}', schema: {schema}}}\n",
    )
    (root / ".env").write_text(f"PG_PASSWORD={password}\n")
    return root


def test_a_project_builds_into_a_postgres_store(
    strata: Cli, make_project: MakeProject, pg: PostgresServer, schema: str
) -> None:
    postgres_project(make_project, pg, schema, pg.password)
    built = strata("build")
    assert built.code == 0, built.err
    assert strata("status", "--assert-in-sync").code == 0
    shown = strata("status", "--json")
    assert pg.password not in shown.out + shown.err


def test_a_wrong_password_from_a_variable_is_never_shown(
    strata: Cli, make_project: MakeProject, pg: PostgresServer, schema: str
) -> None:
    secret = "n0t-the-Pa55word-" + secrets.token_hex(4)
    postgres_project(make_project, pg, schema, secret)
    for command in (["build"], ["status"], ["status", "--json"]):
        result = strata(*command)
        assert result.code == 1, result.err
        assert secret not in result.out + result.err
        assert "`team`" in result.err
        assert "password authentication failed" in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_an_unreachable_server_is_one_line(strata: Cli, make_project: MakeProject) -> None:
    make_project(
        {"feats.py": GRAPH},
        extra=f"  store: team\nstores:\n  team: {{type: postgres, uri: 'postgresql://u:pw@127.0.0.1:{free_port()}/db'}}\n",
    )
    result = strata("status")
    assert result.code == 1
    assert "`team`" in result.err
    assert "the connection failed" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


@pytest.mark.parametrize("kind", ["duckdb", "sqlite"])
def test_a_secret_in_a_store_path_is_never_shown(
    kind: str, strata: Cli, make_project: MakeProject, tmp_path: Path
) -> None:
    """A path made of variables, one of them a token: the message names the variable, never its value."""
    token = "tok-" + secrets.token_hex(6)
    blocker = tmp_path / token
    blocker.mkdir()
    (blocker / "meta.db").write_text("not a database of any kind, " * 100)
    root = make_project(
        {"feats.py": GRAPH},
        extra=f"  store: local\nstores:\n  local: {{type: {kind}, path: '${{DATA_ROOT}}/meta.db'}}\n",
    )
    (root / ".env").write_text(f"DATA_ROOT={blocker}\n")
    result = strata("status")
    assert result.code == 1, result.err
    assert token not in result.out + result.err
    assert "${DATA_ROOT}" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_a_store_name_that_is_not_configured_is_one_line(strata: Cli, make_project: MakeProject) -> None:
    make_project({"feats.py": GRAPH}, extra="stores:\n  local: {type: memory}\n")
    result = strata("status", "--store", "prod")
    assert result.code == 2
    assert "no store named `prod`" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_a_postgres_store_takes_only_its_keys(strata: Cli, make_project: MakeProject) -> None:
    make_project({"feats.py": GRAPH}, extra="stores:\n  team: {type: postgres, path: x.db}\n")
    result = strata("status")
    assert result.code == 2
    assert "unknown key `path` for a postgres store `team`" in result.err
    make_project({"feats.py": GRAPH}, extra="stores:\n  team: {type: postgres}\n")
    result = strata("status")
    assert result.code == 2
    assert "store `team` needs a connection URI" in result.err


def test_a_secret_in_a_fallbacks_path_is_never_shown(strata: Cli, make_project: MakeProject, tmp_path: Path) -> None:
    token = "tok-" + secrets.token_hex(6)
    (tmp_path / token).mkdir()
    (tmp_path / token / "prod.duckdb").write_text("not a database of any kind, " * 100)
    root = make_project(
        {"feats.py": GRAPH},
        extra="  store: dev\nstores:\n  prod: {type: duckdb, path: '${DATA_ROOT}/prod.duckdb'}\n"
        "  dev: {type: memory, fallbacks: [prod]}\n",
    )
    (root / ".env").write_text(f"DATA_ROOT={tmp_path / token}\n")
    result = strata("status")
    assert result.code == 1, result.err
    assert token not in result.out + result.err
    assert "`prod`, a fallback of `dev`" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_a_password_in_the_uri_query_is_never_shown(
    strata: Cli, make_project: MakeProject, pg: PostgresServer, schema: str
) -> None:
    """libpq takes the password as a query parameter too: `strata status --json` shows the URI without it."""
    uri = f"postgresql://{pg.superuser}@{pg.host}:{pg.port}/postgres?password={pg.password}&connect_timeout=5"
    make_project(
        {"feats.py": GRAPH},
        extra=f"  store: team\nstores:\n  team: {{type: postgres, uri: '{uri}', schema: {schema}}}\n",
    )
    built = strata("build")
    assert built.code == 0, built.err
    shown = strata("status", "--json")
    assert shown.code == 0, shown.err
    assert pg.password not in shown.out + shown.err
    assert "password=***&connect_timeout=5" in shown.out
