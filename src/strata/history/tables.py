"""The current shape of the system database tables, as the code reads and writes them.

``migrations.py`` builds these tables step by step; a test checks that a database migrated from
empty has exactly the columns declared here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC, aware in Python whatever the database keeps.

    SQLite has no time zones: values go in as naive UTC and come back marked UTC.
    PostgreSQL keeps ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: object, dialect: sa.Dialect) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        if value is None:
            return None
        stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


metadata = sa.MetaData()

runs = sa.Table(
    "strata_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("state_id", sa.Text, nullable=False),
    sa.Column("environment", sa.Text),
    sa.Column("blocks", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.Text),
    sa.Column("records", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("log_path", sa.Text),
    sa.Column("strata_version", sa.String(32)),
    sa.Column("builds", sa.JSON),
)
"""One row per run: who ran what, where, how it ended, how many records per stream, what it built."""

build_errors = sa.Table(
    "strata_build_errors",
    metadata,
    sa.Column("store", sa.String(200), primary_key=True),
    sa.Column("feature", sa.String(500), primary_key=True),
    sa.Column("sample", sa.Text, primary_key=True),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(32)),
    sa.Column("failed_at", UTCDateTime, nullable=False),
)
"""Samples whose ``compute`` failed, with the inputs they failed on: ``build`` skips them until those change."""
