"""A tap's ``capabilities`` decide, as in Meltano, whether it is discovered and how it gets its catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import Cli, run_strata, write_project

TAP = """\
import json, sys
args = sys.argv[1:]
log = json.load(open(args[args.index("--config") + 1]))["log"]
with open(log, "a") as handle:
    handle.write(json.dumps(args[2:]) + "\\n")
if "--discover" in args:
    if not DISCOVERS:
        sys.exit("called with --discover")
    print(json.dumps({"streams": [{"tap_stream_id": "s", "stream": "s", "metadata": [],
                                   "schema": {"properties": {"id": {"type": "integer"}}}}]}))
    sys.exit(0)
print(json.dumps({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"id": {"type": "integer"}}},
                  "key_properties": ["id"]}))
print(json.dumps({"type": "RECORD", "stream": "s", "record": {"id": 1}}))
"""

TARGET = """\
import sys
for line in sys.stdin:
    pass
"""


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def _project(root: Path, capabilities: list[str], *, catalog: bool = False) -> Path:
    """A project whose tap logs the arguments of each call to ``calls.jsonl``; returns that log."""
    root.mkdir(parents=True)
    tap = _script(root / "tap.py", TAP.replace("DISCOVERS", str("discover" in capabilities)))
    target = _script(root / "target.py", TARGET)
    (root / "catalog.json").write_text(json.dumps({"streams": []}))
    log = root / "calls.jsonl"
    write_project(
        root,
        f"""
        plugins:
          extractors:
            - name: tap-x
              executable: {tap}
              capabilities: {json.dumps(capabilities)}
              config: {{log: {log}}}
              {"catalog: catalog.json" if catalog else ""}
          loaders:
            - name: target-x
              executable: {target}
        """,
    )
    return log


def _calls(log: Path) -> list[list[str]]:
    """Each call's arguments after ``--config <file>``, with file paths as ``<file>``."""
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [[a if not a.startswith("/") else "<file>" for a in call] for call in calls]


@pytest.mark.parametrize(
    ("capabilities", "catalog", "expected"),
    [
        (["state"], False, [[]]),
        (["catalog", "state"], False, [[]]),
        (["properties"], True, [["--properties", "<file>"]]),
        (["catalog"], True, [["--catalog", "<file>"]]),
        (["state"], True, [[]]),
        (["discover", "catalog"], False, [["--discover"], ["--catalog", "<file>"]]),
        (["discover", "properties"], False, [["--discover"], ["--properties", "<file>"]]),
    ],
)
def test_a_tap_is_discovered_and_given_a_catalog_only_as_its_capabilities_say(
    tmp_path: Path, capabilities: list[str], catalog: bool, expected: list[list[str]]
) -> None:
    root = tmp_path / "proj"
    log = _project(root, capabilities, catalog=catalog)
    result = run_strata("run", "tap-x", "target-x", cwd=root)
    assert result.code == 0, result.err
    assert _calls(log) == expected
    ignored = "catalog.json is ignored: `tap-x` does not advertise the `catalog` or `properties` capability"
    assert (ignored in result.err) == (catalog and not {"catalog", "properties"} & set(capabilities))


def test_discover_of_a_tap_without_the_capability_is_a_usage_error(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    log = _project(root, ["catalog", "state"])
    monkeypatch.chdir(root)
    result = strata("discover", "tap-x")
    assert result.code == 2
    expected = (
        "strata: error: `tap-x` does not advertise the `discover` capability, so it cannot be discovered; "
        "give it a `catalog:` file, or add `discover` to its `capabilities:` if it has it"
    )
    assert result.err.strip().splitlines() == [expected]
    assert not log.exists()
