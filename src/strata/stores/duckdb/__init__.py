"""The DuckDB store."""

import re

DEFAULT_MEMORY_LIMIT = "50%"
"""DuckDB's memory limit unless told otherwise: half the machine's memory (DuckDB's own default is
80 %), so the process keeps room for the frames it hands out, and a large write or resolve spills
to disk (``<path>.tmp``, or ``.tmp`` for ``:memory:``) instead of exhausting memory."""

_SIZE = re.compile(r"\d+(\.\d+)?\s*(%|[KMGT]i?B|B)", re.IGNORECASE)


def is_memory_limit(value: object) -> bool:
    """Whether ``value`` is a memory limit DuckDB takes: a size (``4GB``, ``512MiB``) or a share (``50%``)."""
    return isinstance(value, str) and _SIZE.fullmatch(value.strip()) is not None
