"""File bundles (Meltano's ``files`` plugins): read, installed, listed, and copied in by ``add`` as Meltano does.

Meltano 4.4.1 (``meltano/core/plugin/file.py``): a bundle is a package whose ``bundle/``
directory holds project files. ``meltano add files X`` installs it and writes each file into
the project, keeping an existing file and writing the bundle's beside it as ``NAME (X).ext``;
``meltano install`` only installs the package (and says to run ``meltano upgrade files``).
``tests/fixtures/files-dbt-duckdb`` is such a package, installed from a copy of its directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import Cli, snapshot, write_project

BUNDLE = Path(__file__).parent.parent / "fixtures" / "files-dbt-duckdb"
FILES = ["transform/.gitignore", "transform/dbt_project.yml", "transform/profiles/duckdb/profiles.yml"]

PROJECT = """
default_environment: dev
environments:
- name: dev
plugins:
  transformers:
  - name: dbt-duckdb
    executable: /bin/true
    config:
      project_dir: transform
  files:
  - name: dbt-duckdb
    pip_url: {bundle}
    update:
      transform/profiles/duckdb/profiles.yml: true
"""


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Meltano project with a dbt transformer and a file bundle of the same name (installable from a copy)."""
    source = shutil.copytree(BUNDLE, tmp_path / "files-dbt-duckdb")
    root = tmp_path / "project"
    write_project(root, PROJECT.format(bundle=source), "meltano.yml")
    (root / "transform").mkdir()
    monkeypatch.chdir(root)
    return root


def test_a_bundle_with_update_beside_a_transformer_of_its_name_loads(strata: Cli, bundled: Path) -> None:
    result = strata("config", "list", "dbt-duckdb")
    assert result.code == 0, result.err
    assert "project_dir" in result.out


def test_install_installs_a_bundle_and_lists_its_files_without_copying_them(strata: Cli, bundled: Path) -> None:
    before = {path: data for path, data in snapshot(bundled).items() if not path.startswith(".strata")}
    result = strata("install")
    assert result.code == 0, result.err
    assert (
        "dbt-duckdb (file bundle): installed; its files, not copied into the project by install: " + ", ".join(FILES)
        in result.out
    )
    assert (bundled / ".strata" / "plugins" / "files" / "dbt-duckdb" / "current").is_dir()
    after = {path: data for path, data in snapshot(bundled).items() if not path.startswith(".strata")}
    assert after == before


def test_add_file_copies_the_bundle_into_the_project_keeping_what_is_there(strata: Cli, bundled: Path) -> None:
    mine = bundled / "transform" / "dbt_project.yml"
    mine.write_text("name: mine\n")
    source = bundled.parent / "files-dbt-duckdb"
    result = strata("add", "file", "files-dbt-duckdb", "--pip-url", str(source))
    assert result.code == 0, result.err
    assert mine.read_text() == "name: mine\n"
    kept = bundled / "transform" / "dbt_project (files-dbt-duckdb).yml"
    assert kept.read_text() == (BUNDLE / "bundle" / "transform" / "dbt_project.yml").read_text()
    for name in ("transform/.gitignore", "transform/profiles/duckdb/profiles.yml"):
        assert (bundled / name).read_bytes() == (BUNDLE / "bundle" / name).read_bytes()
    assert result.out.splitlines() == [
        "Created transform/.gitignore",
        "Created transform/dbt_project (files-dbt-duckdb).yml (transform/dbt_project.yml exists)",
        "Created transform/profiles/duckdb/profiles.yml",
        "Added file `files-dbt-duckdb` to meltano.yml (installed)",
    ]


def test_add_file_may_share_a_transformers_name_in_meltano_yml(strata: Cli, bundled: Path) -> None:
    """Meltano projects pair `dbt-duckdb` the transformer with `dbt-duckdb` the bundle; strata.yml keeps names unique."""
    path = bundled / "meltano.yml"
    transformer_only = path.read_text().split("  files:\n")[0]
    path.write_text(transformer_only)
    source = bundled.parent / "files-dbt-duckdb"
    result = strata("add", "file", "dbt-duckdb", "--pip-url", str(source))
    assert result.code == 0, result.err
    assert "Added file `dbt-duckdb` to meltano.yml (installed)" in result.out
    assert (bundled / ".strata" / "plugins" / "files" / "dbt-duckdb" / "current").is_dir()
    assert (bundled / "transform" / "dbt_project.yml").is_file()
    path.unlink()
    (bundled / "strata.yml").write_text(transformer_only)
    before = snapshot(bundled)
    refused = strata("add", "file", "dbt-duckdb", "--pip-url", str(source))
    assert refused.code == 2
    assert "a plugin named `dbt-duckdb` already exists" in refused.err
    assert snapshot(bundled) == before
