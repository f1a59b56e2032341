"""Hostile names in every store: feature keys, fields, id columns and user columns that look like SQL.

What a key may hold is checked when it is made (letters, digits, ``_`` and ``-``: SQL keywords get
through; quotes, spaces and semicolons are refused in one line before any store sees them). Id
columns and user columns may be anything but ``strata_`` names: quotes, spaces, semicolons,
backslashes, unicode and keywords are written, read back, resolved, copied and deleted intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import strata as st
from strata.errors import DefinitionError
from tests.cli.conftest import _forget_project_modules  # noqa: F401 - autouse: the project's module is imported afresh
from tests.helpers import Cli, write_project
from tests.stores.conftest import StoreFactory

ID = 'it\'s "id"; drop table x;--'
SUB = "sample uid \\ ü"
CHILD = 'frame "n"; select'
COLUMNS = ('note; it\'s "quoted" DROP TABLE video;--', "back\\slash", "ünï cødé ✓", "select", '"', "'")
VALUES = ["'; DROP TABLE x;--", 'a "b" \\ c', "ü 𝄞", "x' OR '1'='1"]
ROOT, FLAT, KIDS, FOLD = "select/drop-table", "table/where", "group/by", "having"


def hostile_graph() -> st.FeatureGraph:
    """A root with two hostile id columns; an identity, an expansion (hostile child id) and an aggregation."""
    graph = st.FeatureGraph()
    ids = [ID, SUB]
    with graph.use():
        for spec in (
            st.FeatureSpec(ROOT, id_columns=ids, fields=["select", "from"]),
            st.FeatureSpec(
                FLAT, id_columns=ids, deps=[ROOT], fields=[st.FieldSpec("drop", "1", [st.FieldDep(ROOT, ["select"])])]
            ),
            st.FeatureSpec(
                KIDS, id_columns=[*ids, CHILD], deps=[st.FeatureDep(ROOT, st.Lineage.expansion(ids))], fields=["order"]
            ),
            st.FeatureSpec(
                FOLD, id_columns=ids, deps=[st.FeatureDep(KIDS, st.Lineage.aggregation(ids))], fields=["union"]
            ),
        ):
            graph.add_spec(spec)
    return graph


def roots(select: dict[int, str] | None = None) -> pl.DataFrame:
    select = select or {}
    n = len(VALUES)
    frame = pl.DataFrame(
        {
            ID: VALUES,
            SUB: list(reversed(VALUES)),
            "strata_dv__select": [select.get(i, f"s{i}") for i in range(n)],
            "strata_dv__from": [f"f{i}" for i in range(n)],
        }
    )
    return frame.with_columns(pl.Series(c, [f"{v}|{c}" for v in VALUES]) for c in COLUMNS)


def build(store: st.MetadataStore) -> dict[str, dict[str, int]]:
    """Bring every downstream feature up to date; the counts of each increment."""
    seen = {}
    for key in (FLAT, KIDS, FOLD):
        inc = store.resolve_update(key)
        seen[key] = inc.counts()
        added = inc.added.to_native()
        new = pl.concat([added, inc.changed.to_native().select(added.columns)])
        if key == KIDS:
            new = new.join(pl.DataFrame({CHILD: ["'", '"', ";--"]}), how="cross")
        if len(new):
            store.write(key, new)
        if len(inc.removed):
            store.delete(key, inc.removed.to_native())
    return seen


def every_row(store: st.MetadataStore, key: str) -> list[tuple[Any, ...]]:
    frame = store.read(key, feature_version="all", include_deleted=True).drop("strata_seq")
    return sorted(frame.select(sorted(frame.columns)).rows(), key=repr)


def test_hostile_ids_and_columns_are_written_read_resolved_copied_and_deleted_intact(
    store_factory: StoreFactory,
) -> None:
    with st.InMemoryStore(graph=hostile_graph()) as source, store_factory(graph=hostile_graph()) as store:
        source.write_changed(ROOT, roots())
        build(source)
        assert store.copy_from(source) == {ROOT: 4, FLAT: 4, KIDS: 12, FOLD: 4}
        for key in (ROOT, FLAT, KIDS, FOLD):
            assert every_row(store, key) == every_row(source, key), key
        back = store.read(ROOT).to_native().sort(ID)
        assert back.select(roots().columns).equals(roots().sort(ID))
        assert all(store.resolve_update(key).is_empty for key in (FLAT, KIDS, FOLD))

        assert store.write_changed(ROOT, roots(select={1: "new"})) == {"added": 0, "changed": 1, "unchanged": 3}
        flat = store.resolve_update(FLAT)
        assert flat.changed.to_native()[ID].to_list() == [VALUES[1]]
        assert flat.changed.to_native()["strata_cause__drop"].to_list() == ["select.drop-table.select"]
        assert build(store)[FOLD] == {"added": 0, "changed": 1, "removed": 0}

        store.delete(ROOT, pl.DataFrame({ID: [VALUES[0]], SUB: [VALUES[-1]]}))
        store.delete(ROOT, pl.DataFrame({ID: [VALUES[2]], SUB: [VALUES[1]]}), soft=False)
        assert {k: c["removed"] for k, c in build(store).items()} == {FLAT: 2, KIDS: 2, FOLD: 2}
        assert sorted(store.read(FOLD).to_native()[ID].to_list()) == sorted([VALUES[1], VALUES[3]])
        assert len(store.read(ROOT, include_deleted=True)) == 3
        assert store.delete_preview(ROOT) == 2

        mirror = st.InMemoryStore(graph=hostile_graph())
        with mirror:
            mirror.copy_from(store)
            for key in (ROOT, FLAT, KIDS, FOLD):
                assert every_row(mirror, key) == every_row(store, key), key
            assert store.copy_from(mirror) == dict.fromkeys((ROOT, FLAT, KIDS, FOLD), 0)


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda: st.FeatureSpec("drop table x;--", fields=["a"]), "feature key"),
        (lambda: st.FeatureSpec("it's", fields=["a"]), "feature key"),
        (lambda: st.FeatureSpec('a"b', fields=["a"]), "feature key"),
        (lambda: st.FeatureSpec("a b", fields=["a"]), "feature key"),
        (lambda: st.FeatureSpec("a/b;c", fields=["a"]), "feature key"),
        (lambda: st.FeatureSpec("ok", fields=["x; drop"]), "field key"),
        (lambda: st.FeatureSpec("ok", fields=["it's"]), "field key"),
        (lambda: st.FeatureSpec("ok", id_columns=["strata_dv__x"], fields=["a"]), "id column"),
    ],
)
def test_a_key_no_store_could_name_is_refused_in_one_line_before_any_store_sees_it(make: Any, what: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        make()
    assert what in str(caught.value)
    assert "\n" not in str(caught.value)


def test_nested_and_enum_columns_with_hostile_names_read_back_intact(store_factory: StoreFactory) -> None:
    """Struct fields and enum values are names too; a store that keeps nested values as JSON text gives that text."""
    nested = {'x"; drop table r;--': 1, "it's": "q"}
    frame = pl.DataFrame(
        {
            "sample_uid": [1, 2],
            "strata_dv__select": ["a", "b"],
            "strata_dv__from": ["c", "d"],
            "s;truct": [nested, nested],
            "l'ist": [[{'k"': 1}], []],
            'e"num': pl.Series(["a'b", 'c"d']).cast(pl.Enum(["a'b", 'c"d'])),
        }
    )
    graph = st.FeatureGraph()
    graph.add_spec(st.FeatureSpec(ROOT, fields=["select", "from"]))
    with store_factory(graph=graph) as store:
        store.write(ROOT, frame)
        store.write(ROOT, frame.with_columns(strata_dv__from=pl.lit("e")))
        back = store.read(ROOT).to_native().sort("sample_uid")
    for column in ("s;truct", "l'ist", 'e"num'):
        values = [json.loads(v) if isinstance(v, str) and column != 'e"num' else v for v in back[column].to_list()]
        assert values == frame[column].to_list(), column


CLI_GRAPH = f"""
import strata as st

class Root(st.Feature, spec=st.FeatureSpec({ROOT!r}, id_columns=[{ID!r}], fields=["select", "from"])):
    pass

class Flat(st.Feature, spec=st.FeatureSpec({FLAT!r}, id_columns=[{ID!r}], deps=[Root], fields=["drop"])):
    pass
"""


def test_hostile_names_through_the_command_line(
    store_factory: StoreFactory, strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status, copy and delete (soft and hard) by hostile id values, in a project whose stores are of this kind."""
    store = store_factory()
    path = getattr(store, "path", ":memory:")
    if str(path) == ":memory:":
        pytest.skip(f"{store.describe()} lives in one process: the command line cannot reach it")
    root = tmp_path / "proj"
    project_yml = (
        "version: 1\nfeatures:\n  entrypoints: [hostile_cli.graph]\n  store: a\nstores:\n"
        f"  a: {{type: {store.kind}, path: {json.dumps(str(path))}}}\n"
        f"  b: {{type: {store.kind}, path: {json.dumps(str(path) + '.copy')}}}\n"
    )
    write_project(root, project_yml)
    (root / "hostile_cli").mkdir()
    (root / "hostile_cli" / "__init__.py").write_text("", encoding="utf-8")
    (root / "hostile_cli" / "graph.py").write_text(CLI_GRAPH, encoding="utf-8")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    frame = roots().drop(SUB)
    graph = hostile_graph_of_cli()
    with store_factory(graph=graph) as opened:
        opened.write_changed(ROOT, frame)
    status = strata("status", "--json")
    assert status.code == 0, status.err
    assert "select/drop-table" in status.out
    copied = strata("metadata", "copy", "--from", "a", "--to", "b", "--json")
    assert copied.code == 0, copied.err
    assert copied.json()["copied"] == {ROOT: len(VALUES), FLAT: 0}
    soft = strata("metadata", "delete", ROOT, "--id", VALUES[0], "--store", "b")
    assert soft.code == 0, soft.err
    assert soft.out.startswith(f"deleted 1 samples of {ROOT} in b")
    hard = strata("metadata", "delete", ROOT, "--id", VALUES[1], "--hard", "--store", "b")
    assert hard.code == 0, hard.err
    with type(store)(str(path) + ".copy", graph=graph) as copy:  # type: ignore[call-arg]
        left = copy.read(ROOT, include_deleted=True).to_native()
        assert sorted(left[ID].to_list()) == sorted([VALUES[0], VALUES[2], VALUES[3]])
        assert left.filter(pl.col("strata_deleted"))[ID].to_list() == [VALUES[0]]
        assert sorted(left.columns) == sorted({*frame.columns, *left.columns})
        kept = left.filter(pl.col(ID) == VALUES[3]).select(frame.columns)
        assert kept.to_dicts() == frame.filter(pl.col(ID) == VALUES[3]).to_dicts()
    bad = strata("metadata", "delete", "drop table x;--", "--id", "1")
    assert bad.code == 2
    assert bad.err.count("\n") == 1
    assert "drop table x;--" in bad.err


def hostile_graph_of_cli() -> st.FeatureGraph:
    """The graph ``CLI_GRAPH`` declares, for the Python side of the test."""
    graph = st.FeatureGraph()
    graph.add_spec(st.FeatureSpec(ROOT, id_columns=[ID], fields=["select", "from"]))
    graph.add_spec(st.FeatureSpec(FLAT, id_columns=[ID], deps=[ROOT], fields=["drop"]))
    return graph


def test_columns_that_differ_only_in_case_are_kept_apart_or_refused_in_one_line(store_factory: StoreFactory) -> None:
    """An engine that folds the case of names cannot keep ``note`` and ``NOTE`` apart: it must say so, not mix them."""
    graph = st.FeatureGraph()
    graph.add_spec(st.FeatureSpec(ROOT, fields=["select", "from"]))
    first = pl.DataFrame({"sample_uid": [1], "strata_dv__select": ["a"], "strata_dv__from": ["b"], "note": ["lower"]})
    with store_factory(graph=graph) as store:
        store.write(ROOT, first)
        for extra in ({"NOTE": ["upper"]}, {"Note": ["title"]}):
            later = first.drop("note").with_columns(sample_uid=pl.lit(2), **{k: pl.Series(v) for k, v in extra.items()})
            both = first.with_columns(**{k: pl.Series(v) for k, v in extra.items()})
            for frame in (both, later):
                try:
                    store.write(ROOT, frame)
                except st.StrataError as refused:
                    message = str(refused)
                    assert "case" in message
                    assert store.describe() in message
                    assert "\n" not in message
                    continue
                back = store.read(ROOT).to_native().sort("sample_uid")
                assert back.filter(pl.col("sample_uid") == frame["sample_uid"][0]).select(frame.columns).equals(frame)
        assert store.read(ROOT).to_native().filter(pl.col("sample_uid") == 1)["note"].to_list() == ["lower"]


def test_a_copy_of_columns_that_differ_only_in_case_is_kept_apart_or_refused_in_one_line(
    store_factory: StoreFactory,
) -> None:
    graph = st.FeatureGraph()
    graph.add_spec(st.FeatureSpec(ROOT, fields=["select", "from"]))
    frame = pl.DataFrame(
        {"sample_uid": [1], "strata_dv__select": ["a"], "strata_dv__from": ["b"], "note": ["lower"], "NOTE": ["upper"]}
    )
    with st.InMemoryStore(graph=graph) as source, store_factory(graph=graph) as store:
        source.write(ROOT, frame)
        try:
            store.copy_from(source)
        except st.StrataError as refused:
            message = str(refused)
            assert "case" in message
            assert store.describe() in message
            assert not store.has_feature(ROOT)
            return
        assert store.read(ROOT).to_native().select(frame.columns).equals(frame)
