"""Catalogs: discovery with a real tap, its cache, and select / metadata / schema rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.errors import UsageError
from strata.ingest.catalog import apply_rules, selection
from strata.project.project import Project
from tests.helpers import Cli, run_strata, write_project

TAP = "tap-jsonl==0.3.1"

CATALOG = {
    "streams": [
        {
            "tap_stream_id": "users",
            "schema": {
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "password": {"type": "string"}}
            },
            "metadata": [
                {"breadcrumb": [], "metadata": {}},
                {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}},
            ],
        },
        {"tap_stream_id": "orders", "schema": {"properties": {"id": {"type": "integer"}, "total": {"type": "number"}}}},
    ]
}


def meta(catalog: dict, stream: str, breadcrumb: list[str]) -> dict:  # type: ignore[type-arg]
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == stream)
    return next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == breadcrumb)


def test_select_rules_with_globs_exclusions_and_automatic_keys() -> None:
    chosen = selection(CATALOG, ["users.*", "!users.password"])
    assert chosen == {"users": {"id": True, "name": True, "password": False}, "orders": {"id": False, "total": False}}
    assert selection(CATALOG, ["orders.total"])["users"] == {"id": True, "name": False, "password": False}
    applied = apply_rules(CATALOG, ["users.*", "!users.password"], None, None)
    assert meta(applied, "users", [])["selected"] is True
    assert meta(applied, "orders", [])["selected"] is False
    assert meta(applied, "users", ["properties", "password"])["selected"] is False
    assert "selected" not in meta(CATALOG, "users", [])  # the input is never changed


def test_metadata_and_schema_overrides() -> None:
    applied = apply_rules(
        CATALOG,
        None,
        {
            "user*": {
                "replication-method": "INCREMENTAL",
                "replication-key": "id",
                "properties": {"name": {"custom": 1}},
            }
        },
        {"orders": {"total": {"type": ["string", "null"]}}},
    )
    assert meta(applied, "users", [])["replication-key"] == "id"
    assert meta(applied, "users", ["properties", "name"])["custom"] == 1
    users = next(s for s in applied["streams"] if s["tap_stream_id"] == "users")
    assert users["replication_method"] == "INCREMENTAL"
    orders = next(s for s in applied["streams"] if s["tap_stream_id"] == "orders")
    assert orders["schema"]["properties"]["total"] == {"type": ["string", "null"]}


def test_a_bare_stream_selects_all_its_properties_as_in_meltano() -> None:
    """Meltano 4.4.1 reads a stream-only pattern as ``stream.*`` (``SelectPattern`` / ``select_metadata_rules``)."""
    assert selection(CATALOG, ["users"]) == selection(CATALOG, ["users.*"])
    assert selection(CATALOG, ["users"])["users"] == {"id": True, "name": True, "password": True}
    assert selection(CATALOG, ["*", "!users"]) == {
        "users": {"id": True, "name": False, "password": False},
        "orders": {"id": True, "total": True},
    }
    dotted = {"streams": [{"tap_stream_id": "public.users", "schema": {"properties": {"id": {}}}}]}
    assert selection(dotted, ["public\\.users"]) == {"public.users": {"id": True}}
    assert selection(dotted, ["public\\.users.id"]) == {"public.users": {"id": True}}


@pytest.mark.parametrize("rule", ["", "!", ".id", "users."])
def test_bad_rule_is_refused(rule: str) -> None:
    with pytest.raises(UsageError, match=r"is not `stream` or `stream\.property`"):
        selection(CATALOG, [rule])


@pytest.fixture(scope="module")
def tap_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    data = root / "users.jsonl"
    data.write_text("".join(json.dumps({"id": i, "name": f"n{i}", "password": "x"}) + "\n" for i in range(3)))
    write_project(
        root,
        f"""
        plugins:
          extractors:
            - name: tap-jsonl
              pip_url: "{TAP}"
              config: {{path: "{data}", stream_name: users, primary_keys: [id]}}
        """,
    )
    assert run_strata("install", cwd=root).code == 0
    return root


@pytest.mark.network
def test_discover_caches_and_select_edits_the_project(tap_project: Path) -> None:
    done = run_strata("discover", "tap-jsonl", cwd=tap_project)
    assert done.code == 0, done.err
    cache = tap_project / ".strata" / "catalogs" / "tap-jsonl.json"
    assert json.loads(cache.read_text())["catalog"]["streams"][0]["tap_stream_id"] == "users"
    assert cache.stat().st_mode & 0o077 == 0
    listed = run_strata("--json", "select", "tap-jsonl", "--list", cwd=tap_project).json()
    assert listed["rules"] is None
    assert listed["streams"]["users"]["password"] is True
    added = run_strata("select", "tap-jsonl", "users", "password", "--exclude", cwd=tap_project)
    assert added.code == 0, added.err
    run_strata("select", "tap-jsonl", "users", cwd=tap_project)
    assert Project(tap_project).plugin("tap-jsonl").plugin.select == ["!users.password", "users.*"]
    listed = run_strata("--json", "select", "tap-jsonl", "--list", "--all", cwd=tap_project).json()
    assert listed["streams"]["users"]["password"] is False
    assert listed["streams"]["users"]["name"] is True


def test_select_refuses_odd_names_and_unknown_plugins(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, "plugins:\n  extractors:\n    - {name: tap-x, executable: tap-x}\n")
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "strata.yml").read_text()
    for args in (("tap-x", "a b"), ("tap-x", "users", "x.y"), ("tap-y", "users")):
        result = strata("select", *args)
        assert result.code == 2, args
    assert (tmp_path / "strata.yml").read_text() == before
