"""target-strata: Singer streams into the metadata store as root features, through `strata run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from strata.features.versions import sample_hash
from tests.helpers import Result, run_strata, write_project

TAP = """
import json, os, sys, time
for line in open(os.environ["FAKE_TAP_MESSAGES"]):
    message = json.loads(line)
    if "wait_for" in message:  # until strata stored a state that says this
        sys.stdout.flush()
        deadline = time.monotonic() + 60
        path = os.path.join(os.environ["STRATA_SYS_DIR_ROOT"], "state")
        while time.monotonic() < deadline:
            found = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f == "state.json"]
            if any(message["wait_for"] in open(f).read() for f in found):
                break
            time.sleep(0.05)
    elif "raw" in message:
        print(message["raw"], flush=True)
    else:
        print(json.dumps(message))
"""

SCHEMA = {
    "type": "SCHEMA",
    "stream": "users",
    "schema": {
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "_sdc_extracted_at": {"type": "string"},
        }
    },
    "key_properties": ["id"],
}


def record(i: int, name: str | None = None, score: float | None = None, **extra: Any) -> dict[str, Any]:
    body = {"id": i, "name": name if name is not None else f"n{i}", "score": score if score is not None else i / 2}
    return {"type": "RECORD", "stream": "users", "record": {**body, "tags": ["a"], "_sdc_extracted_at": "t", **extra}}


def state(i: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"users": {"id": i}}}}


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.messages = root / "messages.jsonl"
        tap = root / "fake-tap"
        tap.write_text(f"#!{sys.executable}\n{TAP}")
        tap.chmod(0o755)
        catalog = root / "catalog.json"
        catalog.write_text(json.dumps({"streams": []}))
        write_project(
            root,
            f"""
            default_environment: dev
            environments: [{{name: dev}}]
            plugins:
              extractors:
                - {{name: tap-fake, executable: {tap}, catalog: {catalog}}}
              loaders:
                - name: target-strata
                  config: {{flush_seconds: 0.2}}
            """,
        )

    def define(self, feature_class: str) -> None:
        """Add a feature module ``feats`` holding ``feature_class`` (polars and strata imported)."""
        (self.root / "feats.py").write_text("import polars as pl\nimport strata as st\n" + feature_class)
        text = (self.root / "strata.yml").read_text() + "features: {entrypoints: [feats]}\n"
        (self.root / "strata.yml").write_text(text)

    def feed(self, *messages: dict[str, Any]) -> None:
        self.messages.write_text("".join(json.dumps(m) + "\n" for m in messages))

    def strata(self, *args: str) -> Result:
        return run_strata(*args, cwd=self.root, env={"FAKE_TAP_MESSAGES": str(self.messages)})

    def run(self, *blocks: str) -> Result:
        return self.strata("--json", "run", "tap-fake", "target-strata", *blocks)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.root / ".strata" / "metadata.duckdb"), read_only=True) as con:
            return con.execute(query).fetchall()

    def log_of(self, run: Result) -> str:
        """The run log of a ``--json`` run."""
        return Path(run.json()[0]["log"]).read_text()

    def state(self) -> Any:
        done = self.strata("--json", "state", "get", "dev:tap-fake-to-target-strata")
        return done.json() if done.code == 0 else None


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_a_stream_becomes_a_root_feature_with_a_hash_per_field(project: Project) -> None:
    project.feed(SCHEMA, *(record(i) for i in range(1, 6)), state(5))
    done = project.run()
    assert done.code == 0, done.err
    listed = project.strata("--json", "features", "list").json()
    users = next(f for f in listed if f["key"] == "users")
    assert users["fields"] == ["name", "score", "tags"]
    rows = project.rows(
        'SELECT id, name, score, tags, "_sdc_extracted_at", strata_dv__name, strata_dv__score, strata_dv__tags '
        "FROM users ORDER BY id"
    )
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    first = rows[0]
    assert first[1:5] == ("n1", 0.5, ["a"], "t")  # an array of strings is a list; it hashes as its JSON text
    assert first[5] == sample_hash("md5", ["n1"])
    assert first[6] == sample_hash("md5", ["0.5"])
    assert first[7] == sample_hash("md5", ['["a"]'])
    assert "bookmarks" in json.dumps(project.state())


def test_unchanged_records_add_no_rows_and_a_changed_column_changes_only_its_field(project: Project) -> None:
    project.feed(SCHEMA, *(record(i) for i in range(1, 6)), state(5))
    assert project.run().code == 0
    project.feed(SCHEMA, *(record(i, _sdc_extracted_at="later") for i in range(1, 6)), state(5))
    assert project.run().code == 0
    assert project.rows('SELECT count(*) FROM "users$history"') == [(0,)]
    project.feed(SCHEMA, *(record(i, name="new" if i in (2, 4) else None) for i in range(1, 6)), state(5))
    assert project.run().code == 0
    history = project.rows('SELECT id FROM "users$history" ORDER BY id')
    assert history == [(2,), (4,)]
    status = project.strata("--json", "status").json()
    assert next(f for f in status["features"] if f["feature"] == "users")["samples"] == 5


def test_deleted_records_and_activate_version_remove_samples(project: Project) -> None:
    version = {"type": "ACTIVATE_VERSION", "stream": "users", "version": 7}
    versioned = [{**record(i), "version": 7} for i in range(1, 6)]
    project.feed(SCHEMA, version, *versioned, version, state(5))
    assert project.run().code == 0
    assert project.rows("SELECT count(*) FROM users WHERE NOT strata_deleted") == [(5,)]
    # the next full sync no longer has ids 2 and 3; id 5 comes with _sdc_deleted_at
    later = {**version, "version": 8}
    rows = [{**record(i), "version": 8} for i in (1, 4)] + [{**record(5, _sdc_deleted_at="2024-01-01"), "version": 8}]
    project.feed(SCHEMA, later, *rows, later, state(5))
    done = project.run()
    assert done.code == 0, done.err
    live = project.rows("SELECT id FROM users WHERE NOT strata_deleted ORDER BY id")
    assert live == [(1,), (4,)]


def test_state_is_stored_only_for_rows_that_were_committed(project: Project) -> None:
    project.feed(SCHEMA, record(1), record(2), state(2), {"wait_for": '"id": 2'}, record(3), {"raw": "x"}, state(3))
    done = project.run()
    assert done.code == 1
    assert "target-strata" in done.err
    assert "not Singer JSON" in done.err or "not json" in done.err.lower()
    assert project.rows("SELECT id FROM users ORDER BY id") == [(1,), (2,)]
    assert project.state()["effective"]["singer_state"] == {"bookmarks": {"users": {"id": 2}}}
    runs = project.strata("--json", "runs", "list").json()
    assert [r["status"] for r in runs] == ["failed"]


def test_a_record_for_an_undeclared_stream_fails_the_run_and_writes_nothing(project: Project) -> None:
    project.feed(SCHEMA, record(1), {"type": "RECORD", "stream": "ghosts", "record": {"id": 1}}, state(1))
    done = project.run()
    assert done.code == 1
    assert "a RECORD for stream `ghosts` came before any SCHEMA" in done.err
    assert done.err.count("\n") == 1
    assert project.state() is None
    assert not (project.root / ".strata" / "metadata.duckdb").exists() or project.rows(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'"
    ) == [(0,)]


def test_a_feature_defined_in_code_must_fit_its_stream(project: Project) -> None:
    (project.root / "feats.py").write_text(
        "import strata as st\n"
        "class Users(st.Feature, spec=st.FeatureSpec('users', id_columns=['uid'], fields=['name'])):\n"
        "    pass\n"
    )
    text = (project.root / "strata.yml").read_text() + "features: {entrypoints: [feats]}\n"
    (project.root / "strata.yml").write_text(text)
    project.feed(SCHEMA, record(1), state(1))
    done = project.run()
    assert done.code == 1
    assert "has key properties ['id'], but `users` has id columns ['uid']" in done.err
    assert project.state() is None


def test_a_reread_skips_samples_whose_values_are_stored_but_rewrites_them_for_a_new_code_version(
    project: Project,
) -> None:
    feats = project.root / "feats.py"
    spec = "st.FeatureSpec('users', id_columns=['id'], fields=[st.FieldSpec('name', code_version='{}'), 'score'])"
    feats.write_text("import strata as st\nclass Users(st.Feature, spec=" + spec.format("1") + "):\n    pass\n")
    (project.root / "strata.yml").write_text(
        (project.root / "strata.yml").read_text() + "features: {entrypoints: [feats]}\n"
    )
    project.feed(SCHEMA, *(record(i) for i in range(1, 5)))
    assert project.run().code == 0
    project.feed(SCHEMA, *(record(i, score=9.5 if i == 3 else None) for i in range(1, 5)))
    again = project.run()
    assert again.code == 0, again.err
    assert "4 records, 0 added, 1 changed, 3 unchanged, 0 removed" in project.log_of(again)
    assert project.rows('SELECT id FROM "users$history"') == [(3,)]
    feats.write_text("import strata as st\nclass Users(st.Feature, spec=" + spec.format("2") + "):\n    pass\n")
    project.feed(SCHEMA, *(record(i, score=9.5 if i == 3 else None) for i in range(1, 5)))
    rewritten = project.run()  # same values, but `name` is versioned anew: every sample is written again
    assert rewritten.code == 0, rewritten.err
    assert "4 records, 0 added, 4 changed, 0 unchanged, 0 removed" in project.log_of(rewritten)
    assert project.rows("SELECT DISTINCT strata_cv__name FROM users") == [("2",)]


def test_an_array_of_one_type_is_a_list_in_compute_and_keeps_the_data_version_its_json_text_had(
    project: Project,
) -> None:
    project.define(
        "class Tagged(st.Feature, spec=st.FeatureSpec('tagged', id_columns=['id'], deps=['users'],\n"
        "        fields=[st.FieldSpec('first_tag', deps=[st.FieldDep('users', ['tags'])]),\n"
        "                st.FieldSpec('tag_count', deps=[st.FieldDep('users', ['tags'])])])):\n"
        "    def compute(self, inputs):\n"
        "        tags = pl.col('tags')\n"
        "        return inputs['users'].select('id', tags.list.first().alias('first_tag'), tags.list.len().alias('tag_count'))\n"
    )
    untyped = json.loads(json.dumps(SCHEMA))
    untyped["schema"]["properties"]["tags"]["items"] = {}  # an array of anything: JSON text, as before lists
    project.feed(untyped, *(record(i, tags=["b", "c"][: i % 3]) for i in range(1, 4)))
    assert project.run().code == 0
    assert project.rows("SELECT id, tags, strata_dv__tags FROM users ORDER BY id") == [
        (1, '["b"]', sample_hash("md5", ['["b"]'])),
        (2, '["b","c"]', sample_hash("md5", ['["b","c"]'])),
        (3, "[]", sample_hash("md5", ["[]"])),
    ]
    project.feed(SCHEMA, *(record(i, tags=["b", "c"][: i % 3]) for i in range(1, 4)))
    done = project.run("features:build")
    assert done.code == 0, done.err
    assert project.rows('SELECT count(*) FROM "users$history"') == [(0,)]  # same text, same data version: unchanged
    assert project.rows("SELECT id, tags FROM users ORDER BY id") == [(1, ["b"]), (2, ["b", "c"]), (3, [])]
    assert project.rows("SELECT id, first_tag, tag_count FROM tagged ORDER BY id") == [
        (1, "b", 1),
        (2, "b", 2),
        (3, None, 0),
    ]


def test_ingest_and_build_in_one_run(project: Project) -> None:
    project.define(
        "class Shout(st.Feature, spec=st.FeatureSpec('shout', id_columns=['id'], deps=['users'],\n"
        "        fields=[st.FieldSpec('loud', deps=[st.FieldDep('users', ['name'])])])):\n"
        "    def compute(self, inputs):\n"
        "        return inputs['users'].select('id', pl.col('name').str.to_uppercase().alias('loud'))\n"
    )
    project.feed(SCHEMA, *(record(i) for i in range(1, 4)), state(3))
    done = project.run("features:build")
    assert done.code == 0, done.err
    [result] = done.json()
    assert [(b["feature"], b["added"], b["written"]) for b in result["builds"]] == [("shout", 3, 3)]
    assert project.rows("SELECT id, loud FROM shout ORDER BY id") == [(1, "N1"), (2, "N2"), (3, "N3")]
    runs = project.strata("--json", "runs", "list").json()
    assert len(runs) == 1
    assert runs[0]["blocks"] == ["tap-fake", "target-strata", "features:build"]
    assert runs[0]["status"] == "success"
    project.feed(SCHEMA, *(record(i, score=9.0) for i in range(1, 4)), state(3))  # a column shout does not use
    assert project.strata("run", "tap-fake", "target-strata").code == 0
    plan = project.strata("--json", "build", "--dry-run").json()
    assert [(f["feature"], f["added"], f["changed"], f["removed"]) for f in plan["features"]] == [("shout", 0, 0, 0)]


def test_salesforce_custom_fields_with_double_underscores_load_and_feed_a_downstream_feature(project: Project) -> None:
    project.define(
        "class Big(st.Feature, spec=st.FeatureSpec('big_deals', id_columns=['Id'], deps=['Opportunity'],\n"
        "        fields=[st.FieldSpec('amount_k', deps=[st.FieldDep('Opportunity', ['Amount_c'])])])):\n"
        "    def compute(self, inputs):\n"
        "        return inputs['Opportunity'].select('Id', (pl.col('Amount__c') / 1000).alias('amount_k'))\n"
    )
    schema = {
        "type": "SCHEMA",
        "stream": "Opportunity",
        "schema": {
            "properties": {
                "Id": {"type": "string"},
                "Name": {"type": "string"},
                "Amount__c": {"type": ["null", "number"]},
                "Region__c": {"type": ["null", "string"]},
            }
        },
        "key_properties": ["Id"],
    }

    def opportunity(i: int, amount: float) -> dict[str, Any]:
        body = {"Id": f"006{i}", "Name": f"deal {i}", "Amount__c": amount, "Region__c": "EMEA"}
        return {"type": "RECORD", "stream": "Opportunity", "record": body}

    project.feed(schema, opportunity(1, 1500.0), opportunity(2, 20000.0))
    done = project.run("features:build")
    assert done.code == 0, done.err
    listed = {f["key"]: f for f in project.strata("--json", "features", "list").json()}
    assert listed["Opportunity"]["fields"] == ["Name", "Amount_c", "Region_c"]
    assert project.rows(
        'SELECT "Id", "Amount__c", "strata_dv__Amount_c" IS NOT NULL FROM "Opportunity" ORDER BY 1'
    ) == [
        ("0061", 1500.0, True),
        ("0062", 20000.0, True),
    ]
    assert project.rows('SELECT "Id", amount_k FROM big_deals ORDER BY 1') == [("0061", 1.5), ("0062", 20.0)]
    project.feed(schema, opportunity(1, 3000.0), opportunity(2, 20000.0))
    assert project.strata("run", "tap-fake", "target-strata").code == 0
    plan = project.strata("--json", "build", "--dry-run").json()
    assert [(f["feature"], f["added"], f["changed"]) for f in plan["features"]] == [("big_deals", 0, 1)]


def test_several_streams_and_a_schema_change_midway(project: Project) -> None:
    orders = {
        "type": "SCHEMA",
        "stream": "orders",
        "schema": {"properties": {"order_id": {"type": "string"}, "total": {"type": "number"}}},
        "key_properties": ["order_id"],
    }
    properties: dict[str, Any] = {**SCHEMA["schema"]["properties"], "city": {"type": "string"}}  # type: ignore[index]
    wider = {**SCHEMA, "schema": {"properties": properties}}
    project.feed(
        SCHEMA,
        record(1, name='he said "SCHEMA"'),
        orders,
        {"type": "RECORD", "stream": "orders", "record": {"order_id": "a", "total": 1.5}},
        record(2),
        wider,
        record(3, city="Oslo"),
        {"type": "RECORD", "stream": "orders", "record": {"order_id": "b", "total": 2}},
        state(3),
    )
    done = project.run()
    assert done.code == 0, done.err
    assert project.rows("SELECT id, name, city FROM users ORDER BY id") == [
        (1, 'he said "SCHEMA"', None),
        (2, "n2", None),
        (3, "n3", "Oslo"),
    ]
    assert project.rows("SELECT order_id, total FROM orders ORDER BY 1") == [("a", 1.5), ("b", 2.0)]
    listed = {f["key"]: f["fields"] for f in project.strata("--json", "features", "list").json()}
    assert listed == {"orders": ["total"], "users": ["name", "score", "tags", "city"]}


def test_the_builtin_loader_needs_no_declaration_and_takes_config(project: Project) -> None:
    text = (project.root / "strata.yml").read_text()
    (project.root / "strata.yml").write_text(text.split("  loaders:")[0])  # no loaders declared at all
    done = project.strata("config", "target-strata", "set", "key_prefix", "raw/")
    assert done.code == 0, done.err
    assert "stored in strata.yml" in done.out
    listed = project.strata("config", "target-strata", "list").out
    assert "key_prefix=raw/ (from strata.yml" in listed
    assert not (project.root / ".env").exists()
    project.feed(SCHEMA, record(1), state(1))
    assert project.run().code == 0
    assert [f["key"] for f in project.strata("--json", "features", "list").json()] == ["raw/users"]


def test_the_last_record_of_a_sample_wins_and_a_line_over_16_mb_is_read(project: Project) -> None:
    big = "x" * (17 << 20)
    project.feed(SCHEMA, record(1), record(2), record(1, name="again"), record(3, name=big), state(3))
    done = project.run()
    assert done.code == 0, done.err
    assert project.rows("SELECT id, name, strlen(name) FROM users WHERE id < 3 ORDER BY id") == [
        (1, "again", 5),
        (2, "n2", 2),
    ]
    assert project.rows("SELECT strlen(name), strata_dv__name FROM users WHERE id = 3") == [
        (len(big), sample_hash("md5", [big]))
    ]
    assert project.rows('SELECT count(*) FROM "users$history"') == [(0,)]


def test_a_record_without_its_key_fails_the_run_and_writes_nothing(project: Project) -> None:
    project.feed(SCHEMA, record(1), {**record(2), "record": {**record(2)["record"], "id": None}}, state(2))
    done = project.run()
    assert done.code == 1
    assert "1 record(s) of stream `users` have no value for a key property (id)" in done.err
    assert project.state() is None
    assert not (project.root / ".strata" / "metadata.duckdb").exists() or project.rows(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'"
    ) == [(0,)]


def test_a_killed_loader_leaves_no_scratch_behind_the_next_one(project: Project) -> None:
    from strata.bridge.target import DEFAULT_CHUNK_BYTES, scratch_dir

    target = Path(sys.executable).with_name("target-strata")
    env = {**os.environ, "STRATA_PROJECT_ROOT": str(project.root)}
    scratch = Path(scratch_dir(DEFAULT_CHUNK_BYTES) or tempfile.gettempdir())
    with subprocess.Popen([str(target)], stdin=subprocess.PIPE, env=env, cwd=project.root) as proc:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(SCHEMA) + "\n").encode())
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not list(scratch.glob(f"target-strata-{proc.pid}-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(scratch.glob(f"target-strata-{proc.pid}-*")), "the loader made its scratch dir"
        proc.send_signal(signal.SIGKILL)
    assert list(scratch.glob(f"target-strata-{proc.pid}-*"))  # left behind by the kill
    project.feed(SCHEMA, record(1), state(1))
    assert project.run().code == 0
    assert not list(scratch.glob(f"target-strata-{proc.pid}-*"))
    assert project.rows("SELECT id FROM users") == [(1,)]


def test_data_versions_of_a_large_batch_with_repeating_values_are_those_of_each_value(project: Project) -> None:
    """Thousands of records whose fields repeat a few values (flags, a status, nulls, 0.0 and -0.0) or never.

    Every data version is the hash of its value's own text, on a first load and on a re-read that
    changes some records, whichever way the loader computes it.
    """
    schema = json.loads(json.dumps(SCHEMA))
    schema["schema"]["properties"].update(
        {"status": {"type": ["null", "string"]}, "flag": {"type": "boolean"}, "level": {"type": "integer"}}
    )
    scores = (0.0, -0.0, 2.5)

    def row(i: int, status: str = "open") -> dict[str, Any]:
        extra: dict[str, Any] = {"status": None if i % 5 == 0 else status, "flag": i % 2 == 0, "level": i % 3}
        return record(i, score=scores[i % 3], tags=["a", "b"][: i % 2 + 1], **extra)

    def expected(i: int, status: str = "open") -> tuple[Any, ...]:
        texts: list[str | None] = [
            f"n{i}",
            str(scores[i % 3]),
            json.dumps(["a", "b"][: i % 2 + 1], separators=(",", ":")),
        ]
        texts += [None if i % 5 == 0 else status, "true" if i % 2 == 0 else "false", str(i % 3)]
        return (i, *(sample_hash("md5", [text]) for text in texts))

    query = (
        "SELECT id, strata_dv__name, strata_dv__score, strata_dv__tags, strata_dv__status, strata_dv__flag, "
        "strata_dv__level FROM users ORDER BY id"
    )
    count = 6000
    project.feed(schema, *(row(i) for i in range(1, count + 1)), state(count))
    done = project.run()
    assert done.code == 0, done.err
    assert project.rows(query) == [expected(i) for i in range(1, count + 1)]
    assert project.rows("SELECT count(DISTINCT strata_dv__score) FROM users") == [(3,)]  # 0.0 and -0.0 differ
    project.feed(schema, *(row(i, "closed" if i > 500 else "open") for i in range(1, count + 1)), state(count))
    again = project.run()
    assert again.code == 0, again.err
    changed = sum(1 for i in range(501, count + 1) if i % 5)
    assert f"{count} records, 0 added, {changed} changed, {count - changed} unchanged" in project.log_of(again)
    assert project.rows(query) == [expected(i, "closed" if i > 500 else "open") for i in range(1, count + 1)]


def test_a_key_that_changes_type_fails_the_run_in_one_line_and_writes_nothing(project: Project) -> None:
    project.feed(SCHEMA, record(1), record(2), state(2))
    assert project.run().code == 0
    before = project.rows("SELECT * FROM users ORDER BY id")
    texts = {**SCHEMA, "schema": {"properties": {**SCHEMA["schema"]["properties"], "id": {"type": "string"}}}}  # type: ignore[index]
    project.feed(texts, {**record(3), "record": {**record(3)["record"], "id": "u3"}}, state(3))
    done = project.run()
    assert done.code == 1, done.err
    lines = [line for line in done.err.splitlines() if "cannot write feature users" in line]
    assert len(lines) == 1, done.err
    assert "column `id` holds String, stored as Int64; " in lines[0], done.err
    assert "Traceback" not in done.err
    assert project.rows("SELECT * FROM users ORDER BY id") == before
    assert project.state()["effective"] == {"singer_state": {"bookmarks": {"users": {"id": 2}}}}
