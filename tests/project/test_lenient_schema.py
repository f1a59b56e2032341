"""What Meltano accepts in a project file loads with a warning, not an error (issue 12, item 3)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from strata.project.project import Project
from strata.project.settings import lineage, namespace, resolve
from tests.helpers import Cli, snapshot, write_project

LENIENT = """
    version: 1
    settings:
      anything: 1
    plugins:
      transformers:
        - name: dbt
          executable: dbt
          config:
            project_dir: transform
      files:
        - name: dbt
          pip_url: files-dbt
    environments:
      - name: dev
        config:
          plugins:
            extractors:
              - name: tap-gone
                config:
                  a: 1
"""


@pytest.fixture
def lenient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    write_project(root, LENIENT, name="meltano.yml")
    monkeypatch.chdir(root)
    return root


def test_what_meltano_accepts_loads_with_one_warning_each(strata: Cli, lenient: Path) -> None:
    before = snapshot(lenient)
    result = strata("config", "dbt", "list")
    assert result.code == 0, result.err
    assert "project_dir=transform" in result.out
    warnings = [line for line in result.err.splitlines() if "warning" in line]
    assert len(warnings) == 3, result.err
    assert "meltano.yml:2: unknown key `settings` is not read" in warnings[0]
    assert (
        "meltano.yml:11: plugin name `dbt` is used in transformers (meltano.yml:6) and in files; `dbt` means the one in transformers"
        in warnings[1]
    )
    assert (
        "meltano.yml:18: environment `dev` configures `tap-gone`, which is not a plugin in `extractors`" in warnings[2]
    )
    assert snapshot(lenient) == before


def test_the_warnings_are_not_repeated_and_log_level_error_silences_them(strata: Cli, lenient: Path) -> None:
    assert "warning" not in strata("--log-level", "error", "config", "dbt", "list").err
    first = strata("config", "dbt", "list").err
    assert first.count("unknown key `settings`") == 1


def test_the_shared_name_means_the_first_type_as_in_meltano(lenient: Path) -> None:
    """Meltano's ``config``/``invoke`` find the configurable, invokable one: the transformer."""
    project = Project(lenient, environ={})
    assert project.plugin("dbt").plugin_type == "transformers"
    assert [(r.plugin_type, r.name) for r in project.plugins()] == [("transformers", "dbt"), ("files", "dbt")]


def test_the_same_name_twice_in_one_type_is_still_refused(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, "plugins:\n  files:\n    - {name: dbt}\n    - {name: dbt}\n", name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("job", "list")
    assert result.code == 2
    assert "meltano.yml:4: plugin `dbt` is defined twice (first at meltano.yml:3)" in result.err


CUSTOM = """\
plugins:
  extractors:
    - name: tap-x   # the tap
      x-owner: data-team
      ui_hints: {category: crm, rank: 2}
      review_ticket: 123
      metadata:
        users: {replication-key: updated_at}
    - name: tap-y
      inherit_from: tap-x
  loaders:
    - name: target-x
      load_schema: raw_shop
environments:
  - name: dev
    config:
      plugins:
        extractors:
          - name: tap-y
            x-owner: dev-team
            ui_hints: {color: red}
"""


def test_unknown_plugin_keys_are_custom_extras_kept_on_write_and_listed(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meltano keeps an unknown key of a plugin entry as a custom extra ``_key`` and lists it with ``--extras``."""
    path = write_project(tmp_path, CUSTOM, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("--json", "config", "list", "tap-x", "--extras")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    rows = {row["name"]: (row["value"], row["source"]) for row in result.json()}
    assert rows["_x-owner"] == ("data-team", "meltano.yml")
    assert rows["_review_ticket"] == (123, "meltano.yml")
    assert rows["_ui_hints.category"] == ("crm", "meltano.yml")
    assert rows["_ui_hints.rank"] == (2, "meltano.yml")
    assert rows["_metadata.users.replication-key"] == ("updated_at", "meltano.yml")
    assert rows["_metadata"] == ({"users": {"replication-key": "updated_at"}}, "meltano.yml")
    assert "_schema.users" not in rows
    text = strata("config", "list", "tap-x", "--extras").out
    assert "_x-owner=data-team (from meltano.yml:4)" in text
    loader = {
        row["name"]: (row["value"], row["source"])
        for row in strata("--json", "config", "list", "target-x", "--extras").json()
    }
    assert loader["_load_schema"] == ("raw_shop", "meltano.yml")
    child = {
        row["name"]: (row["value"], row["source"])
        for row in strata("--json", "config", "list", "tap-y", "--extras").json()
    }
    assert child["_x-owner"] == ("data-team", "inherited")
    assert child["_ui_hints.category"] == ("crm", "inherited")
    in_dev = {
        row["name"]: (row["value"], row["source"])
        for row in strata("-e", "dev", "--json", "config", "list", "tap-y", "--extras").json()
    }
    assert in_dev["_x-owner"] == ("dev-team", "environment dev")
    assert in_dev["_ui_hints.color"] == ("red", "environment dev")
    assert in_dev["_ui_hints.category"] == ("crm", "inherited")
    monkeypatch.setenv("TAP_X__UI_HINTS_CATEGORY", "sales")
    from_variable = strata("--json", "config", "get", "tap-x", "_ui_hints.category").json()
    assert (from_variable["value"], from_variable["source"]) == ("sales", "env")
    monkeypatch.delenv("TAP_X__UI_HINTS_CATEGORY")
    assert strata("config", "get", "tap-x", "_x-owner").out == "_x-owner=data-team (from meltano.yml:4)\n"
    assert strata("config", "set", "tap-x", "start_date", "2024-01-01").code == 0
    after = path.read_text().splitlines()
    before = CUSTOM.splitlines()
    changes = [line for line in difflib.ndiff(before, after) if line[:1] in "+-"]
    assert [line[:1] for line in changes] == ["+", "+"], changes
    assert "start_date" in changes[1]
    assert strata("config", "get", "tap-x", "_x-owner").code == 0


def test_strata_yml_refuses_an_unknown_plugin_key(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path, "plugins:\n  extractors:\n    - {name: tap-x, bogus_key: 1}\n")
    monkeypatch.chdir(tmp_path)
    result = strata("job", "list")
    assert result.code == 2
    assert "strata.yml:3: unknown key `plugins.extractors[0].bogus_key`" in result.err


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "environments:\n  - {name: dev, bogus_key: 1}\n",
            "meltano.yml:2: unknown key `environments[0].bogus_key`",
        ),
        (
            "environments:\n  - name: dev\n    config: {bogus_key: 1}\n",
            "meltano.yml:3: unknown key `environments[0].config.bogus_key`",
        ),
        ("jobs:\n  - {name: j, tasks: [a], bogus_key: 1}\n", "meltano.yml:2: unknown key `jobs[0].bogus_key`"),
        (
            "schedules:\n  - {name: s, interval: '@daily', job: j, bogus_key: 1}\n",
            "meltano.yml:2: unknown key `schedules[0].bogus_key`",
        ),
    ],
    ids=["environment", "environment-config", "job", "schedule"],
)
def test_unknown_nested_keys_are_still_errors(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, error: str
) -> None:
    """Meltano crashes on an unknown key of an environment, a job or a schedule: strata refuses it."""
    write_project(tmp_path, text, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("job", "list")
    assert result.code == 2
    assert error in result.err


def test_inheritance_stays_within_the_type_when_names_are_shared(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dbt-x`` inherits from the file bundle ``dbt``, not from the transformer of that name."""
    text = (
        "plugins:\n  transformers:\n    - {name: dbt, executable: dbt, config: {project_dir: transform}}\n"
        "  files:\n    - {name: dbt, namespace: dbt_files}\n    - {name: dbt-x, inherit_from: dbt}\n"
    )
    write_project(tmp_path, text, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    assert strata("job", "list").code == 0
    project = Project(tmp_path, environ={})
    bundle = project.plugin("dbt-x")
    assert [(r.plugin_type, r.name) for r in lineage(project, bundle)] == [("files", "dbt-x"), ("files", "dbt")]
    assert namespace(project, bundle) == "dbt_files"
    assert "project_dir" not in resolve(project, "dbt-x").values
    assert resolve(project, "dbt").values["project_dir"].value == "transform"


def test_strata_yml_stays_strict(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """strata's own file keeps refusing what Meltano would accept: a typo there is an error, not a warning."""
    write_project(tmp_path, LENIENT)
    monkeypatch.chdir(tmp_path)
    result = strata("config", "dbt", "list")
    assert result.code == 2
    assert "strata.yml:2: unknown key `settings`" in result.err
    assert result.err.count("\n") == 1


def test_config_set_and_unset_write_a_custom_extra_as_meltano_does(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``meltano config set tap-x _x-owner foo`` rewrites ``x-owner:``; a plugin key or a new name is refused.

    Meltano would write a new ``_name`` as a key too; strata keeps refusing it, as a likely typo.
    """
    path = write_project(tmp_path, CUSTOM, name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    assert strata("config", "set", "tap-x", "_x-owner", "growth").code == 0
    assert path.read_text() == CUSTOM.replace("x-owner: data-team", "x-owner: growth")
    assert strata("config", "set", "tap-x", "_ui_hints.category", "sales").code == 0
    assert path.read_text() == CUSTOM.replace("x-owner: data-team", "x-owner: growth").replace(
        "category: crm", "category: sales"
    )
    assert (
        strata("config", "get", "tap-x", "_ui_hints.category").out == "_ui_hints.category=sales (from meltano.yml:5)\n"
    )
    assert strata("config", "unset", "tap-x", "_review_ticket").code == 0
    assert "review_ticket" not in path.read_text()
    before = path.read_text()
    refused = strata("config", "set", "tap-x", "_pip_url", "x")
    assert refused.code == 2
    assert "`_pip_url` is not an extra of extractors" in refused.err
    assert strata("config", "set", "tap-x", "_x-ownr", "x").code == 2
    assert path.read_text() == before
