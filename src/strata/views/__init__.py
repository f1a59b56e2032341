"""Showing: what the CLI and pages print about the graph and the stores (no writing here)."""
