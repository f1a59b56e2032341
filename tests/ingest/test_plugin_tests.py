"""`strata test` and `strata config test` (issue 12, item 11) with tap-jsonl from PyPI, compared with Meltano.

The fixture ``tests/fixtures/meltano-plugin-tests`` holds a Meltano project whose plugins have
``test``-prefixed ``commands:`` (``/bin/sh -c 'exit 0'`` and a failing one) and, under
``expected/``, what Meltano 4.4.1 printed for each command run here (``record.sh`` made them:
``*.out`` is stdout and the exit code, ``*.err`` the error Meltano logged). strata prints the
same stdout for ``test``; its errors are one line of its own, with the same meaning.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from strata.history.model import pid_alive
from tests.helpers import STRATA, Result, files_under, recorded_by_meltano, run_strata, wait_for

pytestmark = pytest.mark.network

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-plugin-tests"
EXPECTED = FIXTURE / "expected"

WRAPPED = """\
#!/bin/sh
# tap-jsonl behind a wrapper that leaves a child behind in its process group, or fails printing its token
echo "starting with token $TAP_WRAPPED_API_TOKEN" >&2
if [ "$WRAPPED_MODE" = fail ]; then
  echo "auth failed for token $TAP_WRAPPED_API_TOKEN" >&2
  exit 4
fi
sleep 300 &
echo $! > "$WRAPPED_PIDFILE"
exec "$WRAPPED_TAP" "$@"
"""
"""An extractor as some real projects wrap one: a shell script that starts helpers, then the tap."""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project with tap-jsonl installed once for the module, plus a wrapped tap."""
    root = tmp_path_factory.mktemp("plugin-tests") / "project"
    shutil.copytree(FIXTURE / "project", root)
    (root / "wrapped-tap.sh").write_text(WRAPPED)
    (root / "wrapped-tap.sh").chmod(0o755)
    meltano_yml = root / "meltano.yml"
    meltano_yml.write_text(
        meltano_yml.read_text().replace(
            "  loaders:\n",
            "    - name: tap-wrapped\n"
            "      executable: ./wrapped-tap.sh\n"
            "      capabilities: [state]\n"  # no catalog: no discovery, the tap reads every stream
            "      settings: [{name: path}, {name: stream_name}, {name: api_token, kind: password}]\n"
            "      config: {path: users.jsonl, stream_name: users}\n"
            "    - {name: tap-wrapped-full, inherit_from: tap-wrapped, capabilities: [catalog, discover, state]}\n"
            "  loaders:\n",
        )
    )
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


def _strata(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_strata(*args, cwd=root, env={"COLUMNS": "80", **(env or {})}, timeout=120)


def _meltano(name: str) -> tuple[str, int]:
    """Meltano's stdout and exit code for the stored run ``name``."""
    text = (EXPECTED / f"{name}.out").read_text()
    out, _, code = text.rpartition("exit ")
    return out, int(code)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("test-no-argument", ["test"]),
        ("test-all", ["test", "--all"]),
        ("test-plugin", ["test", "tap-jsonl"]),
        ("test-plugin-test", ["test", "tap-jsonl:test"]),
        ("test-two-plugins", ["test", "tool", "tap-jsonl:test"]),
        ("test-not-a-test", ["test", "tap-jsonl:notatest"]),
        ("test-prod", ["--environment", "prod", "test", "tap-jsonl:check_prod"]),
        ("test-dev", ["test", "tap-jsonl:check_prod"]),
    ],
)
def test_strata_test_prints_what_meltano_prints(installed: Path, name: str, args: list[str]) -> None:
    """The same separator lines, the same result lines, the same summary and exit code as Meltano."""
    out, code = _meltano(name)
    done = _strata(installed, *args)
    assert (done.out, done.code) == (out, code), done.err


def test_a_failing_test_is_named_in_one_error_line(installed: Path) -> None:
    """Exit 1; the error line names every failing test; the test's own stderr passes through."""
    done = _strata(installed, "test", "--all")
    assert done.code == 1
    assert "the check failed\n" in done.err
    errors = [line for line in done.err.splitlines() if line.startswith("strata: error:")]
    assert errors == [
        (
            "strata: error: 1 of 3 tests failed: tap-jsonl:test_fail (exit code 3); "
            "run `strata invoke tap-jsonl:test_fail` to see it fail alone"
        )
    ]


def test_a_plugin_without_tests_passes_with_a_warning(installed: Path) -> None:
    """As in Meltano, nothing runs and the exit code is 0; strata says why on stderr."""
    done = _strata(installed, "test", "bare")
    assert done.code == 0
    assert (done.out, done.code) == _meltano("test-no-tests")
    assert "`bare` has no tests (commands whose name starts with `test`)" in done.err


def test_json_output_lists_each_test_with_its_outcome(installed: Path) -> None:
    done = _strata(installed, "--json", "test", "tool", "tap-jsonl")
    assert done.code == 1
    assert json.loads(done.out) == [
        {"plugin": "tap-jsonl", "test": "test", "outcome": "success", "exit_code": 0},
        {"plugin": "tap-jsonl", "test": "test_fail", "outcome": "failure", "exit_code": 3},
        {"plugin": "tool", "test": "test_ok", "outcome": "success", "exit_code": 0},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "strata: error: no plugin named `nope`"),
        (["tap-jsonl:nope"], "strata: error: `tap-jsonl` has no command `nope`; its commands: "),
        (["tap-jsonl:test:again"], "strata: error: `tap-jsonl:test:again` is not PLUGIN or PLUGIN:TEST"),
        (["tool", "bare:test"], "strata: error: `bare` defines no commands, so `bare:test` cannot run"),
    ],
)
def test_bad_input_runs_nothing_and_exits_2(installed: Path, args: list[str], message: str) -> None:
    """Unlike Meltano (a traceback after the tests before it ran), strata checks every argument first."""
    done = _strata(installed, "test", *args)
    assert (done.code, done.out) == (2, "")
    assert done.err.startswith(message), done.err
    assert done.err.count("\n") == 1


def test_config_test_passes_on_good_config(installed: Path) -> None:
    out, code = _meltano("config-test-valid")
    for args in (["config", "test", "tap-jsonl"], ["config", "tap-jsonl", "test"]):
        done = _strata(installed, *args)
        assert (done.out, done.code) == (out, code), done.err


def test_config_test_stops_the_whole_tap_after_its_first_record(installed: Path, tmp_path: Path) -> None:
    """The tap's process group is killed: a helper it left running is gone too (no orphan)."""
    pidfile = tmp_path / "helper.pid"
    tap = installed / ".strata" / "plugins" / "extractors" / "tap-jsonl" / "current" / "bin" / "tap-jsonl"
    env = {"WRAPPED_PIDFILE": str(pidfile), "WRAPPED_TAP": str(tap), "TAP_WRAPPED_API_TOKEN": "tok-very-secret"}
    done = _strata(installed, "config", "test", "tap-wrapped", env=env)
    assert (done.out, done.code) == ("Plugin configuration is valid\n", 0), done.err
    helper = int(pidfile.read_text())
    wait_for(lambda: not pid_alive(helper), "the tap's helper process to be gone", timeout=10)


def test_config_test_fails_without_a_record(installed: Path) -> None:
    """A missing file: tap-jsonl finds nothing, exits 0 without a record; Meltano's meaning, in one line."""
    meltano_detail = (EXPECTED / "config-test-no-record.err").read_text().splitlines()[1]
    assert meltano_detail.startswith("No RECORD or BATCH message received. Verify that at least one stream is selected")
    done = _strata(installed, "config", "test", "tap-jsonl", env={"TAP_JSONL_PATH": "missing.jsonl"})
    assert (done.code, done.out) == (1, "")
    assert done.err == (
        "strata: error: `tap-jsonl` configuration is invalid: it emitted no RECORD or BATCH message "
        "(exit code 0); check that at least one stream is selected (`strata select tap-jsonl --list`) "
        "and review the settings (`strata config list tap-jsonl`)\n"
    )


def test_config_test_fails_when_the_tap_fails(installed: Path) -> None:
    """A bad setting: the tap's own last line, as Meltano shows it (here it fails in discovery already)."""
    meltano_detail = (EXPECTED / "config-test-failed.err").read_text().splitlines()[1]
    assert meltano_detail == "LookupError: unknown encoding: no-such-codec"
    done = _strata(installed, "config", "test", "tap-jsonl", env={"TAP_JSONL_ENCODING": "no-such-codec"})
    assert (done.code, done.out) == (1, "")
    assert done.err.startswith("strata: error: `tap-jsonl` configuration is invalid: "), done.err
    assert meltano_detail in done.err
    assert done.err.endswith("; review the settings (`strata config list tap-jsonl`)\n")
    assert done.err.count("\n") == 1


def test_config_test_failure_shows_the_last_stderr_lines_redacted(installed: Path) -> None:
    env = {"WRAPPED_MODE": "fail", "TAP_WRAPPED_API_TOKEN": "tok-very-secret"}
    done = _strata(installed, "config", "test", "tap-wrapped", env=env)
    assert done.code == 1
    assert done.err == (
        "strata: error: `tap-wrapped` configuration is invalid: it failed with exit code 4: "
        "starting with token (redacted) / auth failed for token (redacted); "
        "review the settings (`strata config list tap-wrapped`)\n"
    )


@pytest.mark.parametrize(("plugin", "kind"), [("tool", "utility"), ("target-jsonl", "loader")])
def test_config_test_of_a_non_extractor_is_not_supported(installed: Path, plugin: str, kind: str) -> None:
    """Meltano: "Operation not supported for utility 'tool'" (exit 1); strata: the same, as bad input."""
    assert (EXPECTED / "config-test-utility.err").read_text() == "Operation not supported for utility 'tool'\n"
    done = _strata(installed, "config", "test", plugin)
    assert done.code == 2
    assert done.err == (
        f"strata: error: operation not supported for {kind} `{plugin}`: `config test` checks extractors; "
        f"run `strata config test` with an extractor\n"
    )


def test_discovery_ends_with_the_tap_and_leaves_no_helper(installed: Path, tmp_path: Path) -> None:
    """A helper the tap left holding its output does not keep discovery (or `config test`) waiting, nor outlive it."""
    pidfile = tmp_path / "helper.pid"
    tap = installed / ".strata" / "plugins" / "extractors" / "tap-jsonl" / "current" / "bin" / "tap-jsonl"
    env = {"WRAPPED_PIDFILE": str(pidfile), "WRAPPED_TAP": str(tap)}
    done = run_strata("discover", "tap-wrapped-full", cwd=installed, env=env, timeout=60)
    assert done.code == 0, done.err
    assert "1 stream discovered" in done.out
    wait_for(lambda: not pid_alive(int(pidfile.read_text())), "the helper to be gone", timeout=10)
    pidfile.unlink()
    done = _strata(installed, "config", "test", "tap-wrapped-full", env=env)
    assert (done.out, done.code) == ("Plugin configuration is valid\n", 0), done.err
    wait_for(lambda: not pid_alive(int(pidfile.read_text())), "the helper to be gone", timeout=10)


def test_config_test_is_stopped_with_its_tap_by_sigterm(installed: Path, tmp_path: Path) -> None:
    """SIGTERM to strata while the tap runs: the tap's whole group goes, strata exits 143."""
    pidfile = tmp_path / "helper.pid"
    slow = tmp_path / "slow-tap.sh"
    slow.write_text("#!/bin/sh\nsleep 300\n")
    slow.chmod(0o755)
    env = {
        **os.environ,
        "COLUMNS": "80",
        "WRAPPED_PIDFILE": str(pidfile),
        "WRAPPED_TAP": str(slow),
        "PYTHONWARNINGS": "error",
    }
    proc = subprocess.Popen(
        [*STRATA, "config", "test", "tap-wrapped"],
        cwd=installed,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(pidfile.exists, "the tap to start its helper")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    wait_for(lambda: not pid_alive(int(pidfile.read_text())), "the helper to be gone", timeout=10)


def test_test_and_config_test_are_listed_in_help(installed: Path) -> None:
    assert "test" in _strata(installed, "--help").out
    done = run_strata("config", "test", "--help", cwd=installed)
    assert done.code == 0
    assert "first RECORD" in done.out


def test_the_stored_meltano_output_is_what_meltano_prints_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``record.sh`` run again reproduces every stored file byte for byte."""
    assert recorded_by_meltano(FIXTURE, tmp_path, timeout=600) == files_under(EXPECTED)  # installs from PyPI
