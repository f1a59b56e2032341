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
        ("keys", False),  # tap-csv's files[].keys: a stream's primary key columns
        ("api_keys", True),
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


REAL_SETTING_NAMES = [
    # (plugin the name comes from, setting name, secret)
    ("tap-postgres", "password", True),
    ("tap-postgres", "ssh_tunnel.private_key", True),
    ("tap-postgres", "ssh_tunnel.private_key_password", True),
    ("tap-postgres", "ssl_client_private_key", True),
    ("tap-postgres", "ssl_client_certificate", False),
    ("tap-postgres", "filter_schemas", False),
    ("tap-postgres", "flattening_max_depth", False),
    ("tap-github", "auth_token", True),
    ("tap-github", "additional_auth_tokens", True),
    ("tap-github", "start_date", False),
    ("tap-github", "rate_limit_buffer", False),
    ("tap-salesforce", "client_id", False),
    ("tap-salesforce", "client_secret", True),
    ("tap-salesforce", "refresh_token", True),
    ("tap-salesforce", "security_token", True),
    ("tap-salesforce", "is_sandbox", False),
    ("tap-stripe", "api_key", True),
    ("tap-stripe", "account_id", False),
    ("tap-hubspot", "access_token", True),
    ("tap-shopify", "access_token", True),
    ("tap-zendesk", "api_token", True),
    ("tap-gitlab", "private_token", True),
    ("tap-google-ads", "developer_token", True),
    ("tap-google-ads", "login_customer_id", False),
    ("tap-google-sheets", "oauth_credentials.client_secret", True),
    ("tap-google-sheets", "oauth_credentials.refresh_token", True),
    ("tap-google-analytics", "key_file_location", False),
    ("tap-twilio", "account_sid", False),
    ("tap-twilio", "auth_token", True),
    ("tap-datadog", "app_key", True),
    ("tap-mongodb", "mongodb_connection_string", True),
    ("tap-kafka", "ssl_keystore_password", True),
    ("tap-kafka", "keystore_path", False),
    ("tap-rest-api-msdk", "next_page_token_path", False),
    ("tap-rest-api-msdk", "pagination_request_style", False),
    ("tap-rest-api-msdk", "bearer_token", True),
    ("tap-rest-api-msdk", "replication_key", False),
    ("tap-rest-api-msdk", "primary_keys", False),
    ("tap-rest-api-msdk", "api_url", False),
    ("tap-mailchimp", "apikey", True),
    ("tap-s3-csv", "aws_access_key_id", True),
    ("tap-s3-csv", "aws_secret_access_key", True),
    ("tap-s3-csv", "aws_session_token", True),
    ("target-snowflake", "private_key_passphrase", True),
    ("target-snowflake", "private_key_path", False),
    ("target-snowflake", "s3_key_prefix", False),
    ("target-snowflake", "primary_key_required", False),
    ("target-snowflake", "add_metadata_columns", False),
    ("target-postgres", "sqlalchemy_url", False),
    ("target-postgres", "batch_size_rows", False),
    ("target-bigquery", "credentials_json", True),
    ("target-bigquery", "credentials_path", False),
    ("target-s3", "aws_secret_access_key", True),
    ("target-redshift", "aws_redshift_copy_role_arn", False),
    ("meltano-map-transformer", "stream_maps", False),
    ("target-jsonl", "destination_path", False),
    ("tap-cassandra", "keyspace", False),
    ("tap-dynamodb", "key_properties", False),
    ("singer-sdk", "key_hash", False),
    ("tap-auth0", "clientSecret", True),
    ("tap-mysql", "db_password", True),
    ("tap-oracle", "token_uri", False),
]


@pytest.mark.parametrize(("plugin", "name", "secret"), REAL_SETTING_NAMES)
def test_real_setting_names_are_secret_by_whole_words(plugin: str, name: str, secret: bool) -> None:
    assert looks_secret(name) is secret, f"{plugin}: {name}"


def test_the_table_of_real_names_is_large() -> None:
    assert len({name for _, name, _ in REAL_SETTING_NAMES}) >= 40


DECLARED = """
    plugins:
      loaders:
        - name: target-x
          executable: /bin/true
          settings:
            - {name: primary_key_required, kind: boolean}
            - {name: token_budget, kind: integer}
            - {name: connection_uri, kind: password}
            - {name: signing_key_id, sensitive: true}
            - {name: token, sensitive: false}
            - {name: refresh_token, kind: string}
"""


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("primary_key_required", "true", False),
        ("token_budget", "5", False),
        ("replication_key", "updated_at", False),
        ("s3_key_prefix", "exports/", False),
        ("next_page_token_path", "$.next", False),
        ("key_hash", "abc", False),
        ("token", "tok-value", False),
        ("connection_uri", "pg-uri-secret", True),
        ("signing_key_id", "kid-secret", True),
        ("refresh_token", "rt-secret", True),
        ("api_key", "ak-secret", True),
    ],
)
def test_config_set_decides_by_declared_kind_then_by_whole_words(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, secret: bool
) -> None:
    write_project(tmp_path, DECLARED)
    monkeypatch.chdir(tmp_path)
    result = strata("config", "target-x", "set", key, value)
    assert result.code == 0, result.err
    in_file = value in (tmp_path / "strata.yml").read_text()
    dotenv = tmp_path / ".env"
    in_dotenv = dotenv.exists() and value in dotenv.read_text()
    assert (in_file, in_dotenv) == (not secret, secret)
    listed = strata("config", "target-x", "get", key)
    assert (value in listed.out) is not secret
    assert ("(redacted)" in listed.out) is secret


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
