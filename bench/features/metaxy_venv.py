"""Make sure Metaxy 0.1.11 is installed in its own venv, bench/.venvs/metaxy.

Idempotent: creates the venv and installs only when Metaxy at the pinned
version is missing, then compiles the venv's bytecode (the machine sets
PYTHONDONTWRITEBYTECODE=1, so nothing else would). Stdlib only, so any
Python 3.11 can run it; prints the venv's python path on stdout.

Pins: `sqlglot<30` because Metaxy only pins `sqlglot>=28.1`, and sqlglot 30
with ibis 12 breaks the first auto-created DuckDB table (`DROP VIEW IF
EXISTS` parser error); `psutil` for memory figures.

Usage:  python bench/features/metaxy_venv.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

METAXY_VERSION = "0.1.11"
REQUIREMENTS = [f"metaxy[duckdb]=={METAXY_VERSION}", "sqlglot<30", "psutil"]

BENCH = Path(__file__).resolve().parent.parent
VENV = BENCH / ".venvs" / "metaxy"
PYTHON = VENV / "bin" / "python"

_PROBE = "import importlib.metadata as m; print(m.version('metaxy'), m.version('sqlglot'), m.version('psutil'))"


class SetupError(Exception):
    """Creating or filling the Metaxy venv failed."""


def _run(cmd: list[str], env: dict[str, str]) -> str:
    """Run a setup command; return its stdout or raise with its output."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SetupError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def _installed(env: dict[str, str]) -> bool:
    """Whether the venv has the pinned Metaxy, a sqlglot below 30 and psutil."""
    if not PYTHON.exists():
        return False
    try:
        metaxy, sqlglot, _ = _run([str(PYTHON), "-c", _PROBE], env).split()
    except (SetupError, ValueError):
        return False
    return metaxy == METAXY_VERSION and int(sqlglot.split(".")[0]) < 30


def ensure_metaxy_venv() -> Path:
    """Create and fill the venv unless already done; return its python."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    if not _installed(env):
        uv = shutil.which("uv")
        if uv is None:
            raise SetupError("`uv` is not on PATH; it is needed to install Metaxy")
        print(f"installing metaxy {METAXY_VERSION} in {VENV} ...", file=sys.stderr)
        _run([uv, "venv", "--clear", "--python", "python3.11", str(VENV)], env)
        _run([uv, "pip", "install", "--python", str(PYTHON), *REQUIREMENTS], env)
    # Cheap when up to date: compileall skips files whose .pyc is current.
    site = next((VENV / "lib").glob("python3.*/site-packages"))
    _run([str(PYTHON), "-m", "compileall", "-q", str(site)], env)
    return PYTHON


def main() -> int:
    """Ensure the venv and print its python path."""
    try:
        python = ensure_metaxy_venv()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
