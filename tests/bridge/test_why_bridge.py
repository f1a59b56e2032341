"""``strata why`` across the bridge: a root loaded by target-strata names its stream, key and the run per field."""

from __future__ import annotations

from tests.bridge.test_target_strata import SCHEMA, Project, project, record, state  # noqa: F401 - project: a fixture


def test_a_root_from_target_strata_names_its_stream_key_and_the_run_that_changed_each_field(
    project: Project,  # noqa: F811 - the fixture
) -> None:
    project.feed(SCHEMA, *(record(i) for i in range(1, 4)), state(3))
    first = project.run()
    assert first.code == 0, first.err
    project.feed(SCHEMA, *(record(i, name="renamed" if i == 2 else None) for i in range(1, 4)), state(3))
    second = project.run()
    assert second.code == 0, second.err
    runs = [first.json()[0]["run_id"], second.json()[0]["run_id"]]
    assert project.rows('SELECT DISTINCT "_strata_stream", "_strata_run" FROM users ORDER BY 2') == sorted(
        [("users", runs[0]), ("users", runs[1])], key=lambda r: r[1]
    )
    found = project.strata("--json", "why", "users", "2")
    assert found.code == 0, found.err
    (node,) = found.json()["samples"][0]["lineage"]
    assert node["source"] == {"stream": "users", "key": {"id": 2}}
    assert {f["field"]: f["run"] for f in node["fields"]} == {"name": runs[1], "score": runs[0], "tags": runs[0]}
    assert (
        project.strata("--json", "why", "users", "1").json()["samples"][0]["lineage"][0]["fields"][0]["run"]
        == (runs[0])
    )
    text = project.strata("why", "users", "id=2").out.splitlines()
    assert text[2] == "    stream users, record key id=2"
    assert text[3].startswith("    name   ")
    assert f"changed by run {runs[1][:8]} at " in text[3]
