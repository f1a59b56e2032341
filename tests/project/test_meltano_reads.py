"""Read commands on Meltano projects give what Meltano 4.4.1 gives (issue 12, the corpus's defects).

Each test here is one behaviour the corpus (``test_meltano_corpus.py``) found different from
Meltano, checked on the smallest project that shows it: the global ``--no-environment``,
``--plugin-type`` on ``config``, ``plugin list``, hub plugins defined by their
``plugins/<type>/<name>--<variant>.lock`` files, and a value that is nothing but unset variables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli, snapshot, write_project

ENVIRONMENTS = """
    default_environment: dev
    plugins:
      loaders:
        - name: target-x
          namespace: target_x
          config: {database: base}
    environments:
      - name: dev
        config:
          plugins:
            loaders:
              - name: target-x
                config: {database: dev_db}
"""


@pytest.fixture
def environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path, ENVIRONMENTS, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_environment_ignores_the_default_and_the_variables_as_in_meltano(
    strata: Cli, environments: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert strata("config", "print", "target-x").json() == {"database": "dev_db"}
    assert strata("--no-environment", "config", "print", "target-x").json() == {"database": "base"}
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "dev")
    assert strata("--no-environment", "config", "print", "target-x").json() == {"database": "base"}
    assert strata("-e", "dev", "--no-environment", "config", "print", "target-x").json() == {"database": "base"}


def test_config_set_without_an_environment_writes_the_plugin_entry(strata: Cli, environments: Path) -> None:
    assert strata("--no-environment", "config", "set", "target-x", "database", "edited").code == 0
    assert strata("--no-environment", "config", "print", "target-x").json() == {"database": "edited"}
    assert strata("config", "print", "target-x").json() == {"database": "dev_db"}


SHARED = """
    plugins:
      transformers:
        - name: dbt-duckdb
          namespace: dbt_duckdb
          config: {project_dir: transform}
      files:
        - name: dbt-duckdb
          namespace: files_dbt_duckdb
          config: {bundle_setting: kept}
"""


@pytest.mark.parametrize("verb", ["list", "print"])
@pytest.mark.parametrize(
    ("plugin_type", "value"), [("file", "bundle_setting"), ("files", "bundle_setting"), ("transformer", "project_dir")]
)
def test_plugin_type_picks_the_plugin_when_a_name_is_shared(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verb: str, plugin_type: str, value: str
) -> None:
    write_project(tmp_path, SHARED, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("--json", "config", verb, "dbt-duckdb", "--plugin-type", plugin_type)
    assert result.code == 0, result.err
    assert value in result.out


def test_plugin_type_that_does_not_hold_the_plugin_is_one_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, SHARED, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("--log-level", "error", "config", "list", "dbt-duckdb", "--plugin-type", "extractor")
    assert result.code == 2
    assert "no extractor named `dbt-duckdb` in meltano.yml; `dbt-duckdb` is a transformer and a file" in result.err
    assert result.err.count("\n") == 1
    assert strata("config", "list", "dbt-duckdb", "--plugin-type", "bogus").code == 2


HUB = """
    plugins:
      extractors:
        - name: tap-github
          variant: meltanolabs
          pip_url: meltanolabs-tap-github==1.10.2
          config: {repositories: [meltano/meltano]}
        - name: tap-github-search
          inherit_from: tap-github
      loaders:
        - name: target-x
          namespace: target_x
          pip_url: target-x
      files:
        - name: files-dbt
          variant: meltano
          pip_url: files-dbt
"""

GITHUB_LOCK = {
    "plugin_type": "extractors",
    "name": "tap-github",
    "namespace": "tap_github",
    "variant": "meltanolabs",
    "pip_url": "meltanolabs-tap-github",
    "executable": "tap-github",
    "capabilities": ["catalog", "discover", "state"],
    "commands": {"about": {"args": "--about", "description": "About the tap."}},
    "docs": "https://hub.meltano.com/extractors/tap-github--meltanolabs",
    "settings_group_validation": [["repositories"]],
    "settings": [
        {"name": "auth_token", "kind": "password", "label": "Auth Token", "sensitive": True},
        {"name": "repositories", "kind": "array"},
        {"name": "user_agent", "kind": "string", "value": "tap-github"},
        {"name": "max_pages", "kind": "integer", "protected": False},
    ],
}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project of hub plugins with their lock files, as ``meltano add`` leaves them."""
    write_project(tmp_path, HUB, name="meltano.yml")
    lock = tmp_path / "plugins" / "extractors" / "tap-github--meltanolabs.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps(GITHUB_LOCK, indent=2))
    files_lock = tmp_path / "plugins" / "files" / "files-dbt--meltano.lock"
    files_lock.parent.mkdir(parents=True)
    bundle = {"plugin_type": "files", "name": "files-dbt", "namespace": "files_dbt", "variant": "meltano"}
    files_lock.write_text(json.dumps({**bundle, "update": {"transform/profiles.yml": True}}))
    (tmp_path / ".env").write_text("TAP_GITHUB_AUTH_TOKEN=ghp_x\nTAP_GITHUB_MAX_PAGES=7\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_hub_plugin_takes_its_definition_from_its_lock_file_as_in_meltano(strata: Cli, hub: Path) -> None:
    rows = {row["name"]: row for row in strata("--json", "config", "list", "tap-github").json()}
    assert list(rows) == ["auth_token", "repositories", "user_agent", "max_pages"]
    assert (rows["auth_token"]["value"], rows["auth_token"]["source"], rows["auth_token"]["secret"]) == (
        "(redacted)",
        ".env",
        True,
    )
    assert (rows["max_pages"]["value"], rows["max_pages"]["source"]) == (7, ".env")
    assert (rows["user_agent"]["value"], rows["user_agent"]["source"]) == ("tap-github", "default")
    assert rows["repositories"]["value"] == ["meltano/meltano"]


def test_an_inheriting_plugin_gets_the_lock_definition_through_its_parent(strata: Cli, hub: Path) -> None:
    printed = strata("config", "print", "tap-github-search").json()
    assert printed == {
        "auth_token": "(redacted)",
        "repositories": ["meltano/meltano"],
        "user_agent": "tap-github",
        "max_pages": 7,
    }
    assert "about" in strata("invoke", "--list-commands", "tap-github-search").out


def test_the_project_file_wins_over_the_lock_file(strata: Cli, hub: Path) -> None:
    text = (hub / "meltano.yml").read_text()
    entry = "      config: {repositories: [meltano/meltano]}\n"
    assert entry in text
    settings = "      settings: [{name: user_agent, value: mine}, {name: extra, kind: integer, value: 1}]\n"
    (hub / "meltano.yml").write_text(text.replace(entry, entry + settings))
    assert strata("config", "print", "tap-github").json() == {
        "auth_token": "(redacted)",
        "repositories": ["meltano/meltano"],
        "user_agent": "mine",
        "max_pages": 7,
        "extra": 1,
    }


def test_a_custom_plugin_and_a_plugin_without_a_lock_file_read_only_the_project_file(strata: Cli, hub: Path) -> None:
    other = hub / "plugins" / "loaders" / "target-x--meltano.lock"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"name": "target-x", "settings": [{"name": "password", "kind": "password"}]}))
    assert strata("--json", "config", "list", "target-x").json() == []
    (hub / "plugins" / "extractors" / "tap-github--meltanolabs.lock").unlink()
    assert [row["name"] for row in strata("--json", "config", "list", "tap-github").json()] == ["repositories"]


def test_a_lock_file_that_does_not_parse_is_one_line_naming_it(strata: Cli, hub: Path) -> None:
    (hub / "plugins" / "extractors" / "tap-github--meltanolabs.lock").write_text("{not json")
    before = snapshot(hub)
    result = strata("config", "list", "tap-github")
    assert result.code == 2
    assert "plugins/extractors/tap-github--meltanolabs.lock" in result.err
    assert result.err.count("\n") == 1
    assert snapshot(hub) == before


def test_plugin_list_prints_meltanos_rows(strata: Cli, hub: Path) -> None:
    """As Meltano offline: ``update`` (a newer definition on the hub) is always false, strata has no hub."""
    listed = strata("plugin", "list", "--format", "json").json()
    assert listed == [
        {
            "type": "extractor",
            "name": "tap-github",
            "variant": "meltanolabs",
            "inherit_from": None,
            "custom": False,
            "update": False,
            "pip_url": "meltanolabs-tap-github==1.10.2",
        },
        {
            "type": "extractor",
            "name": "tap-github-search",
            "variant": "meltanolabs",
            "inherit_from": "tap-github",
            "custom": False,
            "update": False,
            "pip_url": "meltanolabs-tap-github==1.10.2",
        },
        {
            "type": "loader",
            "name": "target-x",
            "variant": "default",
            "inherit_from": None,
            "custom": True,
            "update": False,
            "pip_url": "target-x",
        },
        {
            "type": "file bundle",
            "name": "files-dbt",
            "variant": "meltano",
            "inherit_from": None,
            "custom": False,
            "update": False,
            "pip_url": "files-dbt",
        },
    ]
    text = strata("plugin", "list").out
    assert "tap-github-search" in text
    assert "file bundle" in text


UNSET = """
    plugins:
      extractors:
        - name: tap-x
          namespace: tap_x
          settings:
            - {name: whole, value: from-default}
            - {name: part}
          config:
            whole: ${UNSET_WHOLE}
            part: pre_${UNSET_PART}_post
            both: ${UNSET_A}${UNSET_B}
            empty: ''
"""


def test_a_value_that_is_only_unset_variables_is_no_value_as_in_meltano(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meltano: a non-empty string that expands to nothing is ``None`` (and wins over the default)."""
    write_project(tmp_path, UNSET, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    assert strata("config", "print", "tap-x").json() == {"part": "pre__post", "empty": ""}
    rows = {row["name"]: row for row in strata("--json", "config", "list", "tap-x").json()}
    assert (rows["whole"]["value"], rows["whole"]["source"]) == (None, "meltano.yml")
    assert (rows["both"]["value"], rows["both"]["source"]) == (None, "meltano.yml")


DECLARED_ENV = """
    plugins:
      extractors:
        - name: tap-db
          namespace: tap_db
          settings:
            - {name: password, kind: password, env: DB_PASSWORD}
            - {name: host, env: DB_HOST}
"""


def test_a_settings_own_env_name_is_not_read_as_in_meltano(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meltano 4 reads ``<PLUGIN>_<SETTING>`` (and the namespace's); a setting's ``env:`` is only what the plugin gets."""
    write_project(tmp_path, DECLARED_ENV, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DB_PASSWORD=from-dotenv\n")
    monkeypatch.setenv("DB_HOST", "from-process")
    assert strata("config", "print", "tap-db").json() == {}
    assert strata("config", "set", "tap-db", "password", "pw-2").code == 0
    assert (tmp_path / ".env").read_text() == "DB_PASSWORD=from-dotenv\nTAP_DB_PASSWORD='pw-2'\n"
    rows = {row["name"]: row for row in strata("--json", "config", "list", "tap-db").json()}
    assert (rows["password"]["source"], rows["password"]["detail"]) == (".env", "TAP_DB_PASSWORD")
    assert rows["host"]["source"] == "unset"


INHERITED = """
    plugins:
      extractors:
        - name: tap-pg
          namespace: tap_postgres
          settings:
            - {name: port, kind: integer, value: 5432}
            - {name: host}
            - {name: password, kind: password}
        - name: tap-pg-orders
          inherit_from: tap-pg
          config: {host: orders-db}
"""


def test_an_inheriting_plugin_gets_its_parents_variables_through_the_parent_as_in_meltano(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent's variables are the parent's values: inherited, beneath the child's own config."""
    write_project(tmp_path, INHERITED, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TAP_POSTGRES_PASSWORD=pw\nTAP_POSTGRES_HOST=shared-db\n")
    rows = {row["name"]: row for row in strata("--json", "config", "list", "tap-pg-orders").json()}
    assert (rows["host"]["value"], rows["host"]["source"]) == ("orders-db", "meltano.yml")
    assert (rows["password"]["value"], rows["password"]["source"]) == ("(redacted)", "inherited")
    assert (rows["port"]["value"], rows["port"]["source"]) == (5432, "default")
    monkeypatch.setenv("TAP_PG_ORDERS_HOST", "own-variable")
    assert strata("config", "print", "tap-pg-orders").json()["host"] == "own-variable"


NOT_SINGER = """
    plugins:
      extractors:
        - name: tap-x
          namespace: tap_x
          settings: [{name: unset_one}, {name: a.b, value: 1}]
      utilities:
        - name: tool
          namespace: tool
          settings: [{name: unset_one}, {name: a.b, value: 1}, {name: token, kind: password}]
      orchestrators:
        - name: airflow
          namespace: airflow
          settings: [{name: core.load_examples, kind: boolean, value: false}, {name: port, kind: integer}]
          config: {port: 8080}
"""


@pytest.mark.parametrize(
    ("plugin", "printed"),
    [
        ("tap-x", {"a": {"b": 1}}),
        ("tool", {"unset_one": None, "a.b": 1, "token": None}),
        ("airflow", {"core": {"load_examples": "False"}, "port": "8080"}),
    ],
)
def test_config_print_is_the_plugins_own_processing_as_in_meltano(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: str, printed: dict[str, object]
) -> None:
    """Singer plugins get nested config without nulls; others Meltano's flat settings; Airflow nested text."""
    write_project(tmp_path, NOT_SINGER, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    assert strata("config", "print", plugin).json() == printed
