"""``examples/cd-flow`` end to end: every ``strata`` command of its README, in order, in a copy of it.

Version 1 of the definitions is built and pushed (what CD runs on merge); version 2 (the pull
request) refactors ``priced.region`` (reconciled) and changes ``priced.net`` for real
(recomputed). Each command runs in its own process, as a user's shell or a CI job runs it.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import strata as st
from strata.stores.base import MetadataStore
from tests.helpers import Result, run_strata

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cd-flow"
ORDERS = 40
"""Records in data/orders.jsonl: the samples of every feature."""

REGIONS = {"DE": "EU", "ES": "EU", "FR": "EU", "IT": "EU", "CA": "NA", "US": "NA"}


def readme() -> str:
    return (EXAMPLE / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """The ``strata`` lines of the example README's shell blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", readme(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("strata ")]


def as_shown(output: str) -> None:
    """``output`` (of a command that prints no times) is in the README as it is."""
    assert output.strip() in readme(), output


@dataclass
class Flow:
    """A copy of the example; runs README lines under a ``VERSION`` and keeps the list of those it ran."""

    root: Path
    version: str = "1"
    ran: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> Result:
        """Run one README line (``strata ARGS [< FILE]``) in a fresh process."""
        self.ran.append(line)
        return self.look(line)

    def look(self, line: str) -> Result:
        """Run a line the README does not show (a ``--json`` look at the same state)."""
        words = shlex.split(line)
        stdin = None
        if "<" in words:
            stdin = (self.root / words[words.index("<") + 1]).read_text(encoding="utf-8")
            words = words[: words.index("<")]
        assert words[0] == "strata"
        return run_strata(*words[1:], cwd=self.root, env={"VERSION": self.version}, stdin=stdin, timeout=120)

    def json(self, line: str) -> Any:
        done = self.look(line.replace("strata ", "strata --json ", 1))
        assert done.code == 0, done.err
        return done.json()

    def rows(self, key: str, monkeypatch: pytest.MonkeyPatch) -> dict[int, tuple[Any, ...]]:
        """The stored user columns of ``key`` by order id, read through the public API under this version."""
        monkeypatch.setenv("VERSION", self.version)
        with st.open_project(self.root).store(read_only=True) as store:
            frame = store.read(key).to_native()
        columns = sorted(c for c in frame.columns if not c.startswith("strata_") and c != "order_id")
        return {row[0]: tuple(row[1:]) for row in frame.select("order_id", *columns).iter_rows()}


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """``cp -r examples/cd-flow /tmp/cd-flow && cd /tmp/cd-flow``, as the README starts."""
    root = tmp_path / "cd-flow"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".strata", "migrations", "__pycache__"))
    monkeypatch.chdir(root)
    return Flow(root)


def built_and_pushed_on_version_1(flow: Flow) -> None:
    """Load the orders, build, push the graph: the deployed state."""
    loaded = flow("strata invoke target-strata < data/orders.jsonl")
    assert loaded.code == 0, loaded.err
    assert f"stream orders -> feature orders: {ORDERS} records, {ORDERS} added" in loaded.err
    built = flow("strata build")
    assert built.code == 0, built.err
    table = [line.split()[:5] for line in built.out.splitlines()[2:]]
    assert table == [["priced", str(ORDERS), "0", "0", str(ORDERS)], ["report", str(ORDERS), "0", "0", str(ORDERS)]]
    pushed = flow("strata graph push")
    assert pushed.code == 0, pushed.err
    assert pushed.out.startswith("pushed snapshot ")
    assert pushed.out.strip().endswith("(3 features) to prod")
    as_shown(pushed.out)


def pull_request_gated_then_covered(flow: Flow) -> None:
    """Version 2: the diff, the CI gate failing, the migration generated and reviewed, the gate passing."""
    flow.version = "2"
    diff = flow("strata graph diff")
    assert diff.code == 0, diff.err
    assert "~ priced (changed)" in diff.out
    assert "^ report (reached)" in diff.out
    as_shown(diff.out)
    assert re.search(r"~ net  code_version 1 -> 2, version \w+ -> \w+\n        reaches report \(label\)", diff.out)
    assert re.search(r"~ region  code_version 1 -> 2, version \w+ -> \w+\n        reaches report \(label\)", diff.out)
    changed = {f["feature"]: f for f in flow.json("strata graph diff")["features"]}
    assert sorted(changed) == ["priced", "report"]
    assert {f["field"]: f["reach"]["fields"] for f in changed["priced"]["fields"]} == {
        "net": ["report.label"],
        "region": ["report.label"],
    }
    assert changed["report"]["fields"][0]["reached_by"] == ["priced.net", "priced.region"]

    gate = flow("strata migrations status --check")
    assert gate.code == 1, gate.out + gate.err
    assert "differs from the latest snapshot in prod" in gate.err
    assert "no migration covers it" in gate.err
    assert len(gate.err.strip().splitlines()) == 1, gate.err
    assert "no migration covers it" not in gate.out  # said once, on stderr
    as_shown(gate.err)
    as_shown(gate.out + gate.err)

    generated = flow("strata migrations generate --name vat_21 --reconcile priced.region")
    assert generated.code == 0, generated.err
    assert generated.out.strip() == (
        "wrote migrations/0001_vat_21.yaml: 3 operations (1 reconcile, 2 recompute); "
        "review it, then run `strata migrations apply`"
    )
    as_shown(generated.out)
    review = (flow.root / "migrations" / "0001_vat_21.yaml").read_text(encoding="utf-8")
    assert review.splitlines()[:2] == ["id: 0001_vat_21", "parent:"]
    assert review.splitlines()[6:] == [
        "- feature: priced",
        "  op: reconcile",
        "  fields: [region]",
        "  reason: code version of field region 1 -> 2",
        "- feature: priced",
        "  op: recompute",
        "  fields: [net]",
        "  reason: code version of field net 1 -> 2",
        "- feature: report",
        "  op: recompute",
        "  fields: [label]",
        "  reason: 'label: reached by priced.net, priced.region'",
    ]

    covered = flow("strata migrations status --check")
    assert covered.code == 0, covered.err
    assert "migration 0001_vat_21 covers it" in covered.out
    assert "pending" in covered.out
    as_shown(covered.out)


def test_the_pull_request_fails_the_ci_gate_until_a_migration_covers_it(flow: Flow) -> None:
    built_and_pushed_on_version_1(flow)
    pull_request_gated_then_covered(flow)
    assert flow.ran == readme_commands()[: len(flow.ran)]


@pytest.mark.skipif(not hasattr(MetadataStore, "reconcile"), reason="reconcile lands from fix/reconcile")
def test_the_whole_cd_flow_reconciles_the_refactor_and_recomputes_the_change(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    built_and_pushed_on_version_1(flow)
    pull_request_gated_then_covered(flow)
    before = {key: flow.rows(key, monkeypatch) for key in ("orders", "priced", "report")}
    assert len(before["priced"]) == ORDERS

    dry = flow("strata migrations apply --dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[0] == f"0001_vat_21 #1: reconcile priced (region): would run, {ORDERS} samples"

    applied = flow("strata migrations apply")
    assert applied.code == 0, applied.err
    assert applied.out.splitlines() == [
        f"0001_vat_21 #1: reconcile priced (region): done, {ORDERS} samples",
        "0001_vat_21 #2: recompute priced (net): done, samples stale for `strata build`",
        "0001_vat_21 #3: recompute report (label): done, samples stale for `strata build`",
        "applied 0001_vat_21 to prod",
    ]
    assert {key: flow.rows(key, monkeypatch) for key in before} == before  # no user column was touched

    status = flow("strata status")
    assert status.code == 0, status.err
    assert f"  priced.net <- code ({ORDERS})" in status.out.splitlines()
    assert not [line for line in status.out.splitlines() if line.startswith("  priced.region")]  # in sync
    as_shown(dry.out + applied.out + status.out)
    stale = {f["feature"]: f for f in flow.json("strata status")["features"]}
    assert stale["priced"]["fields"] == {"net": {"code": ORDERS}}

    built = flow("strata build")
    assert built.code == 0, built.err
    lines = built.out.splitlines()
    table = [line.split()[:6] for line in lines[2:4]]
    assert table == [
        ["priced", "0", str(ORDERS), "0", str(ORDERS), "0"],
        ["report", "0", str(ORDERS), "0", str(ORDERS), "0"],
    ]
    assert lines[4:] == [  # per field: every sample of net, none of region, every label
        "recompute per field (cause):",
        f"  priced.net <- code ({ORDERS})",
        f"  report.label <- priced.net ({ORDERS}), priced.region ({ORDERS})",
    ]
    as_shown("\n".join(lines[4:]))
    again = flow.json("strata build")  # nothing left: what the build above did is all there was
    assert [(f["feature"], f["changed"]) for f in again["features"]] == [("priced", 0), ("report", 0)]
    after = {key: flow.rows(key, monkeypatch) for key in before}
    assert after["orders"] == before["orders"]
    assert {uid: region for uid, (_net, region) in after["priced"].items()} == {
        uid: region for uid, (_net, region) in before["priced"].items()
    }
    for uid, (amount, country) in after["orders"].items():
        assert after["priced"][uid] == (round(amount / 1.21, 2), REGIONS.get(country, "other"))
    assert sum(after["priced"][u][0] != before["priced"][u][0] for u in before["priced"]) > ORDERS // 2

    gate = flow("strata migrations status --check")
    assert gate.code == 0, gate.err
    assert "is the latest snapshot in prod" in gate.out
    in_sync = flow("strata status --assert-in-sync")
    assert in_sync.code == 0, in_sync.out + in_sync.err
    as_shown(gate.out + in_sync.out)
    assert flow.ran == readme_commands()
