"""``strata init``: a new project directory."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from strata.errors import UsageError
from strata.project.files import write_atomic
from strata.project.project import PROJECT_FILES, SYSTEM_DIR

if TYPE_CHECKING:
    from pathlib import Path

_TEMPLATE = """\
# strata project file (a superset of meltano.yml): `strata --help` lists the commands that edit it
version: 1
project_id: {project_id}
default_environment: dev
environments:
  - name: dev
  - name: staging
  - name: prod
plugins:
  extractors: []
  loaders: []
features:
  entrypoints: []
"""

_GITIGNORE = """\
# strata: local state, plugin environments and secrets stay out of git
.strata/
.env
*.build.lock
"""


def init_project(directory: Path) -> Path:
    """Create ``strata.yml``, ``.gitignore`` and ``.strata/`` in ``directory``; return the file."""
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory", "choose another path")
    existing = [name for name in PROJECT_FILES if (directory / name).exists()]
    if existing:
        raise UsageError(
            f"{directory / existing[0]} already exists", "pick an empty directory, or use the existing project"
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SYSTEM_DIR).mkdir(exist_ok=True)
    project_file = directory / "strata.yml"
    write_atomic(project_file, _TEMPLATE.format(project_id=uuid.uuid4()))
    gitignore = directory / ".gitignore"
    if gitignore.exists():
        lines = gitignore.read_text(encoding="utf-8").splitlines()
        missing = [line for line in (".strata/", ".env", "*.build.lock") if line not in lines]
        if missing:
            write_atomic(gitignore, "\n".join([*lines, *missing]) + "\n")
    else:
        write_atomic(gitignore, _GITIGNORE)
    return project_file
