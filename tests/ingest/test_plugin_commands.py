"""Plugin ``commands:`` (Meltano's): `strata invoke PLUGIN:COMMAND`, `PLUGIN:COMMAND` blocks, bad input.

The plugins here are small Python scripts (real processes); the end-to-end run with plugins
from PyPI is in ``test_pipeline.py``.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from strata.history.model import pid_alive
from tests.helpers import Cli, run_strata, snapshot, wait_for, write_project
from tests.ingest.test_run_interrupts import interrupt, start_run

ECHO = """\
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "who": os.path.basename(sys.argv[0])}))
"""

SLOW = """\
import os, signal, sys, time
open("slow.pid", "w").write(str(os.getpid()))
signal.signal(signal.SIGTERM, lambda *_: (print("slow bye", flush=True), sys.exit(0)))
time.sleep(60)
"""

FAIL = """\
import sys
print("working", flush=True)
print("boom: password=hunter2-secret", file=sys.stderr, flush=True)
sys.exit(3)
"""


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def _project(root: Path, commands: str = "", extra: str = "") -> None:
    """A tap and target that do nothing, and a utility `tool` (echoes its argv) with ``commands``."""
    _script(root / "echo.py", ECHO)
    _script(root / "other.py", ECHO)
    _script(root / "fail.py", FAIL)
    _script(root / "slow.py", SLOW)
    write_project(
        root,
        f"""
        plugins:
          extractors:
            - name: tap-x
              executable: {root / "echo.py"}
              commands: {{about: --about}}
          loaders:
            - {{name: target-x, executable: /bin/true}}
          utilities:
            - name: tool
              executable: {root / "echo.py"}
              settings: [{{name: target}}, {{name: password, kind: password}}]
              config: {{target: prod, password: hunter2-secret}}
              commands:
                greet: "hello --target $TOOL_TARGET"
                quoted: {{args: '''two words'' ${{TOOL_TARGET}} ''\\$TOOL_TARGET''', description: Quoted}}
                other: {{executable: ./other.py, args: run}}
                fail: {{executable: ./fail.py}}
                slow: {{executable: ./slow.py}}
                {commands}
            - {{name: child, inherit_from: tool, commands: {{greet: bye}}}}
            - {{name: bare, executable: /bin/true}}
        {extra}
        """,
    )


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "argv", "who"),
    [
        (["tool:greet"], ["hello", "--target", "prod"], "echo.py"),
        (["tool:greet", "--more", "x y"], ["hello", "--target", "prod", "--more", "x y"], "echo.py"),
        (["tool:quoted"], ["two words", "prod", "$TOOL_TARGET"], "echo.py"),
        (["tool:other"], ["run"], "other.py"),
        (["child:greet"], ["bye"], "echo.py"),
        (["child:other"], ["run"], "other.py"),
        (["tap-x:about"], ["--about"], "echo.py"),
    ],
)
def test_invoke_runs_a_command_with_its_args_expanded_from_the_plugin_config(
    tool: Path, args: list[str], argv: list[str], who: str
) -> None:
    """String and object forms, `executable`, inherited commands, extra ARGS after the command's; no --config."""
    result = run_strata("invoke", *args, cwd=tool)
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"argv": argv, "who": who}
    assert result.err == ""


def test_a_container_spec_is_ignored_with_a_warning(tmp_path: Path) -> None:
    _project(tmp_path, commands="boxed: {args: inside, container_spec: {image: 'alpine:3'}}")
    result = run_strata("invoke", "tool:boxed", cwd=tmp_path)
    assert result.code == 0, result.err
    assert json.loads(result.out)["argv"] == ["inside"]
    assert "strata.yml:19: command `tool:boxed` has a container_spec, which strata ignores" in result.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["invoke", "tool:gret"], "strata: error: `tool` has no command `gret`; did you mean `tool:greet`?\n"),
        (
            ["invoke", "tool:zzz"],
            "strata: error: `tool` has no command `zzz`; its commands: fail, greet, other, quoted, slow\n",
        ),
        (
            ["invoke", "bare:run"],
            (
                "strata: error: `bare` defines no commands, so `bare:run` cannot run; "
                "add `run` under its `commands:` in strata.yml\n"
            ),
        ),
        (["invoke", "tol:greet"], "strata: error: no plugin named `tol` in strata.yml; did you mean `tool`?\n"),
        (["run", "tap-x", "target-x", "tool:gret"], "did you mean `tool:greet`?"),
        (["run", "tap-x", "target-x", "bare:run"], "`bare` defines no commands"),
        (["run", "tap-x", "tool:greet", "target-x"], "`tap-x` has no loader before `tool:greet`"),
        (["run", "--dry-run", "tool:greet", "tap-x", "target-x", "tol:greet"], "did you mean `tool`?"),
        (["job", "run", "broken"], "did you mean `tool:greet`?"),
        (["schedule", "run", "nightly"], "did you mean `tool:greet`?"),
        (["job", "add", "weekly", "--tasks", "tap-x target-x tool:gret"], "did you mean `tool:greet`?"),
        (["job", "add", "weekly", "--tasks", "tap-x target-x bare:run"], "`bare` defines no commands"),
        (["job", "add", "weekly", "--tasks", "tap-x target-x tol:greet"], "did you mean `tool:greet`?"),
        (
            ["job", "add", "weekly", "--tasks", "zzz:run"],
            (
                "strata: error: --tasks names `zzz:run`, which is neither a plugin nor a job in strata.yml; "
                "add a plugin `zzz` with a `run` entry under its `commands:`\n"
            ),
        ),
    ],
)
def test_an_unknown_command_is_one_clear_line_and_changes_nothing(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    _project(
        tmp_path,
        extra="""
        jobs: [{name: broken, tasks: ['tap-x target-x', tool:gret]}]
        schedules: [{name: nightly, interval: '@daily', job: broken}]
        """,
    )
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = strata(*args)
    assert result.code == 2, result.err
    assert expected in result.err
    assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before
    assert not (tmp_path / ".strata" / "logs" / "runs").exists()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("bad: 5", "strata.yml:19: `plugins.utilities[0].commands.bad` is a number, not a command; write a string"),
        ("bad: {arg: x}", "strata.yml:19: unknown key `plugins.utilities[0].commands.bad.arg`; did you mean `args`?"),
        ("bad: {args: [a, b]}", "strata.yml:19: `plugins.utilities[0].commands.bad`: expected str, got array"),
        ('bad: "a \'b"', "strata.yml:19: command `tool:bad` args cannot be split: No closing quotation"),
        ("bad: $UNSET_ONE", "strata.yml:19: command `tool:bad` args: `$UNSET_ONE` is empty once expanded"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["invoke", "tool:bad"],
        ["run", "tool:bad"],
        ["run", "--dry-run", "tool:bad"],
        ["run", "tool:greet", "tap-x", "target-x", "tool:bad"],  # refused before anything runs
    ],
)
def test_a_command_entry_of_the_wrong_shape_is_one_clear_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, expected: str, command: list[str]
) -> None:
    _project(tmp_path, commands=entry)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = strata(*command)
    assert result.code == 2, result.err
    assert result.err.startswith(f"strata: error: {expected}")
    assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_a_job_and_a_schedule_run_command_blocks_each_with_its_own_run(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(
        tmp_path,
        extra="""
        jobs: [{name: tidy, tasks: [tool:greet, [tool:other, 'child:greet']]}]
        schedules: [{name: nightly, interval: '@daily', job: tidy}]
        """,
    )
    monkeypatch.chdir(tmp_path)
    listed = strata("--json", "job", "list")
    assert listed.json()[0]["blocks"] == ["tool:greet", "tool:other", "child:greet"]
    dry = strata("run", "--dry-run", "tidy")
    assert dry.code == 0, dry.err
    assert "would run: tool:greet (" in dry.out
    assert "prod" not in dry.out  # the plan shows no expanded value: it could be a secret
    done = strata("--json", "job", "run", "tidy")
    assert done.code == 0, done.err
    assert [r["state_id"] for r in done.json()] == ["default:tool:greet", "default:tool:other", "default:child:greet"]
    log = Path(done.json()[0]["log"]).read_text()
    assert json.loads(log.split("tool:greet | ", 1)[1])["argv"] == ["hello", "--target", "prod"]
    assert strata("schedule", "run", "nightly").code == 0
    runs = strata("--json", "runs", "list").json()
    assert sorted(r["state_id"] for r in runs) == sorted(
        ["default:tool:greet", "default:tool:other", "default:child:greet"] * 2
    )
    assert {r["status"] for r in runs} == {"success"}


def test_a_failing_command_stops_the_run_names_the_block_and_marks_it_failed(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = strata("run", "tool:greet", "tool:fail", "tool:other")
    assert result.code == 1
    assert result.err.startswith(
        "strata: error: block `tool:fail` failed with exit code 3: working / boom: password=(redacted); see the run log"
    ), result.err
    assert "hunter2-secret" not in result.err
    assert result.err.count("\n") == 1
    runs = {r["state_id"]: r for r in strata("--json", "runs", "list").json()}
    assert set(runs) == {"default:tool:greet", "default:tool:fail"}  # tool:other never ran
    assert runs["default:tool:fail"]["status"] == "failed"
    assert runs["default:tool:greet"]["status"] == "success"
    assert "block `tool:fail` failed with exit code 3" in runs["default:tool:fail"]["error"]
    assert "hunter2-secret" not in runs["default:tool:fail"]["error"]
    log = Path(runs["default:tool:fail"]["log_path"]).read_text()
    assert "tool:fail | working" in log
    assert "hunter2-secret" not in log


def test_schedule_export_leaves_out_a_schedule_whose_job_names_a_missing_command(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(
        tmp_path,
        extra="""
        jobs: [{name: good, tasks: ['tap-x target-x', tool:greet]}, {name: broken, tasks: [tool:gret]}]
        schedules:
          - {name: fine, interval: '@daily', job: good}
          - {name: typo, interval: '@daily', job: broken}
        """,
    )
    monkeypatch.chdir(tmp_path)
    result = strata("schedule", "export", "--to", "cron")
    assert result.code == 0, result.err
    assert result.err == (
        "strata: warning: schedule `typo` is not exported: `tool` has no command `gret`; did you mean `tool:greet`?\n"
    )
    assert "schedule run fine" in result.out
    assert "schedule run typo" not in result.out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_command_block_and_its_run_is_cancelled(tmp_path: Path, signum: signal.Signals) -> None:
    _project(tmp_path)
    pid_file = tmp_path / "slow.pid"
    proc = start_run(tmp_path, "tool:slow", "tool:greet")
    err = interrupt(proc, signum, lambda: pid_file.is_file() and pid_file.read_text() != "", "the command to start")
    assert proc.returncode == 128 + signum, err
    assert err.startswith(f"strata: interrupted by {signum.name}: run "), err
    assert err.count("\n") == 1
    wait_for(lambda: not pid_alive(int(pid_file.read_text())), "the command to exit")
    runs = run_strata("--json", "runs", "list", cwd=tmp_path).json()
    assert [(r["blocks"], r["status"]) for r in runs] == [(["tool:slow"], "cancelled")]  # tool:greet never ran
    assert "tool:slow | slow bye" in Path(runs[0]["log_path"]).read_text()


def test_invoke_list_commands_shows_each_command_with_its_description(strata: Cli, tool: Path) -> None:
    listed = strata("invoke", "--list-commands", "child")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines() == [
        "child:greet   bye",
        "child:quoted  Quoted",
        "child:other   run",
        "child:fail",
        "child:slow",
    ]
    assert strata("--json", "invoke", "--list-commands", "tool").json()[0] == {
        "name": "tool:greet",
        "args": "hello --target $TOOL_TARGET",
        "executable": None,
        "description": None,
    }
    assert strata("invoke", "--list-commands", "bare").out == "`bare` defines no commands\n"


def test_strict_env_var_mode_makes_an_unset_variable_in_a_commands_args_an_error(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, commands="half: --name=$UNSET_ONE --other x", extra="ff: {strict_env_var_mode: true}")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = strata("invoke", "tool:half")
    assert result.code == 2, result.err
    assert result.err.startswith(
        "strata: error: strata.yml:19: command `tool:half` args use $UNSET_ONE, which is not set"
    )
    assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before
    monkeypatch.delenv("STRATA_FF_STRICT_ENV_VAR_MODE", raising=False)
    _project(tmp_path, commands="half: --name=$UNSET_ONE --other x")
    lenient = strata("invoke", "tool:half")
    assert lenient.code == 0, lenient.err  # empty, with a warning: Meltano's default
