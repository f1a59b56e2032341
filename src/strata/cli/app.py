"""The root command and its global options."""

from __future__ import annotations

from pathlib import Path

import click

from strata import __version__
from strata.cli import (
    build_cmd,
    catalog_cmds,
    config_cmds,
    demo_cmd,
    environment_cmds,
    features_cmds,
    jobs_cmds,
    metadata_cmds,
    migrations_cmds,
    plugin_cmds,
    plugin_list_cmds,
    project_cmds,
    run_cmds,
    runs_cmds,
    state_cmds,
    status_cmd,
    test_cmd,
    ui_cmd,
    why_cmd,
)
from strata.cli.context import Context
from strata.logs import LEVELS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-C",
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=["STRATA_PROJECT_DIR", "MELTANO_PROJECT_ROOT"],
    help="Project directory (default: found upward from the working directory).",
)
@click.option(
    "-e",
    "--environment",
    envvar=["STRATA_ENVIRONMENT", "MELTANO_ENVIRONMENT"],
    help="Environment to use (default: default_environment).",
)
@click.option(
    "--no-environment",
    is_flag=True,
    help="Use no environment, not even default_environment or one from the variables (as in Meltano).",
)
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True, help="Log level.")
@click.option(
    "--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True, help="Log format."
)
@click.option("--json", "json_output", is_flag=True, help="Print data as JSON instead of tables.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, "-V", "--version", prog_name="strata")
@click.pass_context
def cli(
    ctx: click.Context,
    project_dir: Path | None,
    environment: str | None,
    no_environment: bool,
    log_level: str,
    log_format: str,
    json_output: bool,
    debug: bool,
) -> None:
    """Strata keeps the data behind ML features fresh, from source to embedding.

    Ingest with Singer taps and targets, keep a feature graph up to date, and see what must be
    recomputed and why. A Meltano project (meltano.yml) works as it is.
    """
    from strata import logs

    logs.configure("debug" if debug else log_level, log_format)
    ctx.obj = Context(
        project_dir=project_dir,
        environment=None if no_environment else environment or None,
        no_environment=no_environment,
        json=json_output,
        debug=debug,
        log_format=log_format,
    )


for module in (
    project_cmds,
    plugin_cmds,
    plugin_list_cmds,
    config_cmds,
    environment_cmds,
    build_cmd,
    catalog_cmds,
    run_cmds,
    state_cmds,
    runs_cmds,
    jobs_cmds,
    features_cmds,
    migrations_cmds,
    metadata_cmds,
    status_cmd,
    test_cmd,
    demo_cmd,
    ui_cmd,
    why_cmd,
):
    for command in module.COMMANDS:
        cli.add_command(command)
