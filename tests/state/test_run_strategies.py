"""``run`` and ``el`` state flags on every backend: ``--state-strategy``, ``--merge-state``, ``--no-state-update``.

The project's tap (``tests/ingest/scripted.py``) starts after the bookmark ``s`` of the state it
is given and emits ``{"bookmarks": {"s": i}}`` only, so a stored bookmark ``old`` survives a run
exactly when the run's states are merged into the stored state.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli, run_strata
from tests.ingest.scripted import STATE_ID, scripted_project
from tests.state.conftest import BackendCase

STORED = {"singer_state": {"bookmarks": {"s": 2, "old": 1}}}


@pytest.fixture
def scripted(tmp_path: Path, backend_case: BackendCase) -> Path:
    """The scripted project (3 records a run)."""
    root = tmp_path / "proj"
    scripted_project(root, ticks=3, pause=0)
    return root


@pytest.fixture
def strata(scripted: Path, backend_case: BackendCase) -> Cli:
    """The real ``strata`` in a subprocess, in the scripted project, on ``backend_case``."""
    return lambda *args: run_strata(*args, cwd=scripted, env=backend_case.environ())


def stored_after(strata: Cli, *args: str, state_id: str = STATE_ID) -> dict[str, object]:
    """Store ``STORED`` under ``state_id``, run ``args``, return the stored state afterwards."""
    assert strata("state", "set", "--force", state_id, json.dumps(STORED)).code == 0
    done = strata(*args)
    assert done.code == 0, done.err
    shown = strata("state", "get", state_id)
    assert shown.code == 0, shown.err
    return json.loads(shown.out)  # type: ignore[no-any-return]


def bookmarks(**values: int) -> dict[str, object]:
    return {"singer_state": {"bookmarks": values}}


def test_state_strategies_through_run_and_el(strata: Cli, scripted: Path, backend_case: BackendCase) -> None:
    run = ("run", "tap-slow", "target-echo")
    assert stored_after(strata, *run) == bookmarks(s=5)  # auto: the new state replaces the stored one
    assert stored_after(strata, *run, "--state-strategy", "overwrite") == bookmarks(s=5)
    assert stored_after(strata, *run, "--state-strategy", "merge") == bookmarks(s=5, old=1)
    assert stored_after(strata, *run, "--merge-state") == bookmarks(s=5, old=1)  # the old spelling
    # auto with --full-refresh merges: the tap starts from nothing, the other bookmarks stay
    assert stored_after(strata, *run, "--full-refresh") == bookmarks(s=2, old=1)
    assert stored_after(strata, *run, "--full-refresh", "--state-strategy", "overwrite") == bookmarks(s=2)
    el = ("el", "tap-slow", "target-echo", "--state-id", "dev:by-el")
    assert stored_after(strata, *el, state_id="dev:by-el") == bookmarks(s=5)
    assert stored_after(strata, *el, "--state-strategy", "merge", state_id="dev:by-el") == bookmarks(s=5, old=1)
    assert stored_after(strata, *el, "--merge-state", state_id="dev:by-el") == bookmarks(s=5, old=1)
    with backend_case.open() as backend:
        assert backend.ids() == ["dev:by-el", STATE_ID]


def test_meltanos_run_variables_set_the_flags(scripted: Path, backend_case: BackendCase) -> None:
    """``MELTANO_RUN_STATE_STRATEGY``, ``MELTANO_RUN_FULL_REFRESH``…, as in Meltano (``STRATA_RUN_…`` too)."""

    def with_env(**env: str) -> Cli:
        return lambda *args: run_strata(*args, cwd=scripted, env={**backend_case.environ(), **env})

    run = ("run", "tap-slow", "target-echo")
    assert stored_after(with_env(MELTANO_RUN_STATE_STRATEGY="merge"), *run) == bookmarks(s=5, old=1)
    assert stored_after(with_env(STRATA_RUN_STATE_STRATEGY="merge"), *run) == bookmarks(s=5, old=1)
    assert stored_after(with_env(MELTANO_RUN_FULL_REFRESH="true"), *run) == bookmarks(s=2, old=1)
    assert stored_after(with_env(MELTANO_RUN_NO_STATE_UPDATE="1"), *run) == STORED
    assert stored_after(with_env(MELTANO_RUN_STATE_ID_SUFFIX="x"), *run) == STORED  # another state id
    assert stored_after(with_env(MELTANO_RUN_STATE_ID_SUFFIX="x"), *run, state_id=f"{STATE_ID}:x") == bookmarks(s=5)
    bad = with_env(MELTANO_RUN_STATE_STRATEGY="bogus")(*run)
    assert bad.code == 2
    assert bad.err.count("\n") == 1
    assert "'bogus' is not one of" in bad.err


def test_no_state_update_reads_and_stores_no_state(strata: Cli, scripted: Path) -> None:
    """Meltano's meaning: the run has no state job, so the tap starts from nothing and nothing is stored."""
    assert strata("state", "set", "--force", STATE_ID, json.dumps(STORED)).code == 0
    done = strata("--json", "run", "--no-state-update", "tap-slow", "target-echo")
    assert done.code == 0, done.err
    assert json.loads(done.out)[0]["states"] == 0
    confirmed = (scripted / "work" / "confirmed.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in confirmed] == [{"bookmarks": {"s": i}} for i in range(3)]
    assert json.loads(strata("state", "get", STATE_ID).out) == STORED
    runs = json.loads(strata("--json", "runs", "list", "--state-id", STATE_ID).out)
    assert [r["status"] for r in runs] == ["success"]


def test_el_state_file_is_where_the_tap_starts(strata: Cli, scripted: Path) -> None:
    given = scripted / "work" / "given-state.json"
    given.write_text(json.dumps({"bookmarks": {"s": 10}}))
    el = ("el", "tap-slow", "target-echo", "--state", str(given))
    assert stored_after(strata, *el, state_id="dev:tap-slow-to-target-echo") == bookmarks(s=13)
    # --full-refresh ignores it too (auto then merges into what is stored)
    assert stored_after(strata, *el, "--full-refresh") == bookmarks(s=2, old=1)
    confirmed = [json.loads(line) for line in (scripted / "work" / "confirmed.jsonl").read_text().splitlines()]
    assert [c["bookmarks"]["s"] for c in confirmed] == [11, 12, 13, 0, 1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--state-strategy", "bogus", "tap-slow", "target-echo"], "'bogus' is not one of"),
        (["el", "--state-strategy", "bogus", "tap-slow", "target-echo"], "'bogus' is not one of"),
        (["run", "--merge-state", "--state-strategy", "overwrite", "tap-slow", "target-echo"], "cannot be used"),
        (["el", "--merge-state", "--state-strategy", "merge", "tap-slow", "target-echo"], "cannot be used"),
    ],
)
def test_bad_state_flags_are_one_line_and_change_nothing(
    strata: Cli, scripted: Path, backend_case: BackendCase, args: list[str], message: str
) -> None:
    assert strata("state", "set", "--force", STATE_ID, json.dumps(STORED)).code == 0
    before = backend_case.raw()
    done = strata(*args)
    assert done.code == 2
    assert message in done.err
    assert done.err.startswith("strata: error: ")
    assert done.err.count("\n") == 1, done.err
    assert backend_case.raw() == before
    assert not (scripted / "work" / "confirmed.jsonl").exists()
    assert json.loads(strata("state", "get", STATE_ID).out) == STORED
