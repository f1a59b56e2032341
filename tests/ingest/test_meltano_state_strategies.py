"""State flags compared with Meltano 4.4.1: after each scenario strata stores the state Meltano stored.

``tests/fixtures/meltano-state-strategies``: a project whose tap resumes after the bookmark ``s``
and emits ``{"bookmarks": {"s": i}}`` only, ``scenarios.txt`` (a name and the `run`/`el` arguments
per line), and ``expected/NAME.json``, the ``meltano state get`` that ``record.sh`` recorded after
the scenario, the state having been set to ``STORED`` before it, and ``expected/NAME.confirmed``,
the states the target confirmed (where the tap started). With Meltano present
(``TEST_MELTANO_BIN``, or the bench venv ``bench/.venvs/meltano``) one more test records again
and checks that Meltano still stores exactly that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import record_again, run_strata

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-state-strategies"
STATE_ID = "dev:tap-count-to-target-echo"
STORED = '{"singer_state": {"bookmarks": {"s": 2, "old": 1}}}'
SCENARIOS = [line.split() for line in (FIXTURE / "scenarios.txt").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strategies") / "project"
    shutil.copytree(FIXTURE / "project", root)
    return root


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_strata_starts_and_stores_as_meltano_does(project: Path, scenario: list[str]) -> None:
    """The tap starts where it started under Meltano, and the stored state afterwards is Meltano's."""
    name, *args = scenario
    assert run_strata("state", "set", "--force", STATE_ID, STORED, cwd=project).code == 0
    (project / "confirmed.jsonl").unlink(missing_ok=True)
    done = run_strata(*args, cwd=project)
    assert done.code == 0, done.err
    shown = run_strata("state", "get", STATE_ID, cwd=project)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == json.loads((FIXTURE / "expected" / f"{name}.json").read_text())
    assert (project / "confirmed.jsonl").read_text() == (FIXTURE / "expected" / f"{name}.confirmed").read_text()


def test_the_stored_meltano_states_are_what_meltano_stores_now(tmp_path: Path) -> None:
    copy = record_again(FIXTURE, tmp_path, "expected", timeout=600)
    for name, *_ in SCENARIOS:
        recorded = json.loads((copy / "expected" / f"{name}.json").read_text())
        assert recorded == json.loads((FIXTURE / "expected" / f"{name}.json").read_text()), name
        confirmed = (copy / "expected" / f"{name}.confirmed").read_text()
        assert confirmed == (FIXTURE / "expected" / f"{name}.confirmed").read_text(), name
