"""Plugin venvs under stress: failed clean rebuilds, concurrent installs, locks without secrets, paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from strata.errors import UsageError
from strata.ingest import venv
from strata.project.files import ensure_inside
from strata.project.project import Project
from tests.helpers import STRATA, Cli, run_strata, write_project
from tests.ingest.test_plugins import JSONL, singer

ONE = f'plugins:\n  loaders:\n    - {{name: target-jsonl, pip_url: "{JSONL}", config: {{destination_path: out}}}}\n'


def plugin_still_works(root: Path, rows: int = 3) -> None:
    """The venv behind ``current`` really runs: load a few records through it."""
    out = root / "out"
    out.mkdir(exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    done = run_strata("invoke", "target-jsonl", cwd=root, stdin=singer(rows))
    assert done.code == 0, done.err
    assert len(next(out.glob("users*.jsonl")).read_text().splitlines()) == rows


@pytest.mark.network
def test_a_failed_clean_reinstall_keeps_the_working_venv(tmp_path: Path) -> None:
    write_project(tmp_path, ONE)
    assert run_strata("install", cwd=tmp_path).code == 0
    project = Project(tmp_path)
    working = venv.plugin_env(project, project.plugin("target-jsonl")).current.resolve()
    offline = {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-cache")}
    failed = run_strata("install", "--clean", "target-jsonl", cwd=tmp_path, env=offline)
    assert failed.code == 1
    assert "could not install `target-jsonl`" in failed.err
    assert venv.plugin_env(project, project.plugin("target-jsonl")).current.resolve() == working
    plugin_still_works(tmp_path)
    home = tmp_path / ".strata" / "plugins" / "loaders" / "target-jsonl"
    assert [p.name for p in home.glob("v-*")] == [working.name]


@pytest.mark.network
def test_concurrent_installs_of_one_plugin_do_not_break_each_other(tmp_path: Path) -> None:
    write_project(tmp_path, ONE)
    runs = [
        subprocess.Popen(
            [*STRATA, "install", *flags], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for flags in (["--clean"], ["--clean"], [], ["--clean"])
    ]
    results = [(run.wait(), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    plugin_still_works(tmp_path)
    home = tmp_path / ".strata" / "plugins" / "loaders" / "target-jsonl"
    assert len(list(home.glob("v-*"))) == 1
    assert not list(home.glob(".current-*"))


@pytest.mark.network
def test_the_lock_records_pip_url_as_written_never_expanded(tmp_path: Path) -> None:
    write_project(
        tmp_path, 'plugins:\n  loaders:\n    - {name: target-jsonl, pip_url: "target-jsonl==${JSONL_VERSION}"}\n'
    )
    (tmp_path / ".env").write_text("JSONL_VERSION=0.1.4\n")
    done = run_strata("lock", cwd=tmp_path)
    assert done.code == 0, done.err
    entry = json.loads((tmp_path / "strata.lock").read_text())["plugins"]["target-jsonl"]
    assert entry["pip_url"] == "target-jsonl==${JSONL_VERSION}"
    assert "target-jsonl==0.1.4" in entry["requirements"]
    for status in ("installed", "up to date"):  # rebuilt once from the lock, which matches the pip_url as written
        again = run_strata("--json", "install", cwd=tmp_path)
        assert again.code == 0, again.err
        assert again.json()[0]["status"] == status


@pytest.mark.network
def test_install_clean_recreates_the_venv(tmp_path: Path) -> None:
    """Meltano's `install --clean`: the venv is made anew even when it is up to date."""
    write_project(tmp_path, ONE)
    assert run_strata("install", cwd=tmp_path).code == 0
    project = Project(tmp_path)
    first = venv.plugin_env(project, project.plugin("target-jsonl")).current.resolve()
    planted = first / "planted-by-the-test"
    planted.write_text("x")
    again = run_strata("--json", "install", "target-jsonl", cwd=tmp_path)
    assert again.json()[0]["status"] == "up to date"
    assert planted.exists()
    clean = run_strata("--json", "install", "--clean", "target-jsonl", cwd=tmp_path)
    assert clean.code == 0, clean.err
    assert clean.json()[0]["status"] == "installed"
    current = venv.plugin_env(project, project.plugin("target-jsonl")).current.resolve()
    assert current != first
    assert not first.exists()
    assert not (current / "planted-by-the-test").exists()
    plugin_still_works(tmp_path)


@pytest.mark.network
def test_lock_update_resolves_the_pip_url_again(tmp_path: Path) -> None:
    """`lock --update` ignores the plugin's entry in strata.lock, installs it afresh and records what it got."""
    write_project(tmp_path, ONE)
    assert run_strata("lock", cwd=tmp_path).code == 0
    lock_file = tmp_path / "strata.lock"
    good = json.loads(lock_file.read_text())
    stale = json.loads(lock_file.read_text())
    stale["plugins"]["target-jsonl"]["requirements"].append("no-such-package-for-strata-tests==1.0")
    lock_file.write_text(json.dumps(stale))
    kept = run_strata("lock", cwd=tmp_path)  # without --update the lock is honoured, so the bad pin fails
    assert kept.code == 1
    assert json.loads(lock_file.read_text()) == stale
    done = run_strata("lock", "--update", cwd=tmp_path)
    assert done.code == 0, done.err
    assert json.loads(lock_file.read_text()) == good
    assert run_strata("--json", "install", cwd=tmp_path).json()[0]["status"] in {"installed", "up to date"}
    plugin_still_works(tmp_path)


def test_lock_update_of_an_unknown_plugin_is_one_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, ONE)
    monkeypatch.chdir(tmp_path)
    done = strata("lock", "--update", "nope")
    assert done.code == 2
    assert done.err.count("\n") == 1
    assert not (tmp_path / "strata.lock").exists()


def test_frozen_requirements_keep_no_credentials(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        'plugins:\n  loaders:\n    - {name: t, pip_url: "git+https://${GH_USER}:${GH_TOKEN}@git.example/t.git"}\n',
    )
    project = Project(tmp_path, environ={"GH_USER": "bob", "GH_TOKEN": "ghp-secret"})
    env = venv.plugin_env(project, project.plugin("t"))
    frozen = [
        "t @ git+https://bob:ghp-secret@git.example/t.git@0123abcd",
        "other @ git+https://alice:pw-2@elsewhere.example/o.git@4567",
        "plain==1.0",
    ]
    assert venv.scrub_requirements(frozen, env) == [
        "t @ git+https://${GH_USER}:${GH_TOKEN}@git.example/t.git@0123abcd",
        "other @ git+https://***@elsewhere.example/o.git@4567",
        "plain==1.0",
    ]


def test_a_relative_executable_starts_at_the_project_root(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bin" / "probe"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nprint('probe ran')\n")
    script.chmod(0o755)
    write_project(
        tmp_path,
        "plugins:\n  utilities:\n    - {name: probe, executable: bin/probe}\n    - {name: ghost, executable: bin/ghost}\n",
    )
    (tmp_path / "deeper").mkdir()
    ran = run_strata("invoke", "probe", cwd=tmp_path / "deeper")
    assert ran.code == 0, ran.err
    assert ran.out == "probe ran\n"
    monkeypatch.chdir(tmp_path / "deeper")
    ghost = strata("invoke", "ghost")
    assert ghost.code == 1
    assert f"the executable of `ghost`, {tmp_path.resolve() / 'bin' / 'ghost'}, does not exist" in ghost.err
    assert "PATH" not in ghost.err


def test_nothing_outside_the_system_directory_is_ever_touched(tmp_path: Path) -> None:
    write_project(tmp_path, "version: 1\n")
    project = Project(tmp_path)
    for outside in (tmp_path, tmp_path / ".strata", tmp_path / ".strata" / ".." / "x", tmp_path.parent):
        with pytest.raises(UsageError, match="is not inside"):
            ensure_inside(outside, project.system_dir)
        with pytest.raises(UsageError, match="is not inside"):
            venv.uninstall(project, outside)
    assert (tmp_path / "strata.yml").is_file()
    inside = tmp_path / ".strata" / "plugins" / "loaders" / "x"
    assert ensure_inside(inside, project.system_dir) == inside
