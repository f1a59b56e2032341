"""What every command shares: global options, the project, output and error handling."""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from strata.errors import Interrupted, StrataError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from strata.project.project import Project


@dataclass
class Context:
    """Global options, and the project loaded on first use."""

    project_dir: Path | None = None
    environment: str | None = None
    no_environment: bool = False
    """``--no-environment``: no environment at all, not even ``default_environment``."""
    json: bool = False
    debug: bool = False
    log_format: str = "console"
    """``--log-format``: ``console`` may show live progress bars on a terminal, ``json`` never does."""
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The project for this invocation (found upward from the working directory).

        Loading it first removes what killed runs left in ``.strata/run/`` (config files hold passwords).
        """
        if self._project is None:
            from strata.ingest.runfiles import remove_leftovers
            from strata.project.project import Project

            self._project = Project.find(
                self.project_dir, environment=self.environment, no_environment=self.no_environment
            )
            remove_leftovers(self._project.system_dir)
        return self._project

    def reload(self) -> Project:
        """Forget the loaded project and read it again (after an edit)."""
        self._project = None
        return self.project()

    def emit(self, data: Any, human: Callable[[], None]) -> None:
        """Print ``data`` as JSON with ``--json``, else call ``human`` to print for people."""
        if self.json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            human()


pass_context = click.make_pass_decorator(Context)


def run_cli(group: click.Group, args: list[str]) -> int:
    """Run the CLI and turn every failure into one line on stderr and an exit code."""
    debug = "--debug" in args
    try:
        result = group.main(args=args, prog_name="strata", standalone_mode=False)
    except Interrupted as exc:
        click.echo(f"strata: {exc}", err=True)
        return exc.exit_code
    except StrataError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"strata: error: {exc}", err=True)
        return exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "strata"
        click.echo(f"strata: error: {exc.format_message().rstrip('.')}; see `{where} --help`", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("strata: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("strata: interrupted", err=True)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1
    except OSError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"strata: error: {_os_error(exc)}", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one line, not a traceback
        if debug:
            traceback.print_exc()
        click.echo(
            f"strata: error: unexpected {type(exc).__name__}: {exc}; run again with --debug for the traceback",
            err=True,
        )
        return 1
    return result if isinstance(result, int) else 0


def _os_error(exc: OSError) -> str:
    """``reason; what to do`` for a system call that failed where no command expected it."""
    import errno
    from pathlib import Path

    from strata.project.files import what_to_do

    reason = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)
    if exc.filename and exc.errno in {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}:
        return f"{reason}; {what_to_do(Path(exc.filename), exc)}"
    return f"{reason}; run again with --debug for the traceback"
