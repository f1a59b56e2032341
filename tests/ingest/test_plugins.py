"""Plugins for real: installed from PyPI into their own venvs, locked, invoked with their config."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from strata.ingest import venv
from strata.project.project import Project
from tests.helpers import Cli, run_strata, snapshot, write_project

pytestmark = pytest.mark.network

JSONL = "target-jsonl==0.1.4"
CSV = "meltanolabs-target-csv==0.5.0"


def singer(rows: int, stream: str = "users") -> str:
    lines = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
            "key_properties": ["id"],
        },
        *({"type": "RECORD", "stream": stream, "record": {"id": i, "name": f"n{i}"}} for i in range(rows)),
        {"type": "STATE", "value": {"bookmarks": {stream: {"id": rows - 1}}}},
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project with target-jsonl and target-csv installed, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("installed") / "proj"
    assert run_strata("init", str(root), cwd=root.parent).code == 0
    for name, pip_url in (("target-jsonl", JSONL), ("target-csv", CSV)):
        done = run_strata("add", "loader", name, "--pip-url", pip_url, "--no-install", cwd=root)
        assert done.code == 0, done.err
    done = run_strata("install", cwd=root)
    assert done.code == 0, done.err
    return root


def test_install_builds_one_venv_per_plugin_and_is_idempotent(installed: Path) -> None:
    project = Project(installed)
    homes = {}
    for name in ("target-jsonl", "target-csv"):
        env = venv.plugin_env(project, project.plugin(name))
        assert env.is_installed
        assert env.executable_path().is_file()
        homes[name] = env.current.resolve()
    assert homes["target-jsonl"] != homes["target-csv"]
    again = run_strata("--json", "install", cwd=installed)
    assert again.code == 0
    assert {r["name"]: r["status"] for r in again.json()} == {"target-jsonl": "up to date", "target-csv": "up to date"}
    assert {n: venv.plugin_env(project, project.plugin(n)).current.resolve() for n in homes} == homes


def test_invoke_target_jsonl_with_resolved_config(installed: Path) -> None:
    out = installed / "out-jsonl"
    out.mkdir()
    assert run_strata("config", "target-jsonl", "set", "destination_path", str(out), cwd=installed).code == 0
    done = run_strata("invoke", "target-jsonl", cwd=installed, stdin=singer(25))
    assert done.code == 0, done.err
    rows = [json.loads(line) for line in next(out.glob("users*.jsonl")).read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(25))
    assert json.loads(done.out.strip().splitlines()[-1]) == {"bookmarks": {"users": {"id": 24}}}
    assert not list((installed / ".strata" / "run").iterdir())  # the config file is gone


def test_invoke_meltanolabs_target_csv(installed: Path) -> None:
    out = installed / "out-csv"
    assert run_strata("config", "target-csv", "set", "output_path", str(out), cwd=installed).code == 0
    done = run_strata("invoke", "target-csv", cwd=installed, stdin=singer(10, "orders"))
    assert done.code == 0, done.err
    lines = (out / "orders.csv").read_text().splitlines()
    assert lines[0].split(",") == ["id", "name"]
    assert len(lines) == 11


def test_config_file_is_owner_only_and_removed(tmp_path: Path) -> None:
    script = tmp_path / "probe-plugin"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, os, stat, sys
            path = sys.argv[sys.argv.index("--config") + 1]
            print(json.dumps({{"mode": stat.S_IMODE(os.stat(path).st_mode), "config": json.load(open(path)),
                              "path": path, "args": sys.argv[3:], "root": os.environ["STRATA_PROJECT_ROOT"],
                              "env_var": os.environ.get("PROBE_PLUGIN_TOKEN")}}))
            sys.exit(3)
            """
        )
    )
    script.chmod(0o755)
    write_project(
        tmp_path,
        f"""
        plugins:
          loaders:
            - name: probe-plugin
              executable: {script}
              config: {{token: abc, nested: {{a: 1}}}}
        """,
    )
    done = run_strata("invoke", "probe-plugin", "--about", "x", cwd=tmp_path)
    assert done.code == 3  # the plugin's exit code comes back
    seen = json.loads(done.out)
    assert seen["mode"] == 0o600
    assert seen["config"] == {"token": "abc", "nested": {"a": 1}}
    assert seen["args"] == ["--about", "x"]
    assert seen["root"] == str(tmp_path.resolve())
    assert seen["env_var"] == "abc"
    assert not Path(seen["path"]).exists()


def test_add_with_a_pip_url_that_does_not_resolve_changes_nothing(tmp_path: Path) -> None:
    assert run_strata("init", str(tmp_path / "p"), cwd=tmp_path).code == 0
    root = tmp_path / "p"
    before = snapshot(root)
    done = run_strata("add", "extractor", "tap-nope", "--pip-url", "strata-no-such-package-xyz==1.0", cwd=root)
    assert done.code == 1
    assert "could not install `tap-nope` from `strata-no-such-package-xyz==1.0`" in done.err
    assert "strata-no-such-package-xyz" in done.err
    assert done.err.count("\n") == 1
    assert snapshot(root) == before
    assert not (root / ".strata" / "plugins" / "extractors" / "tap-nope").exists()


def test_one_failed_install_leaves_the_others_installed(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        f"""
        plugins:
          loaders:
            - {{name: target-jsonl, pip_url: "{JSONL}"}}
            - {{name: target-bad, pip_url: "strata-no-such-package-xyz==1.0"}}
        """,
    )
    done = run_strata("install", cwd=tmp_path)
    assert done.code == 1
    assert "1 of 2 plugins failed to install: target-bad" in done.err
    assert "target-bad: failed: could not install `target-bad`" in done.err
    project = Project(tmp_path)
    assert venv.plugin_env(project, project.plugin("target-jsonl")).is_installed
    assert not venv.plugin_env(project, project.plugin("target-bad")).is_installed


def test_failed_reinstall_keeps_the_working_venv(tmp_path: Path) -> None:
    path = write_project(tmp_path, f'plugins:\n  loaders:\n    - {{name: target-jsonl, pip_url: "{JSONL}"}}\n')
    assert run_strata("install", cwd=tmp_path).code == 0
    project = Project(tmp_path)
    working = venv.plugin_env(project, project.plugin("target-jsonl")).current.resolve()
    path.write_text(path.read_text().replace(JSONL, "target-jsonl==99.0.0"))
    assert run_strata("install", cwd=tmp_path).code == 1
    project = Project(tmp_path)
    env = venv.plugin_env(project, project.plugin("target-jsonl"))
    assert env.current.resolve() == working
    out = tmp_path / "out"
    out.mkdir()
    assert run_strata("config", "target-jsonl", "set", "destination_path", str(out), cwd=tmp_path).code == 0
    done = run_strata("invoke", "target-jsonl", cwd=tmp_path, stdin=singer(2))
    assert done.code == 0, done.err  # the old venv still runs, not just exists
    assert len(next(out.glob("users*.jsonl")).read_text().splitlines()) == 2


def test_lock_records_exact_versions_and_install_honours_them(tmp_path: Path) -> None:
    write_project(tmp_path, f'plugins:\n  loaders:\n    - {{name: target-jsonl, pip_url: "{JSONL}"}}\n')
    done = run_strata("lock", cwd=tmp_path)
    assert done.code == 0, done.err
    lock = json.loads((tmp_path / "strata.lock").read_text())
    entry = lock["plugins"]["target-jsonl"]
    assert entry["pip_url"] == JSONL
    assert "target-jsonl==0.1.4" in entry["requirements"]
    assert all("==" in req for req in entry["requirements"])
    # pin one dependency to another version: install must follow the lock, not the resolver
    entry["requirements"] = [r for r in entry["requirements"] if not r.startswith("python-dateutil==")]
    entry["requirements"].append("python-dateutil==2.8.2")
    (tmp_path / "strata.lock").write_text(json.dumps(lock))
    done = run_strata("--json", "install", cwd=tmp_path)
    assert done.code == 0, done.err
    assert done.json()[0]["status"] == "installed"
    project = Project(tmp_path)
    assert "python-dateutil==2.8.2" in venv.freeze(venv.plugin_env(project, project.plugin("target-jsonl")))


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    write_project(
        tmp_path, f'plugins:\n  loaders:\n    - {{name: target-jsonl, pip_url: "{JSONL}", executable: target-nope}}\n'
    )
    not_installed = run_strata("invoke", "target-jsonl", cwd=tmp_path)
    assert not_installed.code == 1
    assert "`target-jsonl` is not installed; run `strata install target-jsonl`" in not_installed.err
    assert run_strata("install", cwd=tmp_path).code == 0
    missing = run_strata("invoke", "target-jsonl", cwd=tmp_path)
    assert missing.code == 1
    assert "has no executable `target-nope` in its environment (found: " in missing.err
    assert "target-jsonl" in missing.err.split("found:")[1]
    off_path = write_project(tmp_path / "b", "plugins:\n  loaders:\n    - {name: target-ghost}\n")
    ghost = run_strata("invoke", "target-ghost", cwd=off_path.parent)
    assert ghost.code == 1
    assert "its executable `target-ghost` is not on PATH" in ghost.err


def test_inherited_plugin_shares_the_parent_venv_and_remove_cleans_up(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, f'plugins:\n  loaders:\n    - {{name: target-jsonl, pip_url: "{JSONL}"}}\n')
    monkeypatch.chdir(tmp_path)
    assert strata("install").code == 0
    added = strata("add", "loader", "target-jsonl--b", "--inherit-from", "target-jsonl")
    assert added.code == 0, added.err
    out = tmp_path / "b-out"
    out.mkdir()
    assert strata("config", "target-jsonl--b", "set", "destination_path", str(out)).code == 0
    done = run_strata("invoke", "target-jsonl--b", cwd=tmp_path, stdin=singer(3))
    assert done.code == 0, done.err
    assert len(next(out.glob("users*.jsonl")).read_text().splitlines()) == 3
    assert sorted(p.name for p in (tmp_path / ".strata" / "plugins" / "loaders").iterdir()) == ["target-jsonl"]
    refused = strata("remove", "target-jsonl")
    assert refused.code == 2
    assert "target-jsonl--b inherit from `target-jsonl`" in refused.err
    assert strata("remove", "target-jsonl--b", "target-jsonl").code == 0
    assert list(Project(tmp_path).plugins()) == []
    assert not (tmp_path / ".strata" / "plugins" / "loaders" / "target-jsonl").exists()


def test_meltano_project_installs_and_invokes_unchanged(tmp_path: Path) -> None:
    fixture = Path(__file__).parent.parent / "fixtures" / "meltano-project" / "meltano.yml"
    shutil.copy(fixture, tmp_path / "meltano.yml")
    done = run_strata("install", "target-jsonl", cwd=tmp_path)
    assert done.code == 0, done.err
    listed = run_strata("--json", "config", "target-jsonl", "list", cwd=tmp_path).json()
    by_name = {row["name"]: row for row in listed}
    assert by_name["destination_path"]["value"] == f"{tmp_path.resolve()}/output"
    assert by_name["do_timestamp_file"]["source"] == "environment dev"
    (tmp_path / "output").mkdir()
    done = run_strata("invoke", "target-jsonl", cwd=tmp_path, stdin=singer(5, "animals"))
    assert done.code == 0, done.err
    assert len((tmp_path / "output" / "animals.jsonl").read_text().splitlines()) == 5


def test_plugin_names_cannot_escape_the_plugins_directory(strata: Cli, project: Path) -> None:
    before = snapshot(project)
    for name in ("../evil", "a/b", ".hidden", "-x"):
        result = strata("add", "loader", "--executable", "x", "--", name)
        assert result.code == 2, name
        assert "is not a valid plugin name" in result.err
    assert snapshot(project) == before


def test_secret_config_reaches_the_plugin_but_not_the_terminal(tmp_path: Path) -> None:
    script = tmp_path / "echo-config"
    script.write_text(
        f"#!{sys.executable}\nimport sys, json\nprint(json.load(open(sys.argv[2]))['password'] == 'pw-123')\n"
    )
    script.chmod(0o755)
    write_project(
        tmp_path,
        f"plugins:\n  extractors:\n    - {{name: tap-echo, executable: {script}, settings: [{{name: password, kind: password}}]}}\n",
    )
    env = {"TAP_ECHO_PASSWORD": "pw-123"}
    assert run_strata("invoke", "tap-echo", cwd=tmp_path, env=env).out.strip() == "True"
    listed = run_strata("config", "tap-echo", "list", cwd=tmp_path, env=env)
    assert "pw-123" not in listed.out
    assert os.environ.get("TAP_ECHO_PASSWORD") is None
    assert stat.S_IMODE((tmp_path / ".strata" / "run").stat().st_mode) & 0o077 == 0


def test_json_logs_and_credentials_in_pip_url_are_never_shown(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        'plugins:\n  loaders:\n    - {name: target-git, pip_url: "git+https://user:tok3n@127.0.0.1:9/x.git"}\n',
    )
    done = run_strata("--log-format", "json", "--log-level", "debug", "install", cwd=tmp_path)
    assert done.code == 1
    assert "tok3n" not in done.out + done.err
    events = [json.loads(line) for line in done.err.splitlines() if line.startswith("{")]
    installing = next(e for e in events if e["event"] == "installing plugin")
    assert installing["plugin"] == "target-git"
    assert installing["pip_url"] == "git+https://***@127.0.0.1:9/x.git"
    assert installing["level"] == "debug"
