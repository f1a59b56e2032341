"""What Meltano accepts in a project file loads with a warning, not an error (issue 12, item 3)."""

from __future__ import annotations

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


def test_unknown_nested_keys_are_still_errors(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path, "plugins:\n  extractors:\n    - {name: tap-x, bogus_key: 1}\n", name="meltano.yml")
    monkeypatch.chdir(tmp_path)
    result = strata("job", "list")
    assert result.code == 2
    assert "meltano.yml:3: unknown key `plugins.extractors[0].bogus_key`" in result.err


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
