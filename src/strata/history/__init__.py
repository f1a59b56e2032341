"""Run history: the system database, its runs and its schema migrations.

SQLite under ``.strata/`` by default, PostgreSQL by URL (``database_uri``). ``RunHistory``
(``runs.py``) uses SQLAlchemy, imported on first use of these names, so importing the package
(or ``history.lite``, the SQLite writer of ``strata run``'s hot path) never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.history.model import HEARTBEAT_EVERY, STALE_AFTER, Run, RunStatus
    from strata.history.runs import RunHistory

__all__ = ["HEARTBEAT_EVERY", "STALE_AFTER", "Run", "RunHistory", "RunStatus"]


def __getattr__(name: str) -> Any:
    if name == "RunHistory":
        from strata.history.runs import RunHistory

        return RunHistory
    if name in __all__:
        from strata.history import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
