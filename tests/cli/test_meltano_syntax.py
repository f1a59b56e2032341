"""Meltano 4's command forms (`config list PLUGIN`, `environment add NAME` …) beside strata's older ones.

The expected outputs are what Meltano 4.4.1 printed for the same project (meltano_4_outputs.yml).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from strata.history import RunHistory, RunStatus
from strata.project.project import Project
from strata.project.settings import REDACTED
from tests.helpers import Cli, write_project

PROJECT = """
    default_environment: dev
    environments:
    - name: dev
    - name: staging
    - name: prod
    plugins:
      extractors:
      - name: tap-x
        namespace: tap_x
        executable: tap-x
        settings:
        - name: start_date
        - name: api_key
          kind: password
          sensitive: true
        - name: limit
          kind: integer
        - name: flag
          kind: boolean
          value: true
        config:
          start_date: '2024-01-01'
          limit: 5
"""

JOBS = """
      loaders:
      - name: target-y
        namespace: target_y
        executable: target-y
    jobs:
    - name: daily
      tasks:
      - tap-x target-y
    - name: two
      tasks: [tap-x target-y, [tap-x, target-y]]
"""

SCHEDULES = """
    schedules:
    - name: daily-job
      interval: '@daily'
      job: daily
    - name: hourly-elt
      interval: '0 * * * *'
      extractor: tap-x
      loader: target-y
      transform: skip
      start_date: 2024-01-01
"""

MELTANO: dict[str, str] = YAML(typ="safe").load(Path(__file__).with_name("meltano_4_outputs.yml"))


@pytest.fixture
def meltano_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path, PROJECT, "meltano.yml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def environments(root: Path) -> list[Any]:
    return [env["name"] for env in YAML(typ="safe").load(root / "meltano.yml")["environments"]]


def test_config_print_prints_meltanos_json(strata: Cli, meltano_project: Path) -> None:
    for args in (["print", "tap-x", "--format=json"], ["print", "--format", "json", "tap-x"], ["print", "tap-x"]):
        result = strata("config", *args)
        assert result.code == 0, result.err
        assert result.out == MELTANO["config_print_json"]
    assert strata("--json", "config", "print", "tap-x").out == MELTANO["config_print_json"]


def test_config_print_format_env_prints_the_plugins_variables(strata: Cli, meltano_project: Path) -> None:
    result = strata("config", "print", "tap-x", "--format=env")
    assert result.code == 0, result.err
    assert result.out == MELTANO["config_print_env"]
    (meltano_project / ".env").write_text("TAP_X_API_KEY=s3cret\n")
    shown = strata("config", "print", "tap-x", "--format", "env").out
    assert "s3cret" not in shown
    assert f"TAP_X_API_KEY='{REDACTED}'" in shown.splitlines()


def test_config_set_and_unset_in_meltano_4_order(strata: Cli, meltano_project: Path) -> None:
    result = strata("config", "set", "tap-x", "limit", "7")
    assert result.code == 0, result.err
    assert "limit=7 stored in meltano.yml" in result.out
    assert strata("config", "print", "tap-x").out == MELTANO["config_print_after_set"]
    assert strata("config", "set", "tap-x", "api_key", "s3cret").code == 0
    printed = strata("config", "print", "tap-x").out
    assert "s3cret" not in printed
    assert json.loads(printed)["api_key"] == REDACTED
    assert strata("config", "unset", "tap-x", "limit").code == 0
    assert strata("config", "set", "tap-x", "--secret", "token", "t0k").code == 0
    assert strata("config", "set", "--secret", "tap-x", "other", "0th").code == 0
    assert (meltano_project / ".env").read_text().splitlines()[-2:] == ["TAP_X_TOKEN='t0k'", "TAP_X_OTHER='0th'"]
    assert "limit" not in strata("config", "print", "tap-x").json()


def test_config_set_and_unset_take_a_setting_name_in_words_like_meltano(strata: Cli, meltano_project: Path) -> None:
    """`meltano config set tap-x nested inner 3` sets `nested.inner`, as the dotted name does."""
    result = strata("config", "set", "tap-x", "nested", "inner", "three")
    assert result.code == 0, result.err
    assert strata("config", "print", "tap-x").json()["nested"] == {"inner": "three"}
    assert strata("config", "tap-x", "set", "nested", "other", "four").code == 0
    assert strata("config", "get", "tap-x", "nested.other").out.startswith("nested.other=four")
    assert strata("config", "unset", "tap-x", "nested", "inner").code == 0
    assert strata("config", "print", "tap-x").json()["nested"] == {"other": "four"}


def test_config_list_and_get_in_both_orders(strata: Cli, meltano_project: Path) -> None:
    new, old = strata("config", "list", "tap-x"), strata("config", "tap-x", "list")
    assert new.code == old.code == 0, new.err
    assert new.out == old.out
    assert "limit=5" in new.out
    assert strata("--json", "config", "list", "tap-x").json() == strata("--json", "config", "tap-x", "list").json()
    assert strata("config", "get", "tap-x", "limit").out == strata("config", "tap-x", "get", "limit").out
    missing = strata("config", "get", "tap-x", "nope")
    assert (missing.code, missing.err) == (
        2,
        "strata: error: `tap-x` has no setting `nope`; see `strata config list tap-x`\n",
    )


def test_config_with_a_verb_and_no_plugin_is_a_usage_error(strata: Cli, meltano_project: Path) -> None:
    result = strata("config", "list")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "strata config list PLUGIN" in result.err


def test_the_older_form_can_print_too(strata: Cli, meltano_project: Path) -> None:
    assert strata("config", "tap-x", "print").out == MELTANO["config_print_json"]


def test_environment_list_add_remove_like_meltano(strata: Cli, meltano_project: Path) -> None:
    assert strata("environment", "list").out == MELTANO["environment_list"]
    assert strata("--json", "environment", "list").json() == ["dev", "staging", "prod"]
    added = strata("environment", "add", "qa")
    assert (added.code, added.out) == (0, MELTANO["environment_add"])
    assert environments(meltano_project) == ["dev", "staging", "prod", "qa"]
    assert strata("-e", "qa", "config", "list", "tap-x").code == 0
    removed = strata("environment", "remove", "qa")
    assert (removed.code, removed.out) == (0, MELTANO["environment_remove"])
    assert environments(meltano_project) == ["dev", "staging", "prod"]


def test_environment_add_and_remove_refuse_what_cannot_be(strata: Cli, meltano_project: Path) -> None:
    before = (meltano_project / "meltano.yml").read_text()
    for args, words in (
        (["add", "dev"], "already exists"),
        (["remove", "nope"], "not defined"),
        (["remove", "dev"], "default_environment"),
        (["add", "eu:west"], "not a valid environment name"),
        (["add", " "], "not a valid environment name"),
    ):
        result = strata("environment", *args)
        assert result.code == 2, (args, result.out)
        assert words in result.err
        assert result.err.count("\n") == 1
    assert (meltano_project / "meltano.yml").read_text() == before


def test_job_list_format_json_prints_meltanos_shape(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, PROJECT.rstrip("\n") + JOBS, "meltano.yml")
    monkeypatch.chdir(tmp_path)
    assert strata("job", "list", "--format=json").out == MELTANO["job_list_json"]
    assert strata("job", "list", "daily", "--format", "json").out == MELTANO["job_list_one_json"]
    assert [row["name"] for row in strata("job", "list", "--json").json()] == ["daily", "two"]
    assert "two" not in strata("job", "list", "daily").out
    missing = strata("job", "list", "nope", "--format=json")
    assert missing.code == 2
    assert missing.err.startswith("strata: error: no job named `nope`")


def test_schedule_list_format_json_prints_meltanos_shape(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, PROJECT.rstrip("\n") + JOBS + SCHEDULES, "meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("schedule", "list", "--format=json")
    assert result.code == 0, result.err
    assert result.out == MELTANO["schedule_list_json"]
    assert [row["name"] for row in strata("schedule", "list", "--json").json()] == ["daily-job", "hourly-elt"]
    with RunHistory.open(Project(tmp_path)) as history:
        history.start("hourly-elt", None, ["tap-x", "target-y"]).finish(RunStatus.SUCCESS)
        history.start("hourly-elt", None, ["tap-x", "target-y"]).finish(RunStatus.FAILED)
        succeeded = next(run for run in history.list("hourly-elt") if run.status == RunStatus.SUCCESS)
    elt = strata("schedule", "list", "--format", "json").json()["schedules"]["elt"][0]
    assert succeeded.ended_at is not None
    assert elt["last_successful_run_ended_at"] == succeeded.ended_at.isoformat()
