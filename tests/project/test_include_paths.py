"""A project split over several files with ``include_paths`` reads and edits as Meltano does (issue 12, item 1).

The fixture ``tests/fixtures/meltano-include-paths`` holds the project and, under ``expected/``,
what Meltano 4.4.1 printed for it and the files it left after the same edits (``record.sh``
made them). The tests compare strata with the stored output; when Meltano is at hand
(``TEST_MELTANO_BIN``, or the bench venv ``bench/.venvs/meltano``) one more test runs the
script again and checks that Meltano still prints exactly what is stored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from strata.project.project import Project
from strata.project.settings import resolve
from tests.helpers import Cli, files_under, record_with_meltano, snapshot, write_project

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-include-paths"
EXPECTED = FIXTURE / "expected"
FILES = ("meltano.yml", "subconfig/extractors.yml", "subconfig/jobs.yml", "environments.yml")


@pytest.fixture
def split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture project, copied; no environment chosen by the test runner's variables."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE / "project", root)
    monkeypatch.chdir(root)
    for var in ("STRATA_ENVIRONMENT", "MELTANO_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    return root


def _expected(name: str) -> Any:
    return json.loads((EXPECTED / name).read_text())


def _config(project: Project, name: str) -> dict[str, Any]:
    return {key: value.value for key, value in resolve(project, name).values.items() if value.value is not None}


def _data(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def test_plugins_jobs_schedules_and_environments_come_from_every_file(strata: Cli, split: Path) -> None:
    jobs = json.loads(strata("--json", "job", "list").out)
    assert [{"job_name": j["name"], "tasks": j["tasks"]} for j in jobs] == _expected("job-list.json")["jobs"]
    schedules = json.loads(strata("--json", "schedule", "list").out)
    meltano_schedules = _expected("schedule-list.json")["schedules"]["job"]
    assert [(s["name"], s["interval"], s["cron"], s["job"]) for s in schedules] == [
        (s["name"], s["interval"], s["cron_interval"], s["job"]["name"]) for s in meltano_schedules
    ]
    project = Project(split)
    environments = (EXPECTED / "environment-list.txt").read_text().split()
    assert [e.name for e in project.model.environments] == environments
    assert [ref.name for ref in project.plugins()] == ["tap-csv", "tap-csv-extra", "target-jsonl"]


def test_config_resolves_across_files_as_meltano_does(split: Path) -> None:
    assert _config(Project(split, environ={}), "tap-csv-extra") == _expected("config-tap-csv-extra.json")
    userdev = Project(split, environment="userdev", environ={})
    assert _config(userdev, "target-jsonl") == _expected("config-target-jsonl-userdev.json")
    prod = Project(split, environ={"MELTANO_ENVIRONMENT": "prod"})
    assert _config(prod, "target-jsonl") == _expected("config-target-jsonl-meltano-environment-prod.json")


def test_locations_name_the_included_file(strata: Cli, split: Path) -> None:
    result = strata("-e", "prod", "config", "target-jsonl", "list")
    assert "destination_path=output/prod (from environment prod (environments.yml:15))" in result.out
    assert Project(split).line(["plugins", "extractors", 1, "inherit_from"]) == "subconfig/extractors.yml:15"


def test_edits_go_to_the_file_that_holds_the_entry_as_in_meltano(strata: Cli, split: Path) -> None:
    """The same three ``config set`` as ``record.sh``; each file then holds what Meltano left in it."""
    assert strata("-e", "prod", "config", "tap-csv-extra", "set", "files", "[]").code == 0
    towns = '[{"entity": "towns", "path": "towns.csv", "keys": ["id"]}]'
    assert strata("config", "tap-csv-extra", "set", "files", towns).code == 0
    assert strata("config", "target-jsonl", "set", "destination_path", "edited").code == 0
    for name in FILES:
        assert _data(split / name) == _data(EXPECTED / "after-set" / name), name


def test_an_edit_changes_only_the_file_it_must(strata: Cli, split: Path) -> None:
    before = snapshot(split)
    assert strata("config", "tap-csv", "set", "delimiter", ";").code == 0
    after = snapshot(split)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"subconfig/extractors.yml"}
    assert "delimiter: ;" in (split / "subconfig/extractors.yml").read_text()
    assert (
        "tap-csv: delimiter removed from subconfig/extractors.yml"
        in strata("config", "tap-csv", "unset", "delimiter").out
    )
    assert snapshot(split) == before


def test_added_entries_go_to_the_main_file_and_removed_ones_leave_their_file(strata: Cli, split: Path) -> None:
    assert strata("job", "add", "again", "--tasks", "tap-csv-extra target-jsonl").code == 0
    assert "again" in (split / "meltano.yml").read_text()
    assert "Removed schedule `daily-cities` from subconfig/jobs.yml" in strata("schedule", "remove", "daily-cities").out
    assert "Removed job `load-cities` from subconfig/jobs.yml" in strata("job", "remove", "load-cities").out
    assert _data(split / "subconfig/jobs.yml") == {"jobs": [], "schedules": []}
    assert strata("remove", "tap-csv-extra").code == 0
    assert [p["name"] for p in _data(split / "subconfig/extractors.yml")["plugins"]["extractors"]] == ["tap-csv"]
    assert [j.name for j in Project(split).model.jobs] == ["again"]


def test_a_glob_that_matches_nothing_is_fine_as_in_meltano(split: Path) -> None:
    main = split / "meltano.yml"
    main.write_text(main.read_text().replace("  - ./environments.yml\n", "  - ./environments.yml\n  - ./more/*.yml\n"))
    assert [s.name for s in Project(split).sources] == [
        "meltano.yml",
        "subconfig/extractors.yml",
        "subconfig/jobs.yml",
        "environments.yml",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("./missing.yml", "meltano.yml:7: include_paths names `./missing.yml`, which does not exist"),
        ("../outside/*.yml", "meltano.yml:7: include_paths entry `../outside/*.yml` reaches"),
        ("/etc/*.yml", "meltano.yml:7: include_paths entry `/etc/*.yml` is not relative to the project"),
        ("subconfig", "meltano.yml:7: include_paths entry `subconfig` matches"),
    ],
)
def test_a_bad_include_path_is_one_located_line_and_changes_nothing(
    strata: Cli, split: Path, entry: str, message: str
) -> None:
    outside = split.parent / "outside"
    outside.mkdir()
    (outside / "x.yml").write_text("jobs: []\n")
    main = split / "meltano.yml"
    main.write_text(main.read_text().replace("  - ./environments.yml\n", f"  - ./environments.yml\n  - {entry}\n"))
    before = snapshot(split)
    for args in (("job", "list"), ("config", "target-jsonl", "set", "destination_path", "x")):
        result = strata(*args)
        assert result.code == 2, args
        assert message in result.err
        assert result.err.count("\n") == 1
    assert snapshot(split) == before


def test_errors_in_an_included_file_name_it_and_its_line(strata: Cli, split: Path) -> None:
    jobs = split / "subconfig" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("    interval: '@daily'\n", "    interval: '@daily'\n    bogus: 1\n"))
    result = strata("job", "list")
    assert result.code == 2
    assert "subconfig/jobs.yml:8: unknown key `schedules[0].bogus`" in result.err
    jobs.write_text("jobs: [\n")
    result = strata("job", "list")
    assert result.code == 2
    assert "subconfig/jobs.yml:2:1: malformed YAML" in result.err


def test_a_plugin_defined_in_two_files_names_both(strata: Cli, split: Path) -> None:
    (split / "subconfig" / "more.yml").write_text("plugins:\n  loaders:\n    - name: target-jsonl\n")
    result = strata("job", "list")
    assert result.code == 2
    assert "subconfig/more.yml:3: plugin `target-jsonl` is defined twice (first at meltano.yml:9)" in result.err


def test_other_keys_in_an_included_file_are_not_read_with_one_warning(strata: Cli, split: Path) -> None:
    (split / "subconfig" / "more.yml").write_text("default_environment: prod\n")
    warning = "subconfig/more.yml:1: `default_environment` is not read from an included file"
    quiet = strata("--log-level", "error", "job", "list")
    assert quiet.code == 0
    assert warning not in quiet.err
    first = strata("job", "list")
    assert first.code == 0
    assert first.err.count(warning) == 1
    assert first.err.count("\n") == 1
    assert Project(split, environ={}).environment.name == "userdev"  # type: ignore[union-attr]


def test_the_parse_cache_follows_edits_of_included_files(strata: Cli, split: Path) -> None:
    assert "load-cities" in strata("job", "list").out
    jobs = split / "subconfig" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("load-cities", "load-towns"))
    assert "load-towns" in strata("job", "list").out
    (split / "subconfig" / "later.yml").write_text("jobs:\n  - {name: later, tasks: [tap-csv target-jsonl]}\n")
    assert "later" in strata("job", "list").out


def test_an_empty_included_file_holds_nothing(split: Path) -> None:
    (split / "subconfig" / "empty.yml").write_text("")
    assert len(Project(split).sources) == 5


def test_a_project_without_include_paths_is_one_source(tmp_path: Path) -> None:
    write_project(tmp_path, "version: 1\n")
    assert [s.name for s in Project(tmp_path).sources] == ["strata.yml"]


def test_a_second_read_of_a_split_project_comes_from_the_parse_cache(split: Path) -> None:
    from tests.test_cli_frame import _modules_after

    assert "ruamel.yaml" in _modules_after(["job", "list"], split)
    assert "ruamel.yaml" not in _modules_after(["job", "list"], split)


def test_the_stored_meltano_output_is_what_meltano_prints_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``record.sh`` run again reproduces every stored file byte for byte."""
    copy = record_with_meltano(FIXTURE, tmp_path, timeout=300)
    assert files_under(copy / "expected") == files_under(EXPECTED)


def test_a_job_in_two_included_files_is_refused_as_in_meltano(strata: Cli, split: Path) -> None:
    """Meltano refuses a job, schedule or environment defined in two included files ("Duplicate ... found")."""
    (split / "subconfig" / "more.yml").write_text(
        "jobs:\n  - name: load-cities\n    tasks: [tap-csv-extra target-jsonl]\n"
    )
    before = snapshot(split)
    result = strata("job", "list")
    assert result.code == 2
    assert "subconfig/more.yml:2: job `load-cities` is defined twice (first at subconfig/jobs.yml:2)" in result.err
    assert result.err.count("\n") == 1
    assert snapshot(split) == before


def test_a_job_in_the_main_file_and_an_included_one_is_a_warning(strata: Cli, split: Path) -> None:
    """Meltano lists both (the main file is not indexed); strata warns and uses the first."""
    main = split / "meltano.yml"
    main.write_text(main.read_text() + "jobs:\n  - name: load-cities\n    tasks: [tap-csv-extra target-jsonl]\n")
    result = strata("job", "list")
    assert result.code == 0
    assert "subconfig/jobs.yml:2: job `load-cities` is defined twice (first at meltano.yml:17)" in result.err
    assert "; the first one is used" in result.err


def test_other_keys_in_a_file_included_by_strata_yml_are_errors(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, "include_paths: [more.yml]\n")
    (tmp_path / "more.yml").write_text("jobs: []\nenv: {A: 1}\n")
    monkeypatch.chdir(tmp_path)
    result = strata("job", "list")
    assert result.code == 2
    assert (
        "more.yml:2: `env` is not read from an included file (only plugins, schedules, environments, jobs)"
        in result.err
    )
    assert result.err.count("\n") == 1
