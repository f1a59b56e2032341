"""The in-memory store (Polars)."""
