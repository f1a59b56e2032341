"""``strata demo``: the main job end to end on embedded defaults.

A new project where a real Singer tap (from PyPI) feeds ``target-strata``, a three-level
feature graph built from it, one source column changed, and a table of exactly what was
recomputed and why (``strata/demo.py``).
"""

from __future__ import annotations

from pathlib import Path

import click

from strata.cli.context import Context, pass_context


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty directory for the demo project, or an earlier demo (default: a new temporary one).",
)
@click.option(
    "--rows", type=click.IntRange(min=1), default=1000, show_default=True, help="Articles in the demo source."
)
@pass_context
def demo(ctx: Context, directory: Path | None, rows: int) -> None:
    """Run the main job end to end on embedded defaults."""
    from strata.demo import run_demo

    summary = run_demo(directory, rows, echo=None if ctx.json else click.echo)
    ctx.emit(summary, lambda: None)


COMMANDS = [demo]
