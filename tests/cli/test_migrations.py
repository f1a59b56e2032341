"""``strata migrations generate | apply | status | list`` on a project with DuckDB stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from ruamel.yaml import YAML

from strata.features.project import load_graph, make_store
from strata.project.project import Project
from strata.stores.base import MetadataStore
from tests.cli.conftest import MakeProject
from tests.cli.test_graph_diff import CAPTIONS, GRAPH, write_graph
from tests.cli.test_graph_snapshots import GRAPH as SNAPSHOT_GRAPH
from tests.cli.test_graph_snapshots import STORES, current_version, versions, write_definitions
from tests.helpers import Cli

FILE = "migrations/0001_bump_audio.yaml"


@pytest.fixture
def root(make_project: MakeProject) -> Path:
    return make_project({"feats/graph.py": GRAPH.replace("{audio}", "1")}, extra=STORES)


def seed(root: Path, store: str = "prod") -> None:
    """Three video samples in ``store``, written under the code's graph."""
    project = Project.find(root)
    frame = pl.DataFrame({"sample_uid": [1, 2, 3], "strata_dv__audio": ["a1", "a2", "a3"]})
    frame = frame.with_columns(strata_dv__frames=pl.lit("f"), note=pl.format("n{}", "sample_uid"))
    with make_store(project, store, graph=load_graph(project)) as opened:
        opened.write("video", frame)


def read_file(root: Path, rel: str = FILE) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((root / rel).read_text(encoding="utf-8"))
    return data


def records(root: Path, store: str = "prod") -> list[dict[str, Any]]:
    project = Project.find(root)
    with make_store(project, store, read_only=True) as opened:
        return opened.migration_records()


def pushed_and_bumped(strata: Cli, root: Path, store: str = "prod") -> tuple[str, str]:
    """Push the graph to ``store``, then bump ``video.audio``'s code version; both snapshot versions."""
    assert strata("graph", "push", "--store", store).code == 0
    old = current_version(root)
    write_graph(root, audio="2")
    return old, current_version(root)


def test_generate_proposes_recompute_for_every_field_with_a_new_version(strata: Cli, root: Path) -> None:
    old, new = pushed_and_bumped(strata, root)
    result = strata("migrations", "generate", "--name", "bump_audio")
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"wrote {FILE}: 3 operations (0 reconcile, 3 recompute); review it, then run `strata migrations apply`"
    )
    data = read_file(root)
    assert list(data) == ["id", "parent", "from", "to", "created", "operations"]
    assert (data["id"], data["parent"], data["from"], data["to"]) == ("0001_bump_audio", None, old, new)
    assert data["operations"] == [
        {"feature": "video", "op": "recompute", "fields": ["audio"], "reason": "code version of field audio 1 -> 2"},
        {"feature": "transcript", "op": "recompute", "fields": ["text"], "reason": "text: reached by video.audio"},
        {"feature": "embedding", "op": "recompute", "fields": ["vector"], "reason": "vector: reached by video.audio"},
    ]
    again = strata("migrations", "generate")
    assert again.code == 0, again.err
    assert again.out.strip() == f"nothing to migrate: 0001_bump_audio already leads to the code's graph ({new})"
    assert sorted(p.name for p in (root / "migrations").iterdir()) == ["0001_bump_audio.yaml"]


def test_generate_reconciles_what_it_is_told_and_the_next_one_has_a_parent(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    result = strata("migrations", "generate", "--name", "bump_audio", "--reconcile", "video.audio")
    assert result.code == 0, result.err
    assert [(o["feature"], o["op"]) for o in read_file(root)["operations"]] == [
        ("video", "reconcile"),
        ("transcript", "recompute"),
        ("embedding", "recompute"),
    ]
    assert strata("migrations", "apply").code == 0  # a pending migration leading elsewhere: see below
    write_graph(root, audio="33")
    second = strata("migrations", "generate", "--reconcile", "transcript")
    assert second.code == 0, second.err
    data = read_file(root, "migrations/0002_graph_change.yaml")
    assert data["parent"] == "0001_bump_audio"
    assert [(o["feature"], o["op"]) for o in data["operations"]][:2] == [
        ("video", "recompute"),
        ("transcript", "reconcile"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reconcile", "video.nope"], "--reconcile `video.nope` names no feature or field with a new version"),
        (["--name", "Bad Name"], "--name `Bad Name` is not a migration name"),
    ],
)
def test_generate_bad_options_write_nothing(strata: Cli, root: Path, args: list[str], message: str) -> None:
    pushed_and_bumped(strata, root)
    result = strata("migrations", "generate", *args)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert not (root / "migrations").exists()


def test_generate_refuses_a_store_with_no_snapshot_and_says_when_nothing_changed(strata: Cli, root: Path) -> None:
    result = strata("migrations", "generate")
    assert result.code == 2
    assert "no graph was pushed to prod" in result.err
    assert "strata graph push" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert strata("graph", "push").code == 0
    same = strata("migrations", "generate")
    assert same.code == 0, same.err
    assert same.out.strip() == "nothing to migrate: the code and the latest snapshot in prod have the same graph"
    assert not (root / "migrations").exists()


def test_apply_records_each_operation_pushes_the_graph_and_is_idempotent(strata: Cli, root: Path) -> None:
    seed(root)
    old, new = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    dry = strata("migrations", "apply", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[0] == "0001_bump_audio #1: recompute video (audio): would run"
    assert records(root) == []
    assert versions(root) == [old]

    result = strata("migrations", "apply")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "0001_bump_audio #1: recompute video (audio): done, samples stale for `strata build`",
        "0001_bump_audio #2: recompute transcript (text): done, samples stale for `strata build`",
        "0001_bump_audio #3: recompute embedding (vector): done, samples stale for `strata build`",
        "applied 0001_bump_audio to prod",
    ]
    assert versions(root) == [new, old]
    kinds = [(r["kind"], r.get("operation")) for r in records(root)]
    assert sorted(kinds, key=str) == sorted(
        [("operation", 1), ("operation", 2), ("operation", 3), ("applied", None)], key=str
    )

    status = strata("migrations", "status")
    assert status.code == 0, status.err
    assert status.out.splitlines()[1].split()[0] == "0001_bump_audio"
    assert status.out.splitlines()[1].split()[-1] == "applied"
    assert status.out.strip().endswith(f"the code's graph ({new}) is the latest snapshot in prod")
    listed = json.loads(strata("migrations", "list", "--json").out)
    assert [(m["id"], m["state"], m["operations"]) for m in listed] == [("0001_bump_audio", "applied", 3)]

    again = strata("migrations", "apply")
    assert again.code == 0, again.err
    assert again.out.strip() == "nothing to apply: every migration is applied to prod"
    assert len(records(root)) == 4

    project = Project.find(root)
    with make_store(project, "prod", graph=load_graph(project), read_only=True) as store:
        samples = store.read("video").to_native().select("sample_uid", "strata_dv__audio", "strata_dv__frames")
        stale = store.resolve_update("video", samples=samples).changed.to_native()
    assert sorted(stale["sample_uid"].to_list()) == [1, 2, 3]
    assert set(stale["strata_cause__audio"].to_list()) == {"code"}
    assert set(stale["strata_cause__frames"].to_list()) == {None}


def test_a_chain_applies_to_its_first_store_only(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root, store="dev")
    assert strata("migrations", "generate", "--store", "dev", "--name", "bump_audio").code == 0
    result = strata("migrations", "apply", "--store", "dev")
    assert result.code == 0, result.err
    assert len(records(root, "dev")) == 4
    assert not (root / "prod.duckdb").exists() or records(root, "prod") == []


def test_a_from_snapshot_not_in_the_store_is_one_line_and_changes_nothing(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    result = strata("migrations", "apply", "--store", "dev")
    assert result.code == 2
    assert "migration 0001_bump_audio starts from snapshot" in result.err
    assert "which is not in dev" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert versions(root, "dev") == []


BAD_EDITS = [
    ("op: recompute", "op: rewrite", "operation 1: unknown op `rewrite`; use one of: reconcile, recompute"),
    ("feature: video", "feature: nope", "operation 1: unknown feature `nope`"),
    ("fields: [audio]", "fields: [nope]", "operation 1: unknown field `nope` of `video`"),
    ("parent:", "parent: 0000_gone #", "parent `0000_gone` is missing"),
    ("id: 0001_bump_audio", "id: 0001_other", "id `0001_other` is not the file's name"),
    ("op: recompute", "op: recompute\n  extra: 1", "unknown key `operations[0].extra`"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_EDITS)
def test_a_file_edited_into_a_bad_state_is_one_line_and_changes_nothing(
    strata: Cli, root: Path, old: str, new: str, message: str
) -> None:
    before, _ = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    path = root / FILE
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    graph_part = message.startswith("operation 1: unknown f")  # checked for migrations still to apply
    commands = [["apply"], ["apply", "--dry-run"], ["status", "--check"]]
    for command in commands if graph_part else [*commands, ["list"], ["generate"]]:
        result = strata("migrations", *command)
        assert result.code == 2, (command, result.out)
        assert "migrations/0001_bump_audio.yaml" in result.err
        assert message in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    assert records(root) == []
    assert versions(root) == [before]


def test_code_changed_past_the_last_migration_is_refused(strata: Cli, root: Path) -> None:
    before, generated = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    write_graph(root, audio="333")
    for args in (["apply"], ["apply", "--dry-run"]):
        result = strata("migrations", *args)
        assert result.code == 2
        assert f"migration 0001_bump_audio leads to snapshot {generated}, but the code's graph is " in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    assert records(root) == []
    assert versions(root) == [before]
    gate = strata("migrations", "status", "--check")
    assert gate.code == 1
    assert "no migration covers it" in gate.err


def test_operations_out_of_dependency_order_are_refused(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    data = read_file(root)
    data["operations"].reverse()
    with (root / FILE).open("w", encoding="utf-8") as out:
        YAML().dump(data, out)
    result = strata("migrations", "apply")
    assert result.code == 2
    assert "operation 2: `transcript` comes after a feature downstream of it" in result.err
    assert records(root) == []


def cli_run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``strata ARGS`` in a fresh process in the project, as a CI job runs it."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "strata", *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_status_check_is_a_ci_gate(strata: Cli, root: Path) -> None:
    assert cli_run(root, "migrations", "status", "--check").returncode == 0  # nothing pushed: nothing to check
    pushed_and_bumped(strata, root)
    gate = cli_run(root, "migrations", "status", "--check")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "differs from the latest snapshot in prod" in gate.stderr
    assert "no migration covers it" in gate.stderr
    assert "strata migrations generate" in gate.stderr
    assert len(gate.stderr.strip().splitlines()) == 1, gate.stderr
    assert cli_run(root, "migrations", "generate", "--name", "bump_audio").returncode == 0
    covered = cli_run(root, "migrations", "status", "--check")
    assert covered.returncode == 0, covered.stderr
    assert "migration 0001_bump_audio covers it" in covered.stdout
    assert "pending" in covered.stdout
    assert cli_run(root, "migrations", "apply").returncode == 0
    clean = cli_run(root, "migrations", "status", "--check")
    assert clean.returncode == 0, clean.stderr
    assert "is the latest snapshot in prod" in clean.stdout


def test_a_migration_from_a_snapshot_the_store_moved_past_covers_nothing(strata: Cli, root: Path) -> None:
    """A graph pushed after a migration was generated: the migration leads to the code, but not from the store's graph."""
    first, code = pushed_and_bumped(strata, root)
    assert cli_run(root, "migrations", "generate", "--name", "bump_audio").returncode == 0
    write_graph(root, audio="1", extra=CAPTIONS)  # another deploy pushes its graph before this one is applied
    assert strata("graph", "push").code == 0
    moved = current_version(root)
    write_graph(root, audio="2")
    assert current_version(root) == code
    gate = cli_run(root, "migrations", "status", "--check")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert f"migration 0001_bump_audio starts from snapshot {first}, not {moved}" in gate.stderr
    assert "delete migrations/0001_bump_audio.yaml and run `strata migrations generate`" in gate.stderr
    assert len(gate.stderr.strip().splitlines()) == 1, gate.stderr
    again = strata("migrations", "generate")
    assert again.code == 2
    assert again.err.startswith(f"strata: error: migration 0001_bump_audio starts from snapshot {first}, not {moved}")
    assert sorted(p.name for p in (root / "migrations").iterdir()) == ["0001_bump_audio.yaml"]
    (root / FILE).unlink()
    assert strata("migrations", "generate", "--name", "again").code == 0
    assert read_file(root, "migrations/0001_again.yaml")["from"] == moved
    assert cli_run(root, "migrations", "status", "--check").returncode == 0


KILLED_AFTER_FIRST_OPERATION = textwrap.dedent(
    """
    import os, signal, sys
    from strata.cli.app import cli
    from strata.stores.base import MetadataStore

    record = MetadataStore.record_migration

    def record_then_die(self, migration, data):
        record(self, migration, data)
        if data["kind"] == "operation":
            os.kill(os.getpid(), signal.SIGKILL)

    MetadataStore.record_migration = record_then_die
    sys.exit(cli(["migrations", "apply"]))
    """
)


def stored_state(root: Path) -> dict[str, Any]:
    """What an apply leaves in prod: progress per operation, snapshots, the video rows (times left out)."""
    progress = sorted((r["kind"], r["migration"], r.get("operation")) for r in records(root))
    project = Project.find(root)
    with make_store(project, "prod", graph=load_graph(project), read_only=True) as store:
        rows = store.read("video").to_native().drop("strata_written_at").sort("sample_uid").rows()
    return {"progress": [str(p) for p in progress], "snapshots": versions(root), "video": rows}


def test_an_apply_killed_between_two_operations_finishes_the_rest_on_rerun(
    strata: Cli, root: Path, make_project: MakeProject, tmp_path: Path
) -> None:
    twin = make_project({"feats/graph.py": GRAPH.replace("{audio}", "1")}, extra=STORES, root=tmp_path / "twin")
    for project in (root, twin):
        os.chdir(project)
        seed(project)
        pushed_and_bumped(strata, project)
        assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_FIRST_OPERATION],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert [(r["kind"], r["operation"]) for r in records(root)] == [("operation", 1)]
    assert "partial (1/3 operations)" in cli_run(root, "migrations", "status").stdout
    rerun = cli_run(root, "migrations", "apply")
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[0] == "0001_bump_audio #1: recompute video (audio): already done"
    assert cli_run(twin, "migrations", "apply").returncode == 0
    assert stored_state(root)["progress"] == stored_state(twin)["progress"]
    assert stored_state(root)["video"] == stored_state(twin)["video"]
    assert stored_state(root)["snapshots"][0] == current_version(root)


def test_definitions_that_no_longer_import_change_nothing(strata: Cli, root: Path) -> None:
    before, _ = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    write_definitions(root, "import strata as st\nraise ImportError('gone')\n")
    result = strata("migrations", "apply")
    assert result.code == 2
    assert "cannot import feature module `feats.graph`" in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    write_graph(root, audio="2")  # the checks below read the store through the definitions
    assert records(root) == []
    assert versions(root) == [before]


@pytest.mark.skipif(not hasattr(MetadataStore, "reconcile"), reason="reconcile lands from fix/reconcile")
def test_apply_reconciles_in_the_store_and_keeps_user_columns(strata: Cli, root: Path) -> None:
    seed(root)
    pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio", "--reconcile", "video").code == 0
    dry = strata("migrations", "apply", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[0] == "0001_bump_audio #1: reconcile video (audio): would run, 3 samples"
    assert records(root) == []
    result = strata("migrations", "apply")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "0001_bump_audio #1: reconcile video (audio): done, 3 samples"
    project = Project.find(root)
    with make_store(project, "prod", graph=load_graph(project), read_only=True) as store:
        stored = store.read("video").to_native().sort("sample_uid")
        samples = stored.select("sample_uid", "strata_dv__audio", "strata_dv__frames")
        assert store.resolve_update("video", samples=samples).is_empty
    assert stored["note"].to_list() == ["n1", "n2", "n3"]
    assert "is the latest snapshot in prod" in strata("migrations", "status", "--check").out


def test_an_applied_migration_may_name_a_feature_the_code_dropped_since(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    assert strata("migrations", "apply").code == 0
    write_definitions(root, SNAPSHOT_GRAPH.replace("{audio}", "2"))  # embedding is gone
    for command in (["status", "--check"], ["list"], ["apply"], ["generate"]):
        result = strata("migrations", *command)
        assert result.code == 0, (command, result.err)
    assert "no stored field has a new version" in strata("migrations", "status").out


def write_migration(root: Path, rel: str, data: dict[str, Any]) -> None:
    with (root / rel).open("w", encoding="utf-8") as out:
        YAML().dump(data, out)


def refused(result: Any, code: int, *parts: str) -> None:
    """``result`` failed with exit ``code`` and one error line holding every one of ``parts``."""
    assert result.code == code, (result.out, result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err
    for part in parts:
        assert part in result.err, result.err


def test_generate_refuses_while_a_pending_migration_leads_elsewhere(strata: Cli, root: Path) -> None:
    """The code changed again after 0001 was generated: the graph 0001 leads to is stored nowhere to diff from."""
    old, generated = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    write_graph(root, audio="33")
    code = current_version(root)
    message = f"migration 0001_bump_audio leads to snapshot {generated}, but the code's graph is {code}"
    advice = f"delete {FILE} and generate one migration for the whole change"
    refused(strata("migrations", "generate"), 2, message, advice, "or apply it with the code it was generated from")
    assert sorted(p.name for p in (root / "migrations").iterdir()) == ["0001_bump_audio.yaml"]
    refused(strata("migrations", "status", "--check"), 1, message, advice)
    (root / FILE).unlink()  # the advice, followed: one migration from the store's graph to the code's
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    assert (read_file(root)["from"], read_file(root)["to"]) == (old, code)
    assert strata("migrations", "status", "--check").code == 0
    assert strata("migrations", "apply").code == 0


def chained_after_first(strata: Cli, root: Path, start: str) -> tuple[str, str]:
    """0001 (old -> audio 2) pending, code at audio 33, and 0002 from ``start`` ("old" or "first") to it; both versions."""
    old, generated = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    write_graph(root, audio="33")
    second = read_file(root)
    second.update(id="0002_more", parent="0001_bump_audio", to=current_version(root))
    second["from"] = old if start == "old" else generated
    write_migration(root, "migrations/0002_more.yaml", second)
    return old, generated


def test_a_chain_broken_between_two_pending_migrations_is_named(strata: Cli, root: Path) -> None:
    old, generated = chained_after_first(strata, root, "old")
    message = f"migration 0002_more starts from snapshot {old}, but its parent 0001_bump_audio leads to {generated}"
    advice = f"delete {FILE}, migrations/0002_more.yaml and run `strata migrations generate`"  # 0001's graph: nowhere
    refused(strata("migrations", "status", "--check"), 1, message, advice)
    for command in (["apply"], ["apply", "--dry-run"], ["generate"]):
        refused(strata("migrations", *command), 2, message)
    assert "not " + old not in strata("migrations", "status").out  # never "from X, not X"
    assert records(root) == []
    assert versions(root) == [old]


def test_a_chain_of_pending_migrations_to_the_code_is_covered(strata: Cli, root: Path) -> None:
    seed(root)
    chained_after_first(strata, root, "first")
    gate = strata("migrations", "status", "--check")
    assert gate.code == 0, gate.err
    assert "migration 0002_more covers it" in gate.out
    assert strata("migrations", "generate").out.startswith("nothing to migrate: 0002_more already leads")
    result = strata("migrations", "apply")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "applied 0001_bump_audio, 0002_more to prod"


def test_a_from_snapshot_not_in_the_store_is_named_as_such(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    data = read_file(root)
    data["from"] = "0123456789abcdef"
    write_migration(root, FILE, data)
    message = "migration 0001_bump_audio starts from snapshot 0123456789abcdef, which is not in prod"
    refused(strata("migrations", "status", "--check"), 1, message)
    for command in (["apply"], ["generate"]):
        result = strata("migrations", *command)
        refused(result, 2, message)
        assert "pushed since" not in result.err


def test_status_check_fails_when_the_code_went_back_under_a_pending_migration(strata: Cli, root: Path) -> None:
    """The code equals the latest snapshot again, but apply would refuse the pending migration: so does the gate."""
    before, generated = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    write_graph(root, audio="1")
    message = f"migration 0001_bump_audio leads to snapshot {generated}, but the code's graph is {before}"
    refused(strata("migrations", "apply"), 2, message)
    refused(strata("migrations", "status", "--check"), 1, message)
    assert strata("migrations", "status").code == 0


def test_status_check_fails_with_migrations_when_no_graph_was_pushed(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root, store="dev")
    assert strata("migrations", "generate", "--store", "dev", "--name", "bump_audio").code == 0
    message = "starts from snapshot"
    refused(strata("migrations", "apply"), 2, message, "which is not in prod")
    refused(strata("migrations", "status", "--check"), 1, message, "which is not in prod")
    assert strata("migrations", "status", "--check", "--store", "dev").code == 0


def test_apply_tags_the_snapshot_it_pushes(strata: Cli, root: Path) -> None:
    old, new = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    refused(strata("migrations", "apply", "--tag", "commit"), 2, "--tag `commit` is not KEY=VALUE")
    assert records(root) == []
    result = strata("migrations", "apply", "--tag", "commit=abc", "--tag", "ci=yes")
    assert result.code == 0, result.err
    history = json.loads(strata("graph", "history", "--json").out)
    assert [(h["version"], h["tags"]) for h in history] == [(new, {"ci": "yes", "commit": "abc"}), (old, {})]
    again = strata("graph", "push", "--tag", "commit=abc")
    assert again.out.strip() == f"snapshot {new} is already the latest in prod; nothing pushed"


def test_a_failing_gate_says_why_once_on_stderr(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    gate = strata("migrations", "status", "--check")
    refused(gate, 1, "no migration covers it")
    assert "no migration covers it" not in gate.out
    assert gate.out.strip() == "no migrations (generate one with `strata migrations generate`)"
    plain = strata("migrations", "status")
    assert plain.code == 0
    assert "no migration covers it" in plain.out


def edit_duplicate(data: dict[str, Any]) -> None:
    data["operations"].insert(1, dict(data["operations"][0]))


def edit_both_ops(data: dict[str, Any]) -> None:
    data["operations"].insert(1, {**data["operations"][0], "op": "reconcile"})


def edit_no_operations(data: dict[str, Any]) -> None:
    data["operations"] = []


def edit_unchanged_field(data: dict[str, Any]) -> None:
    data["operations"].insert(1, {"feature": "video", "op": "recompute", "fields": ["frames"], "reason": ""})


def edit_created(data: dict[str, Any]) -> None:
    data["created"] = "yesterday"


def edit_drop_last(data: dict[str, Any]) -> None:
    data["operations"].pop()


HAND_EDITS = [
    (edit_duplicate, "operation 2: field `audio` of `video` is already in operation 1", "one operation per field"),
    (edit_both_ops, "operation 2: field `audio` of `video` is already in operation 1", "one operation per field"),
    (edit_no_operations, "no operations, but it leads from snapshot", "generate it again"),
    (edit_unchanged_field, "operation 2: field `frames` of `video` has no new version from", "remove it"),
    (edit_created, "created `yesterday` is not an ISO time", "e.g. 2026-"),
    (edit_drop_last, "field `vector` of `embedding` has a new version but no operation", "add it to an operation"),
]


@pytest.mark.parametrize(("edit", "message", "fix"), HAND_EDITS)
def test_a_hand_edit_that_makes_no_sense_is_refused(strata: Cli, root: Path, edit: Any, message: str, fix: str) -> None:
    before, _ = pushed_and_bumped(strata, root)
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    data = read_file(root)
    edit(data)
    write_migration(root, FILE, data)
    for command in (["apply"], ["apply", "--dry-run"], ["status", "--check"], ["status"]):
        refused(strata("migrations", *command), 2, FILE, message, fix)
    assert records(root) == []
    assert versions(root) == [before]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("0001_vat.yml", "id: 0001_vat\n", "migrations/0001_vat.yml: migration files end in .yaml"),
        ("vat.yaml", "id: vat\n", "migrations/vat.yaml: the name `vat` is not NNNN_name"),
    ],
)
def test_a_stray_file_in_migrations_is_refused_by_name(
    strata: Cli, root: Path, name: str, content: str, message: str
) -> None:
    pushed_and_bumped(strata, root)
    (root / "migrations").mkdir()
    (root / "migrations" / name).write_text(content, encoding="utf-8")
    for command in (["list"], ["generate"], ["apply"], ["status"]):
        refused(strata("migrations", *command), 2, message)


def test_migrations_as_a_regular_file_is_one_line(strata: Cli, root: Path) -> None:
    pushed_and_bumped(strata, root)
    (root / "migrations").write_text("not a folder\n", encoding="utf-8")
    for command in (["list"], ["generate"], ["apply"], ["status"]):
        refused(strata("migrations", *command), 2, "migrations is a file, not a folder")


def test_apply_takes_a_unique_prefix_of_an_id(strata: Cli, root: Path) -> None:
    seed(root)
    chained_after_first(strata, root, "first")
    refused(strata("migrations", "apply", "000"), 2, "`000` is a prefix of several migrations (0001_bump_audio, ")
    refused(strata("migrations", "apply", "0009"), 2, "no migration `0009`")
    refused(strata("migrations", "apply", "0001"), 2, "leads to snapshot")  # the code is 0002's
    result = strata("migrations", "apply", "0002")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "applied 0001_bump_audio, 0002_more to prod"
    assert (
        strata("migrations", "apply", "0001").out.strip()
        == "nothing to apply: 0001_bump_audio is already applied to prod"
    )


def test_one_operation_is_singular(strata: Cli, root: Path) -> None:
    assert strata("graph", "push").code == 0
    write_definitions(root, GRAPH.replace("{audio}", "1").replace('FieldSpec("vector", ', 'FieldSpec("vector", "22", '))
    result = strata("migrations", "generate", "--name", "vector")
    assert result.code == 0, result.err
    assert result.out.startswith("wrote migrations/0001_vector.yaml: 1 operation (0 reconcile, 1 recompute);")


def test_reading_commands_on_a_fresh_project_create_no_store(strata: Cli, root: Path) -> None:
    for command in (["apply"], ["status", "--check"], ["list"], ["apply", "--dry-run"]):
        result = strata("migrations", *command)
        assert result.code == 0, (command, result.err)
    assert not (root / "prod.duckdb").exists()


TWO_STORES = """
  store: prod
stores:
  prod: {type: duckdb, path: prod.duckdb}
  fresh: {type: duckdb, path: fresh.duckdb}
"""


def test_a_new_store_at_the_codes_graph_passes_the_gate_in_a_project_with_migration_history(
    strata: Cli, make_project: MakeProject
) -> None:
    """A store set up after a migration was applied elsewhere (a new environment, a developer's store).

    It holds the code's graph (pushed) and never held the graph the migration starts from: the
    migration is not needed there, and the gate, `generate` and `apply` say so.
    """
    root = make_project({"feats/graph.py": GRAPH.replace("{audio}", "1")}, extra=TWO_STORES)
    assert strata("graph", "push").code == 0
    write_graph(root, audio="2")
    assert strata("migrations", "generate", "--name", "bump_audio").code == 0
    applied = strata("migrations", "apply")
    assert applied.code == 0, applied.err
    code = current_version(root)
    assert strata("graph", "push", "--store", "fresh").code == 0  # the new store starts at the code's graph

    gate = cli_run(root, "migrations", "status", "--check", "--store", "fresh")
    assert gate.returncode == 0, gate.stderr
    assert f"the code's graph ({code}) is the latest snapshot in fresh" in gate.stdout
    generated = strata("migrations", "generate", "--store", "fresh")
    assert generated.code == 0, generated.err
    assert generated.out.startswith("nothing to migrate")
    listed = strata("migrations", "status", "--store", "fresh", "--json")
    assert [m["state"] for m in json.loads(listed.out)["migrations"]] == ["not needed (the store started past it)"]
    again = strata("migrations", "apply", "--store", "fresh")
    assert again.code == 0, again.err
    assert again.out.strip() == "nothing to apply: every migration is applied to fresh"
    write_graph(root, audio="3")  # the next change reaches both stores through one migration
    assert strata("migrations", "generate", "--name", "next").code == 0
    for store in ("prod", "fresh"):
        done = strata("migrations", "apply", "--store", store)
        assert done.code == 0, done.err
        assert "0002_next" in done.out
