"""strata.yml / meltano.yml: init, discovery, validation errors that name file, line and key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

import strata as strata_pkg
from strata.errors import ProjectFileError
from strata.project.project import Project
from tests.helpers import Cli, snapshot, write_project


def test_init_writes_project_file_gitignore_and_system_dir(strata: Cli, tmp_path: Path) -> None:
    result = strata("init", str(tmp_path / "new"))
    assert result.code == 0
    root = tmp_path / "new"
    project = Project(root)
    assert project.model.project_id
    assert project.model.default_environment == "dev"
    assert [e.name for e in project.model.environments] == ["dev", "staging", "prod"]
    assert (root / ".strata").is_dir()
    assert ".strata/" in (root / ".gitignore").read_text()
    assert ".env" in (root / ".gitignore").read_text()
    assert "*.build.lock" in (root / ".gitignore").read_text().splitlines()  # a build's lock beside a store file


def test_init_refuses_an_existing_project_and_changes_nothing(strata: Cli, tmp_path: Path) -> None:
    write_project(tmp_path, "version: 1\n# mine\n", name="meltano.yml")
    before = snapshot(tmp_path)
    result = strata("init", str(tmp_path))
    assert result.code == 2
    assert "already exists" in result.err
    assert snapshot(tmp_path) == before


def test_two_projects_get_different_ids(strata: Cli, tmp_path: Path) -> None:
    strata("init", str(tmp_path / "a"))
    strata("init", str(tmp_path / "b"))
    assert Project(tmp_path / "a").model.project_id != Project(tmp_path / "b").model.project_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "plugins:\n  extractors:\n    - name: tap-x\n      pip_ur: tap-x\n",
            "strata.yml:4: unknown key `plugins.extractors[0].pip_ur`; did you mean `pip_url`?",
        ),
        ("version: 1\nplugns: {}\n", "strata.yml:2: unknown key `plugns`; did you mean `plugins`?"),
        ("plugins:\n  extractors:\n    - pip_url: tap-x\n", "strata.yml:3: `plugins.extractors[0]` needs a `name` key"),
        ("plugins:\n  loaders:\n    - name: 5\n", "strata.yml:3: `plugins.loaders[0].name`: expected str, got int"),
        ("plugins:\n  extractors: {name: tap-x}\n", "strata.yml:2: `plugins.extractors`: expected array, got object"),
        ("a: [1, 2\n", "strata.yml:2:1: malformed YAML"),
        ("a: 1\na: 2\n", "strata.yml:2:1: malformed YAML"),
        ("", "strata.yml is empty"),
        ("- 1\n- 2\n", "strata.yml:1: the project file must be a mapping"),
        (
            "default_environment: prod\nenvironments: [{name: dev}]\n",
            "strata.yml:1: default_environment `prod` is not defined",
        ),
        (
            "plugins:\n  loaders:\n    - {name: t, executable: t}\n  extractors:\n    - {name: t, executable: t}\n",
            "strata.yml:5: plugin `t` is defined twice (first at strata.yml:3)",
        ),
        (
            "plugins:\n  loaders:\n    - {name: a, inherit_from: b}\n",
            "strata.yml:3: `a` inherits from `b`, which is not a plugin in `loaders`",
        ),
        (
            "plugins:\n  loaders:\n    - {name: a, inherit_from: b}\n    - {name: b, inherit_from: a}\n",
            "inherit_from forms a cycle: a -> b -> a",
        ),
        (
            "plugins:\n  loaders: [{name: a, executable: a}]\nenvironments:\n  - name: dev\n    config:\n      plugins:\n        loaders: [{name: nope}]\n",
            "strata.yml:7: environment `dev` configures `nope`, which is not a plugin in `loaders`",
        ),
    ],
)
def test_invalid_project_files_give_one_located_error(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    write_project(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = strata("config", "a", "list")
    assert result.code == 2
    assert expected in result.err
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert snapshot(tmp_path) == before


def test_meltano_yml_is_found_and_read_with_every_meltano_key(tmp_path: Path) -> None:
    fixture = Path(__file__).parent.parent / "fixtures" / "meltano-project" / "meltano.yml"
    (tmp_path / "meltano.yml").write_text(fixture.read_text())
    project = Project(tmp_path)
    assert project.file_name == "meltano.yml"
    assert project.environment is not None
    assert project.environment.name == "dev"
    names = [ref.name for ref in project.plugins()]
    assert names == [
        "tap-smoke-test",
        "tap-smoke-test--other",
        "target-jsonl",
        "target-csv",
        "meltano-map-transformer",
        "sqlfluff",
    ]


def test_strata_yml_wins_over_meltano_yml_in_the_same_directory(tmp_path: Path) -> None:
    write_project(tmp_path, "default_environment: a\nenvironments: [{name: a}]\n")
    write_project(tmp_path, "default_environment: b\nenvironments: [{name: b}]\n", name="meltano.yml")
    assert Project(tmp_path).environment is not None
    assert Project(tmp_path).environment.name == "a"  # type: ignore[union-attr]


def test_save_refuses_an_edit_that_breaks_the_schema(tmp_path: Path) -> None:
    path = write_project(tmp_path, "version: 1  # keep me\n")
    project = Project(tmp_path)
    project.tree["bogus"] = 1
    with pytest.raises(ProjectFileError, match="unknown key `bogus`"):
        project.save()
    assert path.read_text() == "version: 1  # keep me\n"


def test_parse_cache_follows_every_edit_of_the_file(strata: Cli, project: Path) -> None:
    path = project / "strata.yml"
    path.write_text("plugins:\n  loaders:\n    - {name: target-x, executable: x, config: {a: 1}}\n")
    assert "a=1" in strata("config", "target-x", "list").out
    assert (project / ".strata" / "cache" / "project.json").is_file()
    path.write_text(path.read_text().replace("a: 1", "a: 2"))
    assert "a=2" in strata("config", "target-x", "list").out
    path.write_text(path.read_text().replace("a: 2", "a: 2, b: [1"))
    broken = strata("config", "target-x", "list")
    assert broken.code == 2
    assert "malformed YAML" in broken.err


@pytest.mark.parametrize("name", ["../../..", "a/b", ".hidden", "-x", "a..b", ""])
def test_hand_written_plugin_names_are_validated_with_their_line(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    root = tmp_path / "p"
    write_project(
        root, f'plugins:\n  loaders:\n    - {{name: ok, executable: x}}\n    - {{name: "{name}", executable: x}}\n'
    )
    monkeypatch.chdir(root)
    before = snapshot(tmp_path)
    for args in (("config", "ok", "list"), ("remove", "--", name), ("invoke", "--", name)):
        result = strata(*args)
        assert result.code == 2, args
        assert f"strata.yml:4: `{name}` is not a valid plugin name" in result.err
        assert result.err.count("\n") == 1
    assert snapshot(tmp_path) == before
    assert root.is_dir()


def test_a_missing_ancestor_anywhere_in_the_chain_is_located(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(
        tmp_path,
        "plugins:\n  loaders:\n    - {name: a, inherit_from: b}\n    - {name: b, inherit_from: c}\n",
    )
    monkeypatch.chdir(tmp_path)
    result = strata("config", "a", "list")
    assert result.code == 2
    assert "strata.yml:4: `b` inherits from `c`, which is not a plugin in `loaders`" in result.err
    assert result.err.count("\n") == 1


def test_parse_cache_is_owner_only(strata: Cli, project: Path) -> None:
    assert strata("config", "x", "list").code == 2  # the project loads (and is cached) before the plugin lookup
    cache = project / ".strata" / "cache" / "project.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_parse_cache_is_keyed_by_the_strata_version(strata: Cli, project: Path) -> None:
    path = project / "strata.yml"
    path.write_text(path.read_text() + "env: {A: real}\n")
    Project(project)
    cache = project / ".strata" / "cache" / "project.json"
    data = json.loads(cache.read_text())
    assert strata_pkg.__version__ in data["key"]
    # a cache written by another version is never trusted, even for the same text
    data["key"] = [strata_pkg.__version__ + ".old" if part == strata_pkg.__version__ else part for part in data["key"]]
    data["plain"]["env"] = {"A": "stale"}
    cache.write_text(json.dumps(data))
    assert Project(project).model.env == {"A": "real"}


def test_a_cache_that_does_not_fit_the_schema_falls_back_to_parsing(project: Path) -> None:
    path = project / "strata.yml"
    path.write_text(path.read_text() + "env: {A: real}\n")
    Project(project)
    cache = project / ".strata" / "cache" / "project.json"
    data = json.loads(cache.read_text())
    data["plain"]["environments"] = "not a list"
    cache.write_text(json.dumps(data))
    loaded = Project(project)
    assert loaded.model.env == {"A": "real"}
    assert [e.name for e in loaded.model.environments] == ["dev", "staging", "prod"]
