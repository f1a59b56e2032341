"""The README's Python examples run, and each ``print(...)  # output`` comment is what that line prints."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
PRINTED = re.compile(r"^\s*print\(.*\)\s+# (?P<output>.+)$")


def python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [textwrap.dedent(block) for block in blocks]


def test_the_readme_python_examples_print_what_they_say(tmp_path: Path) -> None:
    source = "\n".join(python_blocks())
    expected = [m["output"].strip() for line in source.splitlines() if (m := PRINTED.match(line))]
    assert len(expected) >= 3
    (tmp_path / "readme_example.py").write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "readme_example.py"], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected


def test_the_examples_use_only_the_public_api() -> None:
    import strata

    examples = Path(__file__).resolve().parents[1] / "examples"
    scripts = sorted(examples.rglob("*.py"))
    assert scripts
    for script in scripts:
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "strata":
                assert node.module == "strata", f"{script.name} imports from {node.module}"
                assert {a.name for a in node.names} <= set(strata.__all__), script.name
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name == "strata" or not alias.name.startswith("strata."), script.name
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "st":
                assert node.attr in strata.__all__, f"{script.name} uses st.{node.attr}"
