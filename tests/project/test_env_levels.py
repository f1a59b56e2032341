"""``env:`` at every level Meltano reads it: the project, an environment, a plugin, a plugin in an environment.

The fixture ``tests/fixtures/meltano-env-levels`` holds a project whose extractor prints the
config it is given and the variables it sees; ``expected/invoke.json`` is what it printed under
Meltano 4.4.1 (``record.sh``). For the plugin, Meltano layers: the project's ``env:`` < the
plugin's ``env:`` < the active environment's ``env:`` < the environment's ``env:`` for the
plugin; a plugin's config expands ``${VAR}`` against exactly what its process sees, and a
``<PLUGIN>_<SETTING>`` name in any ``env:`` block sets that setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import record_again, run_strata

FIXTURE = Path(__file__).parent.parent / "fixtures" / "meltano-env-levels"
PROCESS = {"F": "process", "G": "process", "M": "process"}
DIFFERS = {"F", "I", "sees_f", "sees_i"}
"""Where strata differs on purpose: the process environment and ``.env`` beat the project's ``env:``
(Meltano lets the file win); see ``tests/ingest/test_invoke.py``."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE / "project", tmp_path / "project")
    return tmp_path / "project"


def _seen(root: Path, plugin: str = "tap-probe") -> dict[str, Any]:
    done = run_strata("invoke", plugin, cwd=root, env=PROCESS)
    assert done.code == 0, done.err
    return dict(json.loads(done.out))


def _without(values: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in names}


def test_the_plugin_sees_every_env_level_as_meltano_layers_them(root: Path) -> None:
    seen, meltano = _seen(root), json.loads((FIXTURE / "expected" / "invoke.json").read_text())
    assert _without(seen["env"], DIFFERS) == _without(meltano["env"], DIFFERS)
    assert _without(seen["config"], DIFFERS) == _without(meltano["config"], DIFFERS)
    assert (seen["env"]["F"], seen["env"]["I"]) == ("process", "dotenv")


def test_an_inherited_value_is_expanded_with_the_heirs_variables_as_in_meltano(root: Path) -> None:
    """``tap-probe-kid`` inherits ``sees_a: ${A}`` …: Meltano expands the text with the kid's variables.

    The kid has no entry in the environment, so ``A`` is the environment's ``envlevel`` (the parent
    sees its own entry's ``envplugin``). The parent's ``env:`` reaches the kid beneath every other
    level: ``N``, set nowhere else, does; ``D`` and ``G`` lose to the project's ``env:`` and the
    process. A setting the parent's ``env:`` blocks set (``from_plugin_env``) is inherited.
    """
    seen, meltano = _seen(root, "tap-probe-kid"), json.loads((FIXTURE / "expected" / "invoke-kid.json").read_text())
    assert _without(seen["env"], DIFFERS) == _without(meltano["env"], DIFFERS)
    assert _without(seen["config"], DIFFERS) == _without(meltano["config"], DIFFERS)
    assert (seen["config"]["sees_a"], seen["config"]["sees_d"]) == ("envlevel", "top")
    assert (seen["env"]["N"], seen["config"]["sees_n"]) == ("plugin-only", "plugin-only")


def test_meltano_still_prints_what_is_stored(tmp_path: Path) -> None:
    copy = record_again(FIXTURE, tmp_path, "expected")
    for name in ("invoke.json", "invoke-kid.json"):
        assert (copy / "expected" / name).read_bytes() == (FIXTURE / "expected" / name).read_bytes()
