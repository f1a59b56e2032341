"""Optional dependencies: which extra brings which package, and the error when one is missing.

The core install (``strata-ml``) holds what every project needs. S3, Azure, PostgreSQL and Ray
come with extras (``strata-ml[s3]``, ``[azure]``, ``[postgres]``, ``[ray]``, or ``[all]``) and
are imported only inside the code that uses them, always through :func:`needs`::

    with needs("s3", "the S3 state backend"):
        from strata.state.s3 import S3StateBackend   # imports boto3

so a missing package becomes one line naming the extra to install, not a traceback.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from strata.errors import MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Iterator

DISTRIBUTION = "strata-ml"
"""strata's name on PyPI (``strata`` there is another project); the import name is ``strata``."""

EXTRAS: dict[str, tuple[str, ...]] = {
    "s3": ("boto3", "botocore"),
    "azure": ("azure",),
    "postgres": ("psycopg", "psycopg_binary"),
    "clickhouse": ("chdb", "clickhouse_connect"),
    "ray": ("ray",),
}
"""Each extra and the top-level modules it brings (as ``pyproject.toml`` declares them)."""


@contextlib.contextmanager
def needs(extra: str, what: str, otherwise: str = "") -> Iterator[None]:
    """Run the imports inside; a module of ``extra`` that is missing raises :class:`MissingExtraError`.

    ``what`` names the part of strata that needs it (``"the S3 state backend"``), ``otherwise``
    another way out (``"use --executor local"``). Any other missing module is not the extra's
    business and propagates as it is.
    """
    modules = EXTRAS[extra]
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".", 1)[0] not in modules:
            raise
        spec = f"'{DISTRIBUTION}[{extra}]'"
        raise MissingExtraError(
            f"{what} needs the {extra} extra, which is not installed",
            f"install it with: uv tool install {spec} (or pip install {spec}; in a checkout: uv sync --extra {extra})"
            + (f", or {otherwise}" if otherwise else ""),
        ) from None
