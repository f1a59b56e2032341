"""Secrets a plugin prints never reach the run log, the error line or the run history; those are owner-only."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

from tests.helpers import STRATA, Result, run_strata, wait_for, write_project
from tests.ingest.scripted import scripted_project

PASSWORD = "s3cr3t/p@ss wörd"
"""Characters that URLs and JSON escape, so its encoded forms differ from it."""

LEAKY_TARGET = """\
from urllib.parse import quote
print("target started", file=sys.stderr)
password = config["password"]
print(f"cannot connect to postgresql://me:{quote(password, safe='')}@db/x", file=sys.stderr)
print(json.dumps({"config": {"password": password}}), file=sys.stderr)
print(f"login failed with password {password}", file=sys.stderr, flush=True)
sys.exit(3)
"""


def forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), json.dumps(secret)[1:-1], "p@ss"]


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """``strata`` in a subprocess with the usual umask (022), as a user's shell starts it."""
    done = subprocess.run(
        [*STRATA, *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        umask=0o022,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def test_a_password_the_target_prints_is_redacted_everywhere_it_is_stored_or_shown(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    scripted_project(root, secret_lines=LEAKY_TARGET)
    env = {"TARGET_ECHO_PASSWORD": PASSWORD, "TAP_SLOW_PASSWORD": "ta"}  # too short to be redacted
    done = run(root, "run", "tap-slow", "target-echo", env=env)
    assert done.code == 1, done.err
    assert done.err.count("\n") == 1
    assert "loader `target-echo` failed with exit code 3" in done.err
    assert "login failed with password (redacted)" in done.err

    [listed] = run(root, "--json", "runs", "list").json()
    log = Path(listed["log_path"]).read_text()
    assert "target-echo | login failed with password (redacted)" in log
    assert "target-echo | target started" in log  # a short secret ("ta") does not shred the output
    with Path(listed["log_path"]).open("a") as older:  # as a strata that did not redact would have written it
        older.write(f"target-echo | retrying with password {PASSWORD}\n")
    shown = run(root, "runs", "show", listed["run_id"], env=env)
    shown_json = run(root, "--json", "runs", "show", listed["run_id"], env=env)
    assert "retrying with password (redacted)" in shown.out
    stored = b"".join(p.read_bytes() for p in (root / ".strata").glob("system.db*"))
    for form in forms(PASSWORD):
        for where, text in [("error", done.err), ("log", log), ("show", shown.out), ("show --json", shown_json.out)]:
            assert form not in text, (where, form)
        assert form.encode() not in stored, form


def test_a_password_in_a_failed_discovery_is_redacted_as_are_secret_named_env_entries(tmp_path: Path) -> None:
    script = tmp_path / "tap-leaky"
    script.write_text(
        '#!/bin/sh\necho "password $TAP_LEAKY_PASSWORD rejected, and PGPASSWORD $PGPASSWORD too" >&2\nexit 2\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    write_project(
        tmp_path,
        f"""
        plugins:
          extractors:
            - name: tap-leaky
              executable: {script}
              settings: [{{name: password, kind: password}}]
              env: {{PGPASSWORD: "${{DB_PASSWORD}}"}}
          loaders:
            - {{name: target-x, executable: /bin/cat}}
        """,
    )
    env = {"TAP_LEAKY_PASSWORD": PASSWORD, "DB_PASSWORD": "pg-secret-value"}
    done = run_strata("run", "tap-leaky", "target-x", cwd=tmp_path, env=env)
    assert done.code == 1
    assert "password (redacted) rejected, and PGPASSWORD (redacted) too" in done.err
    assert PASSWORD not in done.err
    assert "pg-secret-value" not in done.err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_system_database_and_the_run_logs_are_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    scripted_project(root, ticks=3, pause=0)
    system = root / ".strata"
    for opener in ("SQLAlchemy creates the database", "sqlite3 writes the existing one"):
        done = run(root, "run", "tap-slow", "target-echo")
        assert done.code == 0, (opener, done.err)
        databases = list(system.glob("system.db*"))
        assert system / "system.db" in databases
        assert {p.name: mode(p) for p in databases} == {p.name: 0o600 for p in databases}, opener
        assert mode(system / "logs") == 0o700, opener
        assert mode(system / "logs" / "runs") == 0o700, opener
        logs = list((system / "logs" / "runs").iterdir())
        assert logs
        assert {p.name: mode(p) for p in logs} == {p.name: 0o600 for p in logs}, opener
        for path in (*databases, system / "logs", system / "logs" / "runs"):  # made wider by hand: narrowed again
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_the_write_ahead_log_of_a_running_run_is_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    scripted_project(root)
    system = root / ".strata"
    for opener in ("SQLAlchemy creates the database", "sqlite3 writes the existing one"):
        proc = subprocess.Popen(
            [*STRATA, "run", "tap-slow", "target-echo"],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
            umask=0o022,
            start_new_session=True,
        )
        try:
            companions = [system / "system.db-wal", system / "system.db-shm"]
            wait_for(lambda: all(p.exists() for p in companions), "the run writing its history")  # noqa: B023
            assert {p.name: mode(p) for p in companions} == {p.name: 0o600 for p in companions}, opener
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
