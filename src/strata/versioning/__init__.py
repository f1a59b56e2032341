"""Increment resolution: the plan of a feature, the SQL it generates, the Polars path."""
