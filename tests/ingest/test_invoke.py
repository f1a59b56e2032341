"""`strata invoke` as a process: signals, exit codes, start-up failures, and the plugin's environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from strata.history.model import pid_alive
from strata.ingest.invoke import run_captured
from strata.project.project import Project
from tests.helpers import STRATA, Cli, run_strata, wait_for, write_project


def plugin(root: Path, body: str, name: str = "probe", plugin_type: str = "loaders", extra: str = "") -> Path:
    """A Python plugin script at ``root/<name>`` and a project that runs it."""
    script = root / name
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)
    write_project(root, f"{extra}plugins:\n  {plugin_type}:\n    - {{name: {name}, executable: {script}}}\n")
    return script


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_reaches_the_plugin_and_the_config_file_is_still_removed(tmp_path: Path, signum: int) -> None:
    """SIGINT too: sent to strata alone (no terminal), it goes on to the plugin, which is not killed."""
    marker = tmp_path / "got-signal"
    plugin(
        tmp_path,
        f"""\
        import signal, sys, time
        def stop(signum, frame):
            open({str(marker)!r}, "w").write(str(signum))
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGHUP, stop)
        signal.signal(signal.SIGINT, stop)
        print(sys.argv[2], flush=True)
        time.sleep(60)
        """,
    )
    proc = subprocess.Popen(
        [*STRATA, "invoke", "probe"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    config_path = Path(proc.stdout.readline().strip())
    assert config_path.is_file()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 7, err
    assert marker.read_text() == str(int(signum))
    assert not config_path.exists()
    assert "Traceback" not in err


def test_a_plugin_killed_by_a_signal_gives_128_plus_the_signal(tmp_path: Path) -> None:
    plugin(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    done = run_strata("invoke", "probe", cwd=tmp_path)
    assert done.code == 128 + signal.SIGKILL
    assert not list((tmp_path / ".strata" / "run").glob("*.config.json"))


def test_stale_config_files_are_removed_at_the_next_invoke(tmp_path: Path) -> None:
    plugin(tmp_path, "pass\n")
    run = tmp_path / ".strata" / "run"
    run.mkdir(parents=True)
    stale, fresh, other = run / "probe.old.config.json", run / "probe.new.config.json", run / "notes.txt"
    for path in (stale, fresh, other):
        path.write_text("{}")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    os.utime(other, (two_days_ago, two_days_ago))
    assert run_strata("invoke", "probe", cwd=tmp_path).code == 0
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt", "probe.new.config.json"]


@pytest.mark.parametrize(
    ("shebang", "mode"),
    [(sys.executable, 0o644), ("/nonexistent/python3", 0o755)],
)
def test_a_plugin_that_cannot_start_is_one_clear_error(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shebang: str, mode: int
) -> None:
    script = plugin(tmp_path, "print('hi')\n")
    script.write_text(f"#!{shebang}\nprint('hi')\n")
    script.chmod(mode)
    monkeypatch.chdir(tmp_path)
    result = strata("invoke", "probe")
    assert result.code == 1
    assert result.err.startswith(f"strata: error: `probe` could not start {script}: ")
    assert "unexpected" not in result.err
    assert result.err.count("\n") == 1
    assert not list((tmp_path / ".strata" / "run").glob("*.config.json"))


ENV_PROBE = """\
    import json, os
    print(json.dumps({k: os.environ.get(k) for k in ("FLAG", "OFF", "NOTHING", "COUNT", "LIST", "X", "Y")}))
    """


def test_env_blocks_become_variables_the_same_way_everywhere(tmp_path: Path) -> None:
    plugin(
        tmp_path,
        ENV_PROBE,
        plugin_type="utilities",
        extra=textwrap.dedent(
            """\
            default_environment: dev
            environments:
              - name: dev
                env: {Y: from-environment}
            env: {FLAG: true, OFF: false, NOTHING: null, COUNT: 5, LIST: [1, "a"], X: from-file}
            """
        ),
    )
    done = run_strata("invoke", "probe", cwd=tmp_path, env={"X": "from-process", "Y": "from-process"})
    assert done.code == 0, done.err
    seen = json.loads(done.out)
    assert seen == {
        "FLAG": "true",
        "OFF": "false",
        "NOTHING": "",
        "COUNT": "5",
        "LIST": '[1, "a"]',
        "X": "from-process",  # the process environment beats the root env: block ...
        "Y": "from-environment",  # ... and the active environment's env: block beats both
    }
    project = Project(tmp_path, environ={**os.environ, "X": "from-process", "Y": "from-process"})
    assert {k: project.variables[k] for k in seen} == seen  # ${VAR} sees exactly what the plugin sees


def test_run_captured_feeds_stdin_and_returns_the_output(tmp_path: Path) -> None:
    plugin(
        tmp_path,
        """\
        import json, sys
        config = json.load(open(sys.argv[2]))
        print(json.dumps({"config": config, "stdin": sys.stdin.read(), "args": sys.argv[3:]}))
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """,
    )
    done = run_captured(Project(tmp_path), "probe", ["--x"], "line 1\nline 2\n")
    assert done.returncode == 3
    assert json.loads(done.stdout) == {"config": {}, "stdin": "line 1\nline 2\n", "args": ["--x"]}
    assert done.stderr == "to stderr\n"
    assert not list((tmp_path / ".strata" / "run").glob("*.config.json"))


def test_the_plugin_dies_when_strata_is_killed(tmp_path: Path) -> None:
    plugin(tmp_path, "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([*STRATA, "invoke", "probe"], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        wait_for(lambda: not pid_alive(child), "the plugin to die with strata", timeout=20)
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)
