"""The feature graph: definitions, keys, versions and snapshots.

Imports no database or dataframe engine (Narwhals only, and only for type hints).
"""
