"""Utilities and transformers as Meltano 4.4.1 runs them, compared with what Meltano gave the same processes.

``tests/fixtures/meltano-dbt/project`` has a utility and dbt-shaped transformers whose executable
(``show.sh``) writes where it runs, its arguments and the variables made from its settings;
``expected/`` holds what it wrote under Meltano (``record.sh`` made it). strata must give the
same: a bare utility runs as a block, a transformer runs in its ``project_dir``, every setting
reaches the process under each name Meltano writes (the setting's ``env:``, the plugin's name and
namespace, its parent's, ``MELTANO_TRANSFORM_*``) beside ``MELTANO_TRANSFORMER_NAME`` and the like.
With Meltano at hand (``TEST_MELTANO_BIN`` or ``bench/.venvs/meltano``) the script is run again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import Cli, assert_meltano_still_prints, snapshot

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-dbt"
EXPECTED = FIXTURE / "expected"


@pytest.fixture
def dbt_shaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture project, the working directory inside it."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE / "project", root)
    monkeypatch.chdir(root)
    return root


def _given(root: Path) -> str:
    """What ``show.sh`` wrote, the project root as ``<root>`` (a temporary path may be reached through a symlink)."""
    return (root / "out.txt").read_text().replace(str(root.resolve()), "<root>")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "hello"], "run-hello.txt"),
        (["run", "dbt-duckdb:show"], "run-dbt-duckdb-show.txt"),
        (["invoke", "dbt-eu:show"], "invoke-dbt-eu-show.txt"),
        (["invoke", "dbt-duckdb"], "invoke-dbt-duckdb.txt"),
    ],
)
def test_a_plugin_process_gets_what_meltano_gives_it(
    strata: Cli, dbt_shaped: Path, args: list[str], expected: str
) -> None:
    result = strata(*args)
    assert result.code == 0, result.err
    assert _given(dbt_shaped) == (EXPECTED / expected).read_text()


def test_a_bare_utility_block_is_recorded_in_the_history(strata: Cli, dbt_shaped: Path) -> None:
    assert strata("run", "hello").code == 0
    runs = strata("--json", "runs", "list").json()
    assert [(r["blocks"], r["status"]) for r in runs] == [(["hello"], "success")]


def test_a_transformer_without_project_dir_is_refused_before_it_starts(strata: Cli, dbt_shaped: Path) -> None:
    """Meltano: ``Cannot start plugin: 'project_dir'`` and nothing started; strata says which setting, in one line."""
    assert "not started" in (EXPECTED / "run-dbt-nodir.txt").read_text()
    before = snapshot(dbt_shaped)
    for args in (["run", "dbt-nodir"], ["invoke", "dbt-nodir"]):
        result = strata(*args)
        assert result.code == 2, result.err
        assert result.err == (
            "strata: error: transformer `dbt-nodir` has no `project_dir`, the directory it runs in; "
            "set it in its config (a dbt project's directory, such as $MELTANO_PROJECT_ROOT/transform)\n"
        )
    assert snapshot(dbt_shaped) == before


def test_a_file_bundle_block_is_refused(strata: Cli, dbt_shaped: Path) -> None:
    """A file bundle has no program (Meltano's ``invoke`` refuses it too)."""
    with (dbt_shaped / "meltano.yml").open("a") as handle:
        handle.write("  files:\n  - name: files-dbt-duckdb\n    pip_url: files-dbt-duckdb\n")
    for args in (["run", "files-dbt-duckdb"], ["invoke", "files-dbt-duckdb"]):
        result = strata(*args)
        assert result.code == 2
        assert result.err == (
            "strata: error: `files-dbt-duckdb` is a file bundle, which has no program to run; "
            "run the plugin its files are for\n"
        )


def test_the_stored_meltano_output_is_what_meltano_gives_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``record.sh`` run again writes every stored file byte for byte."""
    assert_meltano_still_prints(FIXTURE, tmp_path)


def test_a_failed_block_is_named_with_its_last_lines_of_text(strata: Cli, dbt_shaped: Path) -> None:
    """The line keeps the last lines that say something: colours, bare timestamps and carets are left out."""
    script = dbt_shaped / "loud.sh"
    script.write_text(
        "#!/bin/sh\nprintf '\\033[31mBinder Error: column nme not found\\033[0m\\n  ^^^\\n12:00:01\\n12:00:01  \\n'\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    path = dbt_shaped / "meltano.yml"
    path.write_text(
        path.read_text().replace("  transformers:\n", "  - {name: loud, executable: ./loud.sh}\n  transformers:\n")
    )
    result = strata("run", "loud")
    assert result.code == 1
    assert result.err.startswith(
        "strata: error: block `loud` failed with exit code 1: Binder Error: column nme not found; "
    )
