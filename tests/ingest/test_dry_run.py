"""`run --dry-run` on a project where nothing is installed: the plan, exit 0, nothing installed or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, write_project

PROJECT = """
default_environment: dev
environments: [{name: dev}]
jobs: [{name: nightly, tasks: ["tap-jsonl target-jsonl", "tap-jsonl:grow"]}]
plugins:
  extractors:
    - name: tap-jsonl
      pip_url: tap-jsonl==0.3.1
      settings: [{name: path}]
      config: {stream_name: users, path: "${DATA_PATH}"}
      commands:
        grow: {executable: python, args: "grow.py $TAP_JSONL_PATH"}
  loaders:
    - name: target-jsonl
      pip_url: target-jsonl==0.1.4
"""


@pytest.fixture
def uninstalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    write_project(root, PROJECT)
    monkeypatch.chdir(root)
    return root


def written(root: Path) -> list[str]:
    """Everything under the project but its file and strata's parse cache of it."""
    kept = {"strata.yml", ".strata", "cache"}
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name not in kept and "cache" not in p.parts)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--dry-run", "tap-jsonl", "target-jsonl", "tap-jsonl:grow"],
        ["run", "--dry-run", "nightly"],
        ["job", "run", "--dry-run", "nightly"],
        ["el", "--dry-run", "tap-jsonl", "target-jsonl"],
        ["el", "--dry", "tap-jsonl", "target-jsonl"],
    ],
)
def test_a_dry_run_needs_no_installed_plugin(strata: Cli, uninstalled: Path, args: list[str]) -> None:
    done = strata(*args)
    assert done.code == 0, done.err
    assert "would run: state id dev:tap-jsonl-to-target-jsonl" in done.out
    assert "tap-jsonl (tap-jsonl, not installed yet: `strata install tap-jsonl`)" in done.out
    assert "target-jsonl (target-jsonl, not installed yet: `strata install target-jsonl`)" in done.out
    if args[0] != "el":
        assert "would run: tap-jsonl:grow (not installed yet)" in done.out
    assert written(uninstalled) == []


def test_a_dry_run_still_checks_the_blocks_and_the_settings(strata: Cli, uninstalled: Path) -> None:
    (uninstalled / "strata.yml").write_text(PROJECT + "ff:\n  strict_env_var_mode: true\n")
    for args, message in [
        (["run", "--dry-run", "tap-jsonl", "target-jsonl"], "DATA_PATH"),
        (["run", "--dry-run", "tap-jsonl:nope"], "`tap-jsonl` has no command `nope`"),
        (["run", "--dry-run", "tap-jsonl"], "has no loader after it"),
    ]:
        done = strata(*args)
        assert done.code == 2, done.err
        assert message in done.err
        assert done.err.count("\n") == 1
    assert written(uninstalled) == []


def test_a_dry_run_resolves_the_loader_with_the_extractors_variables(
    strata: Cli, uninstalled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run sets `$MELTANO_EXTRACT__LOAD_SCHEMA` for the loader, so the dry run neither warns nor refuses it."""
    loader = "      pip_url: target-jsonl==0.1.4\n"
    text = PROJECT.replace(
        loader, f'{loader}      config: {{destination_path: "out/${{MELTANO_EXTRACT__LOAD_SCHEMA}}"}}\n'
    )
    monkeypatch.setenv("DATA_PATH", "users.jsonl")
    for strict in ("false", "true"):
        (uninstalled / "strata.yml").write_text(f"{text}ff:\n  strict_env_var_mode: {strict}\n")
        done = strata("run", "--dry-run", "tap-jsonl", "target-jsonl")
        assert done.code == 0, done.err
        assert "not set" not in done.err
        assert "target-jsonl (target-jsonl, not installed yet" in done.out
    assert written(uninstalled) == []
