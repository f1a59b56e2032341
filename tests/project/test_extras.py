"""Meltano's plugin extras (``_select``, ``_metadata``, ``_schema`` …) read, listed and set as Meltano does (issue 12, item 7).

The fixture ``tests/fixtures/meltano-extras`` holds a project and, under ``expected/``, what
Meltano 4.4.1 printed for it (``config list PLUGIN --extras --all``, ``config print``) and the
file it left after ``config set`` of extras (``record.sh`` made them). strata's ``--json``
listing is compared with Meltano's lines: every extra, its value and where it came from.
Meltano also prints the leaves of ``_metadata`` and ``_schema`` as dotted rows
(``_metadata.users.replication-method``); strata shows each object once, so those are left out.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.helpers import Cli, assert_meltano_still_prints, snapshot, write_project

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-extras"
EXPECTED = FIXTURE / "expected"
_LINE = re.compile(
    r"^(?P<name>_\S+) \[env: [^\]]*\](?: \(default: .*?\))? current value: (?P<value>.*) \((?P<source>[^()]*)\)$"
)


@pytest.fixture
def extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture project, copied, with the working directory inside it."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE / "project", root)
    monkeypatch.chdir(root)
    return root


def test_the_stored_meltano_output_is_what_meltano_prints_now(tmp_path: Path) -> None:
    """With Meltano at hand, ``record.sh`` run again reproduces every stored file byte for byte."""
    assert_meltano_still_prints(FIXTURE, tmp_path)


def _source(text: str) -> str:
    """Meltano's source words as strata's ``source`` (plus the variable, where one decided)."""
    if text.startswith("default"):
        return "default"
    if text.startswith("inherited from"):
        return "inherited"
    if text == "from the active environment in `meltano.yml`":
        return "environment dev"
    variable = re.fullmatch(r"from the (\S+) variable in (the environment|`\.env`)", text)
    if variable:
        return f"{'env' if variable.group(2) == 'the environment' else '.env'} {variable.group(1)}"
    assert text == "from `meltano.yml`", text
    return "meltano.yml"


def meltano_extras(name: str) -> dict[str, tuple[Any, str]]:
    """Extra -> (value, source) from a stored ``meltano config list PLUGIN --extras --all``, object leaves included."""
    found = {}
    for line in (EXPECTED / name).read_text().splitlines():
        match = _LINE.match(line)
        if match:
            found[match["name"]] = (ast.literal_eval(match["value"]), _source(match["source"]))
    assert found, name
    return found


def strata_extras(strata: Cli, *args: str) -> dict[str, tuple[Any, str]]:
    result = strata("--json", *args)
    assert result.code == 0, result.err
    rows = result.json()
    return {
        row["name"]: (
            row["value"],
            f"{row['source']} {row['detail']}" if row["source"] in {"env", ".env"} else row["source"],
        )
        for row in rows
    }


@pytest.mark.parametrize(
    ("args", "recorded"),
    [
        (("config", "list", "tap-jsonl", "--extras"), "list-extras-tap-jsonl.txt"),
        (("config", "tap-jsonl", "list", "--extras"), "list-extras-tap-jsonl.txt"),
        (("-e", "dev", "config", "list", "tap-jsonl", "--extras"), "list-extras-tap-jsonl-dev.txt"),
        (("config", "list", "tap-child", "--extras"), "list-extras-tap-child.txt"),
        (("config", "list", "target-jsonl", "--extras"), "list-extras-target-jsonl.txt"),
        (("config", "list", "meltano-map-transformer", "--extras"), "list-extras-meltano-map-transformer.txt"),
    ],
)
def test_config_list_extras_shows_what_meltano_shows(
    strata: Cli, extras: Path, args: tuple[str, ...], recorded: str
) -> None:
    assert strata_extras(strata, *args) == meltano_extras(recorded)


def test_a_variable_sets_an_extra_as_in_meltano(strata: Cli, extras: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_JSONL__SELECT", '["users.name"]')
    listed = strata_extras(strata, "config", "list", "tap-jsonl", "--extras")
    assert listed == meltano_extras("list-extras-tap-jsonl-variable.txt")
    human = strata("config", "list", "tap-jsonl", "--extras").out
    assert '_select=["users.name"] (from env (TAP_JSONL__SELECT))\n' in human
    assert "_use_cached_catalog=false (from meltano.yml:" in human


def test_extras_stay_out_of_the_plain_settings_and_the_plugin_config(strata: Cli, extras: Path) -> None:
    """`config: {_use_cached_catalog: …}` is the extra, as in Meltano: not a setting, not given to the plugin."""
    assert strata("config", "print", "tap-jsonl").out == (EXPECTED / "print-tap-jsonl.json").read_text()
    listed = strata("--json", "config", "list", "tap-jsonl").json()
    assert [row["name"] for row in listed] == ["stream_name"]
    assert "_use_cached_catalog" not in strata("config", "print", "tap-jsonl", "--format=env").out


def _data(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def test_config_set_writes_extras_where_meltano_writes_them(strata: Cli, extras: Path) -> None:
    """`select:`, `metadata:`, `schema:` on the plugin or the environment's entry; `config._x` moves out, as in Meltano."""
    for args in (
        ("config", "set", "tap-jsonl", "_select", '["users.id", "users.name"]'),
        ("config", "tap-jsonl", "set", "_metadata", "users", "replication-key", "id"),
        ("-e", "dev", "config", "set", "tap-jsonl", "_schema", '{"users": {"password": {"type": "integer"}}}'),
        ("config", "set", "tap-child", "_use_cached_catalog", "true"),
    ):
        result = strata(*args)
        assert result.code == 0, (args, result.err)
    assert _data(extras / "meltano.yml") == _data(EXPECTED / "after-set" / "meltano.yml")
    assert strata("config", "get", "tap-jsonl", "_metadata").out.startswith(
        '_metadata={"users": {"replication-method": "FULL_TABLE", "replication-key": "id"}} (from meltano.yml:'
    )


def test_config_unset_removes_an_extra_or_one_leaf_of_it(strata: Cli, extras: Path) -> None:
    assert strata("config", "unset", "tap-jsonl", "_select").code == 0
    assert strata("config", "unset", "tap-jsonl", "_metadata", "users", "replication-method").code == 0
    assert strata("config", "unset", "tap-jsonl", "_use_cached_catalog").code == 0
    plugin = _data(extras / "meltano.yml")["plugins"]["extractors"][0]
    assert "select" not in plugin
    assert "metadata" not in plugin
    assert plugin["config"] == {"stream_name": "users"}
    listed = strata_extras(strata, "config", "list", "tap-jsonl", "--extras")
    assert listed["_select"] == (["*.*"], "default")
    assert listed["_use_cached_catalog"] == (True, "default")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("_select", "users.id"),
            "strata: error: `_select` is not a valid array; give an array value\n",
        ),
        (
            ("_select", '["users."]'),
            (
                "strata: error: select rule `users.` is not `stream` or `stream.property`; "
                "write e.g. `users.*` or `!users.password`\n"
            ),
        ),
        (
            ("_select", "[1]"),
            "strata: error: `_select` must be a list of strings; give e.g. '[\"users.*\"]'\n",
        ),
        (
            ("_use_cached_catalog", "maybe"),
            "strata: error: `_use_cached_catalog` is not a valid boolean; give a boolean value\n",
        ),
        (
            ("_selct", '["users.*"]'),
            (
                "strata: error: `_selct` is not an extra of extractors; the extras of extractors are _catalog, "
                "_load_schema, _log_parser, _metadata, _schema, _select, _select_filter, _state, _use_cached_catalog\n"
            ),
        ),
        (
            ("_select", "users", '["a.*"]'),
            "strata: error: `_select` is not an object, so `_select.users` cannot be set; set `_select` as a whole\n",
        ),
        (("--secret", "_select", '["a.*"]'), "strata: error: `_select` is an extra, never a secret; drop --secret\n"),
    ],
)
def test_bad_extras_are_refused_in_one_line_and_change_nothing(
    strata: Cli, extras: Path, args: tuple[str, ...], message: str
) -> None:
    before = snapshot(extras)
    result = strata("config", "set", "tap-jsonl", *args)
    assert (result.code, result.err) == (2, message)
    assert snapshot(extras) == before


def test_an_extra_that_another_plugin_type_has_is_refused(strata: Cli, extras: Path) -> None:
    before = snapshot(extras)
    result = strata("config", "set", "target-jsonl", "_select", '["a.*"]')
    assert result.code == 2
    assert result.err.startswith("strata: error: `_select` is not an extra of loaders; the extras of loaders are ")
    assert strata("config", "unset", "target-jsonl", "_nope").code == 2
    assert snapshot(extras) == before


CATALOG = {
    "streams": [
        {
            "tap_stream_id": "users",
            "schema": {"properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "pw": {"type": "string"}}},
            "metadata": [{"breadcrumb": [], "metadata": {}}],
        },
        {"tap_stream_id": "orders", "schema": {"properties": {"id": {"type": "integer"}}}},
    ]
}


@pytest.fixture
def catalog_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An extractor whose catalog is a file (no tap runs), for `select --list`."""
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    write_project(
        tmp_path,
        """
        plugins:
          extractors:
            - {name: tap-x, executable: tap-x, catalog: catalog.json}
        """,
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_select_rules_set_by_config_set_or_a_variable_decide_the_selection(
    strata: Cli, catalog_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert strata("config", "set", "tap-x", "_select", '["users.*", "!users.pw"]').code == 0
    listed = strata("--json", "select", "tap-x", "--list").json()
    assert listed["rules"] == ["users.*", "!users.pw"]
    assert listed["streams"] == {"users": {"id": True, "name": True, "pw": False}, "orders": {"id": False}}
    monkeypatch.setenv("TAP_X__SELECT", '["orders.*"]')
    listed = strata("--json", "select", "tap-x", "--list").json()
    assert listed["rules"] == ["orders.*"]
    assert listed["streams"]["orders"] == {"id": True}


def test_a_select_that_is_not_a_list_in_a_variable_is_one_line(
    strata: Cli, catalog_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAP_X__SELECT", "users.*")
    result = strata("select", "tap-x", "--list")
    assert (result.code, result.err) == (2, "strata: error: TAP_X__SELECT is not a valid array; give an array value\n")


def test_metadata_and_schema_rules_follow_meltanos_paths() -> None:
    """`{stream: {key: v, prop: {key: v}}}` as Meltano reads `_metadata`; property globs in `_schema`; every
    stream-level key is also written on the stream (`replication_key`), as Meltano does for older taps."""
    from strata.ingest.catalog import apply_rules

    applied = apply_rules(
        CATALOG,
        None,
        {"user?": {"replication-key": "id", "name": {"selected": False}}, "*": {"custom-key": 1}},
        {"users": {"n*": {"type": "integer"}, "added": {"type": "string"}}},
        ["!orders"],
    )
    users, orders = applied["streams"]
    assert users["replication_key"] == "id"
    assert users["custom_key"] == 1
    root = next(m["metadata"] for m in users["metadata"] if m["breadcrumb"] == [])
    assert root["replication-key"] == "id"
    name = next(m["metadata"] for m in users["metadata"] if m["breadcrumb"] == ["properties", "name"])
    assert name["selected"] is False
    assert users["schema"]["properties"]["name"] == {"type": "integer"}
    assert users["schema"]["properties"]["added"] == {"type": "string"}
    assert users["schema"]["properties"]["id"] == {"type": "integer"}
    assert next(m["metadata"] for m in orders["metadata"] if m["breadcrumb"] == [])["selected"] is False


def test_select_adds_to_rules_kept_in_config_as_meltano_does(strata: Cli, catalog_project: Path) -> None:
    """`config: {_select: …}` is the extractor's select: `strata select` adds to it (moving it out) instead of hiding it."""
    path = catalog_project / "strata.yml"
    path.write_text(
        path.read_text().replace("catalog: catalog.json}", "catalog: catalog.json, config: {_select: [users.id]}}")
    )
    assert strata("select", "tap-x", "orders").code == 0
    plugin = _data(path)["plugins"]["extractors"][0]
    assert plugin["select"] == ["users.id", "orders.*"]
    assert "config" not in plugin
    assert strata("--json", "select", "tap-x", "--list").json()["rules"] == ["users.id", "orders.*"]


def test_a_catalog_file_set_as_an_extra_is_the_catalog(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_catalog` from `config set` or `TAP_X__CATALOG` is used as the `catalog:` key is: no discovery."""
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    write_project(tmp_path, "plugins:\n  extractors:\n    - {name: tap-x, executable: /nonexistent/tap-x}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAP_X__CATALOG", "catalog.json")
    assert list(strata("--json", "select", "tap-x", "--list").json()["streams"]) == ["users", "orders"]
    monkeypatch.delenv("TAP_X__CATALOG")
    assert strata("config", "set", "tap-x", "_catalog", "catalog.json").code == 0
    assert _data(tmp_path / "strata.yml")["plugins"]["extractors"][0]["catalog"] == "catalog.json"
    assert list(strata("--json", "select", "tap-x", "--list").json()["streams"]) == ["users", "orders"]
