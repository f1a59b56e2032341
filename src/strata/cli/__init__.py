"""The ``strata`` command line.

Commands are thin: they parse arguments, call the library and print. Everything heavy is
imported inside the command that needs it, so ``strata --help`` stays fast.
"""

from __future__ import annotations

import sys

from strata.cli.app import cli
from strata.cli.context import run_cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``strata`` console script."""
    sys.exit(run_cli(cli, sys.argv[1:] if argv is None else argv))


__all__ = ["cli", "main"]
