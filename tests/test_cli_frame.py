"""The CLI frame: global options, errors, exit codes, start-up weight, the public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import strata
from tests.helpers import Cli, run_strata, write_project

HEAVY = (
    "polars",
    "duckdb",
    "sqlalchemy",
    "boto3",
    "botocore",
    "pyarrow",
    "pandas",
    "narwhals",
    "azure",
    "numpy",
    "rich",
    "starlette",  # `strata ui` only
    "uvicorn",
    "selenium",  # the page tests only
)


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    code = (
        "import sys\n"
        "from strata.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return set(done.stderr.split())


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    loaded = _modules_after(["--help"], tmp_path)
    assert "strata.cli.app" in loaded  # the probe really ran the CLI
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_config_list_loads_no_heavy_library(tmp_path: Path) -> None:
    write_project(
        tmp_path, "plugins:\n  loaders:\n    - name: target-x\n      executable: target-x\n      config: {a: 1}\n"
    )
    first = _modules_after(["config", "target-x", "list"], tmp_path)
    assert "strata.project.settings" in first
    assert not {m for m in first if m.split(".")[0] in HEAVY}
    assert "ruamel.yaml" in first  # the first read parses the file ...
    second = _modules_after(["config", "target-x", "list"], tmp_path)
    assert "strata.project.settings" in second
    assert "ruamel.yaml" not in second  # ... later reads come from the parse cache


def test_public_api_is_sorted_and_complete() -> None:
    assert strata.__all__ == sorted(strata.__all__)
    for name in strata.__all__:
        assert hasattr(strata, name)


def test_version() -> None:
    done = run_strata("--version", cwd=Path.cwd())
    assert done.code == 0
    assert strata.__version__ in done.out


def test_usage_error_exits_2(strata: Cli) -> None:
    result = strata("no-such-command")
    assert result.code == 2
    assert "no-such-command" in result.err


def test_no_project_is_one_clear_line(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = strata("config", "tap-x", "list")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "strata init" in result.err
    assert "Traceback" not in result.err


def test_debug_adds_the_traceback(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = strata("--debug", "config", "tap-x", "list")
    assert result.code == 2
    assert "Traceback" in result.err
    assert "ProjectNotFoundError" in result.err


def test_project_dir_option_and_discovery_upward(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(
        tmp_path / "p", "plugins:\n  loaders:\n    - name: target-x\n      executable: target-x\n      config: {a: 1}\n"
    )
    deep = tmp_path / "p" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert "a=1" in strata("config", "target-x", "list").out
    monkeypatch.chdir(tmp_path)
    assert "a=1" in strata("-C", str(tmp_path / "p"), "config", "target-x", "list").out


def test_json_output(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(
        tmp_path, "plugins:\n  loaders:\n    - name: target-x\n      executable: target-x\n      config: {a: 1}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = strata("--json", "config", "target-x", "list")
    assert result.code == 0
    rows = result.json()
    assert rows[0]["name"] == "a"
    assert rows[0]["value"] == 1
    assert rows[0]["source"] == "strata.yml"


def test_log_format_json_is_accepted_and_bad_level_refused(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert strata("--log-level", "loud", "init", "x").code == 2
    assert not (tmp_path / "x").exists()
    assert strata("--log-format", "json", "--log-level", "debug", "init", "x").code == 0
