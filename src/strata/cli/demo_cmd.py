"""``strata demo``: the main job end to end on embedded defaults.

Until the feature half lands, the demo runs the furthest path that works: a new project, a
real Singer target installed from PyPI into its own venv, configured through every layer,
and invoked on a small Singer stream.
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
    help="Where to create the demo project (default: a new temporary directory).",
)
@click.option("--rows", type=click.IntRange(min=1), default=1000, show_default=True, help="Records in the demo stream.")
@pass_context
def demo(ctx: Context, directory: Path | None, rows: int) -> None:
    """Run the main job end to end on embedded defaults."""
    from strata.demo import run_demo

    summary = run_demo(directory, rows, echo=None if ctx.json else click.echo)
    ctx.emit(summary, lambda: None)


COMMANDS = [demo]
