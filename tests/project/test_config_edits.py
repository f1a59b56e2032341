"""`strata config set | unset`: what they write, where, and what they refuse."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from strata.project.project import Project
from strata.project.settings import resolve
from tests.helpers import Cli, fill, snapshot, tmpfs, write_project
from tests.project.test_config import LAYERED


@pytest.fixture
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(
        tmp_path,
        LAYERED.replace("{name: password, kind: password}", "{name: password, kind: password, env: DB_PASSWORD}"),
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_unset_on_an_inherited_plugin_keeps_the_parents_variables(strata: Cli, layered: Path) -> None:
    dotenv = layered / ".env"
    dotenv.write_text("TAP_DB_PORT=1\nTAP_DB__EU_PORT=2\nDB_PASSWORD=pw\nTAP_DB__EU_PASSWORD=pw2\n")
    result = strata("config", "tap-db--eu", "unset", "port")
    assert result.code == 0
    assert ".env (TAP_DB__EU_PORT)" in result.out
    assert strata("config", "tap-db--eu", "unset", "password").code == 0
    assert dotenv.read_text().splitlines() == ["TAP_DB_PORT=1", "DB_PASSWORD=pw"]
    # the parent's own unset still clears its own variables
    assert strata("config", "tap-db", "unset", "password").code == 0
    assert dotenv.read_text().splitlines() == ["TAP_DB_PORT=1"]


def test_a_secret_that_cannot_be_written_changes_nothing(strata: Cli, project: Path) -> None:
    assert strata("add", "loader", "target-x", "--executable", "x").code == 0
    (project / ".env").mkdir()
    before = snapshot(project)
    result = strata("config", "target-x", "set", "api_token", "tok-1")
    assert result.code == 1
    assert result.err.startswith("strata: error: cannot write .env")
    assert result.err.count("\n") == 1
    assert "unexpected" not in result.err
    assert "tok-1" not in result.err
    assert snapshot(project) == before


def test_an_existing_world_readable_dotenv_becomes_owner_only(strata: Cli, project: Path) -> None:
    assert strata("add", "loader", "target-x", "--executable", "x").code == 0
    dotenv = project / ".env"
    dotenv.write_text("OTHER=1\n")
    dotenv.chmod(0o644)
    assert strata("config", "target-x", "set", "password", "pw-1").code == 0
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    assert dotenv.read_text() == "OTHER=1\nTARGET_X_PASSWORD='pw-1'\n"


def test_a_dotted_key_never_replaces_a_scalar(strata: Cli, project: Path) -> None:
    assert strata("add", "loader", "target-x", "--executable", "x").code == 0
    assert strata("config", "target-x", "set", "batch", "5").code == 0
    before = snapshot(project)
    for args in (("set", "batch.size", "10"), ("set", "batch.size.max", "10")):
        result = strata("config", "target-x", *args)
        assert result.code == 2
        assert "`batch` is set to a value that is not a mapping, so `batch.size" in result.err
        assert result.err.count("\n") == 1
    assert snapshot(project) == before
    assert resolve(Project(project), "target-x").config() == {"batch": 5}


def test_a_write_shadowed_by_a_higher_layer_warns_and_names_it(
    strata: Cli, layered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadowed = strata("config", "tap-db", "set", "host", "new.example")
    assert shadowed.code == 0
    assert "tap-db: host=new.example stored in strata.yml" in shadowed.out
    assert shadowed.err.count("\n") == 1
    assert "strata: warning: tap-db: `host` is also set in environment dev (strata.yml:8), which wins" in shadowed.err
    assert resolve(Project(layered, environment="prod"), "tap-db").values["host"].value == "new.example"
    unset = strata("config", "tap-db", "unset", "host")
    assert unset.code == 0
    assert "strata: warning: tap-db: `host` is also set in environment dev (strata.yml:8), which wins" in unset.err
    (layered / ".env").write_text("TAP_DB_USER=from-dotenv\n")
    in_env = strata("-e", "dev", "config", "tap-db", "set", "user", "u")
    assert "`user` is also set in .env (TAP_DB_USER), which wins" in in_env.err
    monkeypatch.setenv("TAP_DB_PASSWORD", "from-process")  # the setting's env: DB_PASSWORD is not read (Meltano 4)
    secret = strata("config", "tap-db", "set", "password", "pw-2")
    assert secret.code == 0
    assert "`password` is also set in env (TAP_DB_PASSWORD), which wins" in secret.err
    assert "pw-2" not in secret.out + secret.err
    assert "from-process" not in secret.out + secret.err
    quiet = strata("config", "tap-db", "set", "port", "7")
    assert quiet.code == 0
    assert quiet.err == ""


def test_a_full_disk_leaves_no_temporary_file_and_says_so(strata: Cli, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        root = disk / "proj"
        assert strata("init", str(root)).code == 0
        assert strata("-C", str(root), "add", "loader", "target-x", "--executable", "x").code == 0
        (root / ".env").write_text("OTHER=1\n")
        fill(disk)
        before = snapshot(root)
        for key, value in (("api_token", "tok-full"), ("host", "h" * 8192)):
            result = strata("-C", str(root), "config", "target-x", "set", key, value)
            assert result.code == 1, result.err
            assert result.err.startswith("strata: error: cannot write ")
            assert ": No space left on device; free some space on the file system of" in result.err
            assert result.err.count("\n") == 1
            assert "tok-full" not in result.err
            assert snapshot(root) == before
            assert sorted(p.name for p in root.iterdir()) == [".env", ".gitignore", ".strata", "strata.yml"]


def test_a_symlinked_dotenv_and_project_file_are_written_through(strata: Cli, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert strata("init", str(root)).code == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "secrets.env").write_text("OTHER=1\n")
    (root / ".env").symlink_to(shared / "secrets.env")
    (root / "strata.yml").rename(shared / "strata.yml")
    (root / "strata.yml").symlink_to(shared / "strata.yml")
    assert strata("-C", str(root), "add", "loader", "target-x", "--executable", "x").code == 0
    assert strata("-C", str(root), "config", "target-x", "set", "api_token", "tok-1").code == 0
    assert strata("-C", str(root), "config", "target-x", "set", "api_token", "it's \\ 2").code == 0
    assert (root / ".env").is_symlink()
    assert (root / "strata.yml").is_symlink()
    assert (shared / "secrets.env").read_text() == "OTHER=1\nTARGET_X_API_TOKEN='it\\'s \\\\ 2'\n"
    assert stat.S_IMODE((shared / "secrets.env").stat().st_mode) == 0o600
    assert "target-x" in (shared / "strata.yml").read_text()
    assert resolve(Project(root), "target-x").values["api_token"].value == "it's \\ 2"
    assert strata("-C", str(root), "config", "target-x", "unset", "api_token").code == 0
    assert (root / ".env").is_symlink()
    assert (shared / "secrets.env").read_text() == "OTHER=1\n"
