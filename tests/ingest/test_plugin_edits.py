"""`strata add | remove | install` failures: nothing half-done, one line that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.project.project import Project
from tests.helpers import Cli, assert_meltano_still_prints, snapshot, write_project


def test_add_with_an_unset_variable_in_pip_url_changes_nothing(
    strata: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_FF_STRICT_ENV_VAR_MODE", "1")
    before = snapshot(project)
    result = strata("add", "extractor", "tap-x", "--pip-url", "${NOPE}")
    assert result.code == 2
    assert "uses ${NOPE}, which is not set" in result.err
    assert result.err.count("\n") == 1
    assert snapshot(project) == before


TWO = """
    plugins:
      loaders:
        - {name: a, executable: /bin/true}
        - {name: b, executable: /bin/true}
"""


def test_remove_checks_every_name_before_changing_anything(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, TWO)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = strata("remove", "a", "nope")
    assert result.code == 2
    assert "no plugin named `nope`" in result.err
    assert snapshot(tmp_path) == before
    assert [ref.name for ref in Project(tmp_path).plugins()] == ["a", "b"]


def test_remove_drops_the_plugins_from_the_lock_file(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, TWO)
    lock = {"version": 1, "plugins": {n: {"type": "loaders", "pip_url": n, "requirements": [f"{n}==1"]} for n in "ab"}}
    (tmp_path / "strata.lock").write_text(json.dumps(lock))
    monkeypatch.chdir(tmp_path)
    result = strata("remove", "a", "a")
    assert result.code == 0, result.err
    assert result.out == "Removed `a`\n"
    assert list(json.loads((tmp_path / "strata.lock").read_text())["plugins"]) == ["b"]
    assert [ref.name for ref in Project(tmp_path).plugins()] == ["b"]


def test_a_failed_install_of_the_only_plugin_does_not_mention_others_or_blame_pip_url(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(
        tmp_path, "plugins:\n  loaders:\n    - {name: a, pip_url: target-jsonl, python: /nonexistent/python3}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = strata("install")
    assert result.code == 1
    last = result.err.splitlines()[-1]
    assert last.startswith("strata: error: 1 of 1 plugins failed to install: a; see the message above")
    assert "others" not in last
    assert "pip_url" not in last
    failure = result.err.splitlines()[0]
    assert failure.startswith("a: failed: could not create the environment of `a`")
    assert "check the plugin's `python:`" in failure
    assert not (tmp_path / ".strata" / "plugins" / "loaders" / "a").exists()


def test_install_of_a_plugin_without_pip_url_says_there_is_nothing_to_install(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(
        tmp_path,
        "plugins:\n  extractors:\n    - {name: tap-local, executable: /bin/true}\n    - {name: tap-bare}\n",
    )
    monkeypatch.chdir(tmp_path)
    named = strata("install", "tap-local", "tap-bare", "target-strata")
    assert named.code == 0, named.err
    assert named.out.splitlines() == [
        "tap-local: nothing to install: it has no pip_url and runs /bin/true as it is",
        "tap-bare: nothing to install: it has no pip_url; add one to it in strata.yml, or put `tap-bare` on PATH",
        "target-strata: nothing to install: it is built into strata",
    ]
    as_json = strata("--json", "install", "tap-local")
    assert as_json.json() == [{"name": "tap-local", "status": "nothing to install", "error": None, "seconds": 0}]
    everything = strata("install")
    assert everything.code == 0
    assert everything.out == "nothing to install: no plugin has a pip_url\n"
    assert not (tmp_path / ".strata" / "plugins").exists()


ADD_FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-add"


def _entries(path: Path) -> dict[str, list[list[tuple[str, object]]]]:
    """Each plugin section's entries as ordered (key, value) pairs."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(path.read_text())
    return {kind: [list(entry.items()) for entry in entries] for kind, entries in data["plugins"].items()}


def test_add_writes_utilities_and_transformers_as_meltano_does(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meltano 4's `add --plugin-type TYPE NAME` (singular or plural) and strata's `add TYPE NAME` write one entry each."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "meltano.yml").write_text((ADD_FIXTURE / "project" / "meltano.yml").read_text())
    monkeypatch.chdir(root)
    dbt = ["--pip-url", "dbt-core==1.9.11 dbt-duckdb==1.9.6", "--executable", "dbt"]
    for args in (
        ["--plugin-type", "transformer", "dbt-duckdb", "--namespace", "dbt_duckdb", "--variant", "jwills", *dbt],
        ["--plugin-type", "transformers", "dbt-eu", "--inherit-from", "dbt-duckdb"],
        ["utility", "sqlfluff", "--namespace", "sqlfluff", "--pip-url", "sqlfluff==3.2.0"],
    ):
        result = strata("add", *args, "--no-install")
        assert result.code == 0, result.err
    assert result.out == "Added utility `sqlfluff` to meltano.yml (not installed)\n"
    assert _entries(root / "meltano.yml") == _entries(ADD_FIXTURE / "expected" / "meltano.yml")
    assert Project(root).plugin("dbt-eu").plugin_type == "transformers"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["utility"], "`strata add utility` needs the plugin's NAME; write `strata add utility NAME`"),
        (["transform", "x"], "unknown plugin type `transform`; one of: extractor, loader, mapper, utility"),
        (["--plugin-type", "utility", "a", "b"], "add one plugin at a time; run `strata add` once per plugin"),
        (["--plugin-type", "utility", "utility", "a"], "add one plugin at a time"),
        (["--plugin-type", "mapping", "a"], "unknown plugin type `mapping`; one of: extractor, loader"),
    ],
)
def test_add_refuses_what_it_cannot_add(strata: Cli, project: Path, args: list[str], expected: str) -> None:
    before = snapshot(project)
    result = strata("add", *args, "--executable", "x")
    assert result.code == 2
    assert expected in result.err
    assert result.err.count("\n") == 1
    assert snapshot(project) == before


def test_the_stored_meltano_add_is_what_meltano_writes_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``meltano-add/record.sh`` run again writes the stored file byte for byte."""
    assert_meltano_still_prints(ADD_FIXTURE, tmp_path)
