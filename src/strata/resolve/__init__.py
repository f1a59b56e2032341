"""Increment resolution, engine-neutral: the plan of a feature, the SQL every SQL store runs, the Polars path."""
