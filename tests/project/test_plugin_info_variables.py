"""A plugin's settings see its own ``MELTANO_<TYPE>_NAME/NAMESPACE/VARIANT``, as in Meltano 4.4.1 (issue 12).

The project is ``tests/fixtures/meltano-pipeline-env``; ``config print`` needs no installed
plugin, so this runs without the network. ``record.sh`` stored what Meltano printed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import Cli

FIXTURE = Path(__file__).parents[1] / "fixtures" / "meltano-pipeline-env"


def test_an_inheriting_plugin_expands_its_parents_values_with_its_own_info(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`label: $MELTANO_EXTRACTOR_NAME/$MELTANO_EXTRACTOR_NAMESPACE` inherited by tap-kid reads `tap-kid/tap_kid`."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE / "project", root)
    monkeypatch.chdir(root)
    done = strata("config", "print", "tap-kid", "--format=json")
    assert done.code == 0, done.err
    want = json.loads((FIXTURE / "expected" / "config-print-tap-kid.json").read_text())
    want["api_token"] = "(redacted)"  # Meltano writes `*****`
    assert json.loads(done.out) == want
    assert "not set" not in done.err
