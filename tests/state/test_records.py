"""State records, Meltano's merge rules, state ids, and the JSON the CLI accepts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.errors import StateBackendError, StateIdError, UsageError
from strata.state import (
    StateRecord,
    check_state_id,
    complete,
    make_state_id,
    merge_dicts,
    merge_partial,
    parse_state,
)
from strata.state.ids import MAX_LENGTH, is_state_id

# -- merging --------------------------------------------------------------------------------


def test_merge_recurses_into_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"d": 1}}
    overlay = {"a": {"y": [3], "z": None}, "b": {"now": "a mapping"}, "c": 5}
    assert merge_dicts(base, overlay) == {"a": {"x": 1, "y": [3], "z": None}, "b": {"now": "a mapping"}, "c": 5}


def test_merge_changes_neither_argument() -> None:
    base = {"a": {"x": [1]}}
    overlay = {"a": {"y": {"z": 1}}}
    merged = merge_dicts(base, overlay)
    merged["a"]["x"].append(2)
    merged["a"]["y"]["z"] = 2
    assert base == {"a": {"x": [1]}}
    assert overlay == {"a": {"y": {"z": 1}}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@settings(max_examples=60)
@given(json_objects, json_objects)
def test_the_overlay_wins_and_every_key_stays(base: dict[str, object], overlay: dict[str, object]) -> None:
    merged = merge_dicts(base, overlay)
    assert set(merged) == set(base) | set(overlay)
    for key, value in merged.items():
        if key not in overlay:
            assert value == base[key]
        elif not (isinstance(overlay[key], dict) and isinstance(base.get(key), dict)):
            assert value == overlay[key]
    assert merge_dicts(merged, overlay) == merged
    assert merge_dicts(base, base) == base


def test_effective_state_is_partial_merged_onto_completed() -> None:
    record = StateRecord({"singer_state": {"a": 1, "b": 1}}, {"singer_state": {"b": 2, "c": 3}})
    assert record.effective() == {"singer_state": {"a": 1, "b": 2, "c": 3}}
    assert StateRecord().effective() is None
    assert StateRecord(None, {"singer_state": {"b": 2}}).effective() == {"singer_state": {"b": 2}}


def test_merge_partial_keeps_completed_and_complete_clears_partial() -> None:
    record = merge_partial(None, {"singer_state": {"a": 1}})
    assert record == StateRecord(None, {"singer_state": {"a": 1}})
    record = merge_partial(StateRecord({"singer_state": {"z": 0}}, record.partial), {"singer_state": {"b": 2}})
    assert record == StateRecord({"singer_state": {"z": 0}}, {"singer_state": {"a": 1, "b": 2}})
    assert record.updated_at is not None
    done = complete(record, record.effective())
    assert done == StateRecord({"singer_state": {"z": 0, "a": 1, "b": 2}}, None)
    assert complete(done, None) == StateRecord(None, None)


def test_documents_round_trip_and_meltanos_state_json_reads() -> None:
    record = StateRecord({"singer_state": {"a": 1}}, {"singer_state": {"b": 2}})
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    again = StateRecord.from_document(record.to_document(stamp), "x")
    assert again == record
    assert again.updated_at == stamp
    meltano = b'{"completed": {"singer_state": {"bookmarks": {}}}, "partial": {}}'
    read = StateRecord.from_document(meltano, "state.json", stamp)
    assert read == StateRecord({"singer_state": {"bookmarks": {}}}, None)
    assert read.updated_at == stamp


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"completed": [1]}', b'"text"'])
def test_a_broken_document_is_one_clear_error(data: bytes) -> None:
    with pytest.raises(StateBackendError, match=r"state\.json is not a state document"):
        StateRecord.from_document(data, "state.json")


# -- ids ------------------------------------------------------------------------------------


def test_make_state_id_is_meltanos_form() -> None:
    assert make_state_id("dev", "tap-postgres", "target-jsonl") == "dev:tap-postgres-to-target-jsonl"
    assert make_state_id("prod", "tap-x--eu", "target-y", "nightly") == "prod:tap-x--eu-to-target-y:nightly"
    assert make_state_id("dev", "tap-x", "target-y", "") == "dev:tap-x-to-target-y"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (("", "tap-x", "target-y", None), "the environment part of the state id is empty"),
        (("dev", "tap:x", "target-y", None), "the extractor part `tap:x` of the state id contains `:`"),
        (("dev", "tap-x", "target-y", "a:b"), "the suffix part `a:b` of the state id contains `:`"),
        (("dev", "tap-x", "target/y", None), "contains `/`"),
    ],
)
def test_make_state_id_refuses_bad_parts(parts: tuple[str, str, str, str | None], message: str) -> None:
    with pytest.raises(StateIdError, match=message):
        make_state_id(*parts)


@pytest.mark.parametrize(
    ("state_id", "message"),
    [
        ("", "the state id is empty"),
        ("a/b", "state id `a/b` contains `/`"),
        ("../x", "contains `/`"),
        ("..", "state id `..` contains `..`"),
        ("a..b", "contains `..`"),
        (".hidden", "starts with `.`"),
        ("a\\b", "contains `\\\\`"),
        ("x\0y", r"state id `x\\x00y` contains a NUL character"),
        ("x\ny", r"contains `\\n`"),
        ("x y", "contains a space"),
        ("%2e%2e", "contains `%`"),
        ("caf\u00e9", r"contains `\\xe9`"),
        ("x" * (MAX_LENGTH + 1), f"is {MAX_LENGTH + 1} characters long"),
    ],
)
def test_unsafe_state_ids_are_refused_with_a_reason(state_id: str, message: str) -> None:
    with pytest.raises(StateIdError, match=message) as refused:
        check_state_id(state_id)
    assert refused.value.exit_code == 2
    assert "\n" not in str(refused.value)
    assert not is_state_id(state_id)


@pytest.mark.parametrize(
    "state_id", ["dev:tap-x-to-target-y", "dev:tap-x-to-target-y:suffix", "a.b_c@d=e+f", "x" * MAX_LENGTH]
)
def test_meltano_style_ids_pass(state_id: str) -> None:
    assert check_state_id(state_id) == state_id


# -- JSON from the command line -------------------------------------------------------------


def test_parse_state_takes_meltanos_shape() -> None:
    assert parse_state('{"singer_state": {"bookmarks": {}}}') == {"singer_state": {"bookmarks": {}}}
    assert parse_state('{"bookmarks": {}}', require_singer_state=False) == {"bookmarks": {}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{a: 1}", "the state is not valid JSON"),
        ("", "the state is not valid JSON"),
        ("[1, 2]", "the state must be a JSON object, not list"),
        ('{"bookmarks": {}}', "the state has no `singer_state` object at the top level"),
        ('{"singer_state": 5}', "the state has a non-object `singer_state`"),
    ],
)
def test_parse_state_refuses_bad_json(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_state(text)
