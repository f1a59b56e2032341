"""``python -m strata`` runs the command line."""

from strata.cli import main

main()
