"""Commands of this area; filled in by the ingest work (issue 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

COMMANDS: list[click.Command] = []
