"""SQLite may report a write to a full file system as an I/O error, not as SQLITE_FULL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from strata.history.model import database_failure
from tests.helpers import fill, tmpfs


def io_error() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = sqlite3.SQLITE_IOERR | (3 << 8)  # SQLITE_IOERR_WRITE, as the module sets it
    return error


def test_an_io_error_on_a_full_file_system_says_to_free_space(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        fill(disk)
        failure = database_failure(f"sqlite:///{disk}/system.db", io_error())
    assert "free some space on the file system of" in str(failure), str(failure)


def test_an_io_error_with_room_left_is_not_called_a_full_disk(tmp_path: Path) -> None:
    failure = database_failure(f"sqlite:///{tmp_path}/system.db", io_error())
    assert "check that it is reachable and writable" in str(failure), str(failure)
