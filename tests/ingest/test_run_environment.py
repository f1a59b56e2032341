"""Commands where the machine gets in the way: a read-only file system, a damaged system database.

The plugins are small real Singer programs (a tap that discovers and emits one stream, a target
that echoes state), so no package index is needed. Runs go through a subprocess, as in the
pipeline tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Cli, fill, remount_read_only, run_strata, tmpfs, write_project

TAP = f"""#!{sys.executable}
import json, sys
schema = {{"properties": {{"id": {{"type": "integer"}}}}}}
if "--discover" in sys.argv:
    metadata = [{{"breadcrumb": [], "metadata": {{"selected": True}}}}]
    print(json.dumps({{"streams": [{{"tap_stream_id": "s", "stream": "s", "schema": schema, "metadata": metadata}}]}}))
    sys.exit()
print(json.dumps({{"type": "SCHEMA", "stream": "s", "schema": schema, "key_properties": ["id"]}}))
print(json.dumps({{"type": "RECORD", "stream": "s", "record": {{"id": 1}}}}))
print(json.dumps({{"type": "STATE", "value": {{"done": 1}}}}))
"""

TARGET = f"""#!{sys.executable}
import sys
for line in sys.stdin:
    if '"STATE"' in line:
        print(line, end="", flush=True)
"""


def singer_project(root: Path, programs: Path) -> Path:
    """A project whose tap and target are the scripts above, written to ``programs``."""
    programs.mkdir(parents=True, exist_ok=True)
    for name, text in (("tap-s", TAP), ("target-s", TARGET)):
        (programs / name).write_text(text)
        (programs / name).chmod(0o755)
    write_project(
        root,
        f"""
        plugins:
          extractors:
            - {{name: tap-s, executable: {programs / "tap-s"}}}
          loaders:
            - {{name: target-s, executable: {programs / "target-s"}}}
        jobs: [{{name: both, tasks: [tap-s target-s]}}]
        """,
    )
    return root


@pytest.mark.parametrize("ran_before", [True, False])
def test_run_on_a_read_only_file_system_says_so_in_one_line(tmp_path: Path, ran_before: bool) -> None:
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        root = singer_project(disk / "proj", tmp_path / "bin")
        if ran_before:
            first = run_strata("run", "tap-s", "target-s", cwd=root)
            assert first.code == 0, first.err
        remount_read_only(disk)
        commands = [("run", "tap-s", "target-s"), ("el", "tap-s", "target-s"), ("config", "tap-s", "set", "a", "1")]
        for args in [*commands, ("job", "run", "both"), ("invoke", "tap-s"), ("lock",)]:
            result = run_strata(*args, cwd=root)
            assert result.code == 1, (args, result.err)
            assert "Read-only file system" in result.err
            assert "is on a read-only file system: remount it read-write, or use a writable copy" in result.err
            assert "unexpected" not in result.err
            assert result.err.count("\n") == 1


def overwrite_page_two(database: Path) -> None:
    """Scribble over the second page (the schema version table, made first): SQLite still opens the file."""
    with database.open("r+b") as handle:
        handle.seek(4096 + 10)
        handle.write(b"\xff" * 3000)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda db: db.write_bytes(b"\x13\x37" * 2048), "file is not a database"),
        (overwrite_page_two, None),  # what SQLite reads there depends on the page layout of the first run
    ],
)
def test_a_damaged_system_database_says_to_move_it_aside(
    tmp_path: Path, damage: Callable[[Path], object], reason: str | None
) -> None:
    root = singer_project(tmp_path / "proj", tmp_path / "bin")
    assert run_strata("run", "tap-s", "target-s", cwd=root).code == 0
    database = root / ".strata" / "system.db"
    assert not database.with_name("system.db-wal").exists()  # checkpointed: the pages are in the file
    damage(database)
    for args in (("run", "tap-s", "target-s"), ("runs", "list")):
        result = run_strata(*args, cwd=root)
        assert result.code == 1, result.err
        prefix = f"strata: error: the system database {database} is damaged ("
        assert result.err.startswith(prefix + (f"{reason}); " if reason else "")), (args, result.err)
        assert f"move {database} (and any system.db-wal and system.db-shm beside it) aside" in result.err
        assert result.err.count("\n") == 1
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in database.parent.glob("system.db*"):
        path.rename(aside / path.name)
    again = run_strata("run", "tap-s", "target-s", cwd=root)
    assert again.code == 0, again.err
    listed = run_strata("--json", "runs", "list", cwd=root)
    assert [r["status"] for r in json.loads(listed.out)] == ["success"]


def test_a_state_backend_on_a_read_only_file_system_says_so(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        root = singer_project(tmp_path / "proj", tmp_path / "bin")
        project_file = root / "strata.yml"
        project_file.write_text(project_file.read_text() + f"state_backend: {{uri: 'file://{disk}/state'}}\n")
        assert run_strata("run", "tap-s", "target-s", cwd=root).code == 0
        remount_read_only(disk)
        result = run_strata("run", "tap-s", "target-s", cwd=root)
        assert result.code == 1
        assert result.err.startswith("strata: error: cannot lock state `default:tap-s-to-target-s` in ")
        assert "Read-only file system; " in result.err
        assert "is on a read-only file system: remount it read-write, or use a writable copy" in result.err
        assert result.err.count("\n") == 1


def test_the_run_line_counts_in_words(tmp_path: Path) -> None:
    root = singer_project(tmp_path / "proj", tmp_path / "bin")
    done = run_strata("run", "tap-s", "target-s", cwd=root)
    assert done.code == 0, done.err
    assert ": 0 records (no record counts reported) in " in done.out
    assert " s, 1 state stored, run " in done.out


def test_any_command_on_a_read_only_file_system_says_what_to_do(strata: Cli, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        remount_read_only(disk)
        for args in (("init", str(disk / "new")), ("demo", "--dir", str(disk / "demo"))):
            result = strata(*args)
            assert result.code == 1, result.err
            assert result.err == (
                f"strata: error: {disk / args[-1].rsplit('/', 1)[-1]}: Read-only file system; "
                f"{disk} is on a read-only file system: remount it read-write, or use a writable copy\n"
            )


@pytest.mark.parametrize("args", [("invoke", "tap-s"), ("run", "tap-s", "target-s")])
def test_a_full_disk_while_a_plugins_config_is_written_says_what_to_do(tmp_path: Path, args: tuple[str, ...]) -> None:
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        root = singer_project(disk / "proj", tmp_path / "bin")
        (root / "strata.yml").write_text(
            (root / "strata.yml").read_text().replace("name: tap-s,", f"name: tap-s, config: {{pad: {'x' * 8192}}},")
        )
        assert run_strata("run", "tap-s", "target-s", cwd=root).code == 0  # .strata/ and its files exist
        fill(disk)
        result = run_strata(*args, cwd=root)
        assert result.code == 1, result.err
        assert "No space left on device; free some space on the file system of " in result.err, result.err
        assert "unexpected" not in result.err
        assert "--debug" not in result.err
        assert result.err.count("\n") == 1, result.err
        assert not list((root / ".strata" / "run").iterdir())


FILLING_TAP = f"""#!{sys.executable}
import json, sys
with open("filler", "wb") as handle:  # the run's own disk fills up under it
    try:
        while True:
            handle.write(b"\\0" * 4096)
            handle.flush()
    except OSError:
        pass
for i in range(2000):  # more than a pipe holds: nobody reading them would block the tap
    print(f"tap line {{i}} " + "." * 100, file=sys.stderr, flush=True)
schema = {{"properties": {{"id": {{"type": "integer"}}}}}}
print(json.dumps({{"type": "SCHEMA", "stream": "s", "schema": schema, "key_properties": ["id"]}}))
print(json.dumps({{"type": "STATE", "value": {{"done": 1}}}}))
"""


@pytest.mark.parametrize("ran_before", [True, False])
def test_a_disk_that_fills_up_during_a_run_fails_it_in_one_line(tmp_path: Path, ran_before: bool) -> None:
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        root = singer_project(disk / "proj", tmp_path / "bin")
        if ran_before:  # the history exists: the run log (or, if the tap is quick, the run's row) cannot be written
            assert run_strata("run", "tap-s", "target-s", cwd=root).code == 0
        (tmp_path / "bin" / "tap-s").write_text(FILLING_TAP)
        (tmp_path / "bin" / "catalog.json").write_text('{"streams": []}')
        (root / "strata.yml").write_text(
            (root / "strata.yml")
            .read_text()
            .replace("name: tap-s,", f"name: tap-s, catalog: {tmp_path}/bin/catalog.json,")
        )
        result = run_strata("run", "tap-s", "target-s", cwd=root, timeout=20)  # no retrying what waiting won't fix
        assert result.code == 1, result.err
        assert "Exception in thread" not in result.err
        assert "Traceback" not in result.err
        assert result.err.count("\n") == 1, result.err
        assert "; free some space on the file system of " in result.err, result.err  # the log, state or history
        if ran_before:
            # The plugins start before the run is recorded, so on a loaded machine the tap may fill
            # the disk before the run's row is written: then the history is what cannot be written.
            first = ("strata: error: cannot write the run log ", "strata: error: the system database ")
            assert result.err.startswith(first), result.err
