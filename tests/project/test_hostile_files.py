"""Project files that are hostile or damaged: alias bombs, foreign tags, bytes that are not UTF-8.

Each is refused with one line that names the file, before anything else happens; ordinary
anchors and merge keys (Meltano projects share config with them) keep working.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from strata.project.project import Project
from tests.helpers import Cli, run_strata, snapshot, write_project


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A small file whose aliases expand to ``width ** levels`` scalars (9**9 is 387 million)."""
    lines = ["plugins:", "  extractors:", "    - name: tap-x", "      executable: /bin/true", "      config:"]
    lines.append(f"        a0: &a0 [{', '.join(['lol'] * width)}]")
    lines.extend(f"        a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]" for n in range(1, levels))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", ["strata.yml", "meltano.yml"])
def test_an_alias_bomb_is_refused_at_once_by_every_command(tmp_path: Path, name: str) -> None:
    text = alias_bomb()
    assert len(text) < 800
    write_project(tmp_path, text, name=name)
    before = snapshot(tmp_path)
    for args in (["config", "tap-x", "list"], ["status"], ["job", "list"], ["run", "tap-x"]):
        started = time.monotonic()
        result = run_strata(*args, cwd=tmp_path, timeout=20)
        assert time.monotonic() - started < 15, args
        assert result.code == 2, (args, result.err)
        assert result.err.startswith(f"strata: error: {name}: YAML aliases expand too far (")
        assert result.err.rstrip().endswith("; remove the nested anchors")
        assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_anchors_and_merge_keys_for_shared_config_still_load_and_edit(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_project(
        tmp_path,
        """
        version: 1
        plugins:
          extractors:
            - name: tap-a
              executable: /bin/true
              config: &shared
                start_date: '2024-01-01'
                user_agent: shared
            - name: tap-b
              executable: /bin/true
              config:
                <<: *shared
                user_agent: own
              select: &sel [a.*, b.*]
            - name: tap-c
              executable: /bin/true
              select: *sel
        """,
    )
    monkeypatch.chdir(tmp_path)
    listed = strata("--json", "config", "tap-b", "list")
    assert listed.code == 0, listed.err
    values = {item["name"]: item["value"] for item in listed.json()}
    assert values == {"start_date": "2024-01-01", "user_agent": "own"}
    assert Project(tmp_path).plugin("tap-c").plugin.select == ["a.*", "b.*"]
    assert strata("config", "tap-b", "set", "page_size", "100").code == 0
    text = path.read_text()
    assert "<<: *shared" in text
    assert "select: *sel" in text
    values = {item["name"]: item["value"] for item in strata("--json", "config", "tap-b", "list").json()}
    assert values == {"start_date": "2024-01-01", "user_agent": "own", "page_size": 100}


@pytest.mark.parametrize(
    ("value", "tag", "line"),
    [
        ("!!python/object/apply:os.system ['echo owned']", "!!python/object/apply:os.system", 5),
        ("!!python/name:os.system", "!!python/name:os.system", 5),
        ("{a: !!python/tuple [1, 2]}", "!!python/tuple", 5),
        ("{a: !vault secret}", "!vault", 5),
        ("{a: !!binary aGVsbG8=}", "!!binary", 5),
    ],
)
def test_a_yaml_tag_beyond_plain_values_is_refused_with_its_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, tag: str, line: int
) -> None:
    write_project(
        tmp_path, f"plugins:\n  extractors:\n    - name: tap-x\n      executable: /bin/true\n      config: {value}\n"
    )
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for args in (("config", "tap-x", "list"), ("job", "list"), ("config", "tap-x", "set", "a", "1")):
        result = strata(*args)
        assert result.code == 2, result.err
        assert f"strata.yml:{line}:" in result.err
        assert f"YAML tag `{tag}` is not allowed in a project file; " in result.err
        assert "unexpected" not in result.err
        assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_plain_yaml_tags_are_still_read(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(
        tmp_path,
        "plugins:\n  extractors:\n    - name: tap-x\n      executable: /bin/true\n"
        "      config: {port: !!str 5432, retries: !!int '3', ok: !!bool true, none: !!null ''}\n",
    )
    monkeypatch.chdir(tmp_path)
    listed = strata("--json", "config", "tap-x", "list")
    assert listed.code == 0, listed.err
    assert {item["name"]: item["value"] for item in listed.json()} == {
        "port": "5432",
        "retries": 3,
        "ok": True,
        "none": None,
    }


def test_a_project_file_that_is_not_utf8_names_its_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "meltano.yml").write_bytes(b"version: 1\n# caf\xe9 in Latin-1\nplugins: {}\n")
    monkeypatch.chdir(tmp_path)
    result = strata("status")
    assert result.code == 2
    assert result.err == ("strata: error: meltano.yml:2: not UTF-8 text (byte 0xe9); save the file as UTF-8\n")


def test_a_dotenv_that_is_not_utf8_is_named(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path, "plugins:\n  extractors:\n    - {name: tap-x, executable: /bin/true}\n")
    (tmp_path / ".env").write_bytes(b"A=1\nTAP_X_NAME=Jos\xe9\n")
    monkeypatch.chdir(tmp_path)
    result = strata("config", "tap-x", "list")
    assert result.code == 2
    assert result.err == "strata: error: .env:2: not UTF-8 text (byte 0xe9); save the file as UTF-8\n"


def test_yaml_nested_too_deeply_is_refused_in_one_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, "env: " + "[" * 3000 + "]" * 3000 + "\n")
    monkeypatch.chdir(tmp_path)
    result = strata("status")
    assert result.code == 2
    assert result.err == "strata: error: strata.yml: YAML nested too deeply; flatten the structure\n"
