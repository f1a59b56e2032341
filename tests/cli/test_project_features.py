"""The project's feature graph and stores, from strata.yml: defaults, checks, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import strata as st
from strata.errors import DefinitionError, ProjectFileError, RuntimeFailure, UsageError
from strata.features.project import feature_modules, load_graph, make_store, opened, store_config, store_configs
from strata.project.project import Project
from tests.cli.conftest import MakeProject
from tests.helpers import write_project

ONE = """
    import strata as st

    class One(st.Feature, spec=st.FeatureSpec("one", fields=["x"])):
        pass
"""


def _project(root: Path, text: str, environ: dict[str, str] | None = None) -> Project:
    write_project(root, text)
    return Project.find(root, environ=environ or {})


def test_default_store_is_duckdb_under_dot_strata(tmp_path: Path) -> None:
    project = _project(tmp_path, "version: 1\n")
    config = store_config(project)
    assert (config.name, config.type, config.hash_algorithm) == ("local", "duckdb", "md5")
    assert config.path == tmp_path.resolve() / ".strata" / "metadata.duckdb"
    assert list(store_configs(project)) == ["local"]
    assert isinstance(make_store(project), st.DuckDBStore)


def test_declared_stores_paths_variables_and_types(tmp_path: Path) -> None:
    text = """\
features: {store: dev}
stores:
  dev: {type: duckdb, path: data/dev.duckdb}
  abs: {type: duckdb, path: "${DATA_DIR}/x.duckdb", hash_algorithm: sha256}
  scratch: {type: memory}
"""
    project = _project(tmp_path, text, {"DATA_DIR": str(tmp_path / "elsewhere")})
    assert store_config(project).name == "dev"
    assert store_config(project).path == tmp_path.resolve() / "data" / "dev.duckdb"
    absolute = store_config(project, "abs")
    assert absolute.path == tmp_path / "elsewhere" / "x.duckdb"
    assert absolute.hash_algorithm == "sha256"
    memory = make_store(project, "scratch")
    assert isinstance(memory, st.InMemoryStore)
    assert store_config(project, "scratch").to_json() == {
        "name": "scratch",
        "type": "memory",
        "hash_algorithm": "md5",
        "path": None,
    }


def duckdb_memory_limit(store: st.MetadataStore) -> str:
    """The memory limit the store's open DuckDB connection runs with, as DuckDB prints it."""
    assert isinstance(store, st.DuckDBStore)
    with store:
        return str(store.con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])


def test_a_duckdb_store_spills_past_its_memory_limit_half_the_machine_unless_told(tmp_path: Path) -> None:
    import duckdb

    text = (
        "stores:\n  big: {type: duckdb, path: big.duckdb, memory_limit: 1GB}\n  plain: {type: duckdb, path: p.duckdb}\n"
    )
    project = _project(tmp_path, text + "features: {store: big}\n")
    assert duckdb_memory_limit(make_store(project)) == duckdb_memory_limit(st.DuckDBStore(memory_limit="1GB"))
    with duckdb.connect(config={"memory_limit": "50%"}) as half:
        expected = half.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert duckdb_memory_limit(make_store(project, "plain")) == expected
    assert duckdb_memory_limit(make_store(project, "plain", read_only=True)) == expected
    with pytest.raises(DefinitionError, match="memory_limit `lots` is not a size"):
        st.DuckDBStore(memory_limit="lots")


def test_the_only_store_is_the_default_and_the_environment_can_choose(tmp_path: Path) -> None:
    text = "stores:\n  mine: {type: memory}\n"
    assert store_config(_project(tmp_path, text)).name == "mine"
    text = "stores:\n  a: {type: memory}\n  b: {type: memory}\n"
    project = _project(tmp_path, text, {"STRATA_FEATURES_STORE": "b"})
    assert store_config(project).name == "b"
    with pytest.raises(ProjectFileError, match=r"strata\.yml:1: several stores \(a, b\) and no features\.store"):
        store_config(_project(tmp_path, text))


@pytest.mark.parametrize(
    ("stores", "message"),
    [
        (
            "  x: {type: cassandra}\n",
            r"strata\.yml:3: store `x` has unknown type `cassandra`; use one of: duckdb, memory, sqlite, postgres, clickhouse",
        ),
        (
            "  x: {path: a.duckdb}\n",
            r"strata\.yml:3: store `x` has no type; add `type:` \(one of: duckdb, memory, sqlite, postgres, clickhouse\)",
        ),
        (
            "  x:\n    type: duckdb\n    replicas: [y]\n",
            r"strata\.yml:5: unknown key `replicas` for a duckdb store `x`; duckdb stores take: type, path, hash_algorithm",
        ),
        ("  x: {type: memory, hash_algorithm: crc}\n", r"unknown hash_algorithm `crc`; use one of: md5, sha256"),
        (
            "  x: {type: duckdb, memory_limit: lots}\n",
            r"strata\.yml:3: memory_limit `lots` is not a size; write a size",
        ),
        ("  x: {type: memory, memory_limit: 1GB}\n", r"unknown key `memory_limit` for a memory store"),
        ("  x: {type: duckdb, path: 3}\n", r"store `x` needs a file path"),
        (
            "  x: {type: clickhouse, path: ch, password: pw}\n",
            r"strata\.yml:3: `password` of ClickHouse store `x` is for a server \(`host:`\), not for `path:`",
        ),
        ("  x: {type: clickhouse, path: ch, secure: true}\n", r"`secure` of ClickHouse store `x` is for a server"),
        ('  "../x": {type: memory}\n', r"`\.\./x` is not a valid store name"),
    ],
)
def test_bad_store_entries_are_one_clear_error(tmp_path: Path, stores: str, message: str) -> None:
    project = _project(tmp_path, "version: 1\nstores:\n" + stores)
    with pytest.raises(ProjectFileError, match=message):
        store_configs(project)


def test_unknown_or_invalid_store_names(tmp_path: Path) -> None:
    project = _project(tmp_path, "stores:\n  a: {type: memory}\n  b: {type: memory}\n")
    with pytest.raises(UsageError, match=r"no store named `c`; stores in strata\.yml: a, b"):
        store_config(project, "c")
    with pytest.raises(UsageError, match="not a valid store name"):
        store_config(project, "../../etc")
    bare = _project(tmp_path / "bare", "version: 1\n")
    with pytest.raises(UsageError, match=r"strata\.yml declares no stores: only `local` exists"):
        store_config(bare, "prod")
    named = _project(tmp_path / "named", "features: {store: prod}\n")
    with pytest.raises(UsageError, match="no store named `prod`"):
        store_config(named)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ("{entrypoints: features.video}", r"strata\.yml:1: features\.entrypoints must be a list"),
        ("{entrypoints: [../evil]}", r"strata\.yml:1: `\.\./evil` is not a module name"),
        ("{entrypoints: [.relative]}", r"`\.relative` is not a module name"),
        ("{entrypoint: [features.video]}", r"unknown key `features\.entrypoint`; features takes: entrypoints, store"),
        ("{store: 3}", r"features\.store must be a store name"),
    ],
)
def test_bad_features_section(tmp_path: Path, features: str, message: str) -> None:
    project = _project(tmp_path, f"features: {features}\n")
    with pytest.raises(ProjectFileError, match=message):
        (feature_modules if "entrypoint" in features else store_config)(project)


def test_two_projects_with_the_same_module_names_in_one_process(make_project: MakeProject, tmp_path: Path) -> None:
    first = make_project({"features/graph.py": ONE}, root=tmp_path / "a")
    two = ONE.replace('"one"', '"two"').replace("class One", "class Two")
    second = make_project({"features/graph.py": two}, root=tmp_path / "b")
    assert [str(k) for k in load_graph(Project.find(first))] == ["one"]
    assert [str(k) for k in load_graph(Project.find(second))] == ["two"]
    assert [str(k) for k in load_graph(Project.find(first))] == ["one"]


def test_no_entrypoints_is_an_empty_graph(tmp_path: Path) -> None:
    assert len(load_graph(_project(tmp_path, "version: 1\n"))) == 0


def test_errors_while_importing_name_the_module_and_line(make_project: MakeProject) -> None:
    root = make_project({"feats/bad.py": 'import strata as st\n\nst.FeatureSpec("a__b")\n'})
    with pytest.raises(
        DefinitionError, match=r"feature module `feats\.bad` \(feats/bad\.py:3\): `a__b` is not a valid"
    ):
        load_graph(Project.find(root))


def test_a_store_that_cannot_open_is_one_line(tmp_path: Path) -> None:
    project = _project(tmp_path, "stores:\n  local: {type: duckdb, path: broken.duckdb}\n")
    (tmp_path / "broken.duckdb").write_text("not a database", encoding="utf-8")
    store = make_store(project)
    with (
        pytest.raises(RuntimeFailure, match=r"cannot open store `local` \(duckdb at .*broken\.duckdb\): ") as caught,
        opened(store, store_config(project)),
    ):
        pass
    assert "\n" not in str(caught.value)


def test_a_sqlite_store_is_declared_by_type_and_path(tmp_path: Path) -> None:
    text = "features: {store: team}\nstores:\n  team: {type: sqlite, path: data/team.sqlite, hash_algorithm: sha256}\n"
    project = _project(tmp_path, text)
    config = store_config(project)
    assert (config.type, config.path, config.hash_algorithm) == (
        "sqlite",
        tmp_path.resolve() / "data" / "team.sqlite",
        "sha256",
    )
    store = make_store(project)
    assert isinstance(store, st.SQLiteStore)
    assert (store.name, store.hash_algorithm) == ("team", "sha256")
    with pytest.raises(ProjectFileError, match=r"unknown key `memory_limit` for a sqlite store `x`"):
        store_config(_project(tmp_path, "stores:\n  x: {type: sqlite, path: a.sqlite, memory_limit: 1GB}\n"))
