"""``strata init``."""

from __future__ import annotations

from pathlib import Path

import click

from strata.cli.context import Context, pass_context


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_context
def init(ctx: Context, directory: Path) -> None:
    """Create a new project in DIRECTORY (strata.yml, .gitignore, .strata/)."""
    from strata.project.init import init_project

    path = init_project(directory)
    ctx.emit(
        {"project_file": str(path)},
        lambda: click.echo(f"Created {path}\nNext: cd {directory} && strata add extractor NAME --pip-url PACKAGE"),
    )


COMMANDS = [init]
