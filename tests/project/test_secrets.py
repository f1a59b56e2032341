"""Secrets never reach the terminal: redaction by name, nested values, URLs, and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.project.project import Project
from strata.project.settings import looks_secret, resolve
from tests.helpers import Cli, write_project

TYPED = """
    plugins:
      extractors:
        - name: tap-x
          executable: /bin/true
          settings:
            - {name: api_key, kind: integer}
            - {name: port, kind: integer}
          config:
            host: h
            retries: 3
"""


@pytest.fixture
def typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path, TYPED)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_bad_variable_never_shows_its_value_and_spoils_only_its_setting(
    strata: Cli, typed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAP_X_API_KEY", "sk-live-abc")
    monkeypatch.setenv("TAP_X_PORT", "sk-live-port")
    listed = strata("config", "tap-x", "list")
    assert listed.code == 0
    assert "host=h (from strata.yml:9)" in listed.out
    assert "api_key (error: TAP_X_API_KEY is not a valid integer; give an integer value" in listed.out
    assert "port (error: TAP_X_PORT is not a valid integer" in listed.out
    as_json = strata("--json", "config", "tap-x", "list")
    assert as_json.code == 0
    assert strata("config", "tap-x", "get", "host").out.strip() == "host=h (from strata.yml:9)"
    for args in (("config", "tap-x", "get", "port"), ("invoke", "tap-x")):
        failed = strata(*args)
        assert failed.code == 2
        assert failed.err.count("\n") == 1
    for result in (listed, as_json, failed):
        assert "sk-live" not in result.out + result.err


def test_a_type_guessed_from_the_overridden_value_never_fails(typed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_X_RETRIES", "several")
    item = resolve(Project(typed), "tap-x").values["retries"]
    assert (item.value, item.problem) == ("several", None)
    monkeypatch.setenv("TAP_X_RETRIES", "5")
    assert resolve(Project(typed), "tap-x").values["retries"].value == 5


def test_config_set_of_a_bad_value_names_the_setting_not_the_value(strata: Cli, typed: Path) -> None:
    result = strata("config", "tap-x", "set", "port", "sk-live-xyz")
    assert result.code == 2
    assert "`port` is not a valid integer; give an integer value" in result.err
    assert "sk-live" not in result.err


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("dbpassword", True),
        ("db_passwd", True),
        ("privatekey", True),
        ("privateKey", True),
        ("private_key", True),
        ("apikey", True),
        ("api_key", True),
        ("clientsecret", True),
        ("clientSecret", True),
        ("auth_token", True),
        ("refreshtoken", True),
        ("gcp_credentials_json", True),
        ("key", True),
        ("ssh.key_file", True),
        ("keyspace", False),
        ("keystore_path", False),
        ("host", False),
        ("user", False),
        ("batch.size", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


NESTED = """
    plugins:
      loaders:
        - name: target-x
          executable: target-x
          settings:
            - {name: connection, kind: object}
            - {name: stream_maps, kind: array}
          config:
            connection: {user: u, dbPassword: pw-nested-1, options: {api_key: pw-nested-2, retries: 2}}
            stream_maps: [{name: a, client_secret: pw-nested-3}]
            uri: postgres://bob:pw-url-4@db.example/app
            plain: no secret here
"""


def test_nested_values_and_url_credentials_are_redacted_in_every_output(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, NESTED)
    monkeypatch.chdir(tmp_path)
    outputs = [
        strata("config", "target-x", "list"),
        strata("--json", "config", "target-x", "list"),
        strata("config", "target-x", "get", "connection"),
        strata("--json", "config", "target-x", "get", "stream_maps"),
        strata("config", "target-x", "get", "uri"),
        strata("config", "target-x", "set", "dsn", "mysql://root:pw-url-5@localhost/x"),
    ]
    for result in outputs:
        assert result.code == 0, result.err
        assert "pw-" not in result.out + result.err
    rows = {row["name"]: row["value"] for row in outputs[1].json()}
    assert rows["connection"] == {
        "user": "u",
        "dbPassword": "(redacted)",
        "options": {"api_key": "(redacted)", "retries": 2},
    }
    assert rows["stream_maps"] == [{"name": "a", "client_secret": "(redacted)"}]
    assert rows["uri"] == "postgres://***@db.example/app"
    assert rows["plain"] == "no secret here"
    assert "dsn=mysql://***@localhost/x" in outputs[-1].out
    # the plugin still gets the real values
    config = resolve(Project(tmp_path), "target-x").config()
    assert config["connection"]["options"]["api_key"] == "pw-nested-2"
    assert config["uri"] == "postgres://bob:pw-url-4@db.example/app"


def test_dotenv_values_are_taken_literally(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path, "plugins:\n  loaders:\n    - {name: target-x, executable: x, config: {a: '${A}', b: 1}}\n")
    (tmp_path / ".env").write_text("A='${HOME}/x'\nTARGET_X_B='${NOPE}-1'\n")
    monkeypatch.chdir(tmp_path)
    rows = {row["name"]: row["value"] for row in strata("--json", "config", "target-x", "list").json()}
    assert rows == {"a": "${HOME}/x", "b": "${NOPE}-1"}
