"""The real PostgreSQL server of ``tests/servers.py``, for the end-to-end pipeline tests."""

from __future__ import annotations

from tests.servers import postgres_database, postgres_server  # noqa: F401 - fixtures
