"""Run history: the system database, its runs and its schema migrations.

SQLite under ``.strata/`` by default, PostgreSQL by URL (``database_uri``). Imports SQLAlchemy,
so commands import it inside their body (``strata --help`` never loads it).
"""

from strata.history.runs import HEARTBEAT_EVERY, STALE_AFTER, Run, RunHistory, RunStatus

__all__ = ["HEARTBEAT_EVERY", "STALE_AFTER", "Run", "RunHistory", "RunStatus"]
