"""Every test module under tests/ is collected by a plain `pytest` run (what `make test` calls)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST_DEFAULT = ["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"]


def test_no_test_directory_is_skipped_by_norecursedirs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    patterns = config.get("norecursedirs", PYTEST_DEFAULT)
    folders = {m.parent for m in (ROOT / "tests").rglob("test_*.py") if "__pycache__" not in m.parts}
    skipped = sorted(
        str(f.relative_to(ROOT))
        for f in folders
        for part in f.relative_to(ROOT).parts
        if any(fnmatch.fnmatch(part, p) for p in patterns)
    )
    assert not skipped, f"pytest would not collect the tests in {skipped}"
