"""The system database: where it is, how it is opened, and its versioned schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from strata.errors import SystemDatabaseError
from strata.history import RunHistory
from strata.history import db as history_db
from strata.history.migrations import MIGRATIONS, VERSION_TABLE, Migration, migrate
from strata.history.tables import metadata
from strata.project.project import Project
from tests.helpers import Cli, write_project


def versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as connection:
        return [
            row[0] for row in connection.execute(sa.text("SELECT version FROM strata_schema_version ORDER BY version"))
        ]


def test_a_new_project_gets_the_default_sqlite_file_in_wal_mode(root: Path) -> None:
    with RunHistory.open(Project(root)) as history:
        assert history.url.database == str(root / ".strata" / "system.db")
        with history.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert versions(history.engine) == [m.version for m in MIGRATIONS]
    assert (root / ".strata" / "system.db").is_file()


@pytest.mark.usefixtures("database")
def test_migrating_from_empty_gives_exactly_the_tables_the_code_uses(root: Path) -> None:
    with RunHistory.open(Project(root)) as history:
        inspector = sa.inspect(history.engine)
        assert set(inspector.get_table_names()) == {VERSION_TABLE, *metadata.tables}
        for name, table in metadata.tables.items():
            assert [c["name"] for c in inspector.get_columns(name)] == [c.name for c in table.columns]


@pytest.mark.usefixtures("database")
def test_opening_again_changes_nothing_and_keeps_the_runs(root: Path) -> None:
    with RunHistory.open(Project(root)) as history:
        run = history.start("dev:tap-x-to-target-y", "dev", ["tap-x", "target-y"])
        run.finish("success")
    for _ in range(2):
        with RunHistory.open(Project(root)) as history:
            assert versions(history.engine) == [m.version for m in MIGRATIONS]
            assert [r.run_id for r in history.list()] == [run.run_id]


@pytest.mark.usefixtures("database")
def test_a_schema_newer_than_the_code_is_refused_and_left_alone(root: Path, strata: Cli) -> None:
    with RunHistory.open(Project(root)) as history, history.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO strata_schema_version (version, description, applied_at) VALUES (99, 'future', '2030-01-01')"
            )
        )
    with pytest.raises(
        SystemDatabaseError, match=rf"has schema version 99, newer than this strata knows \({MIGRATIONS[-1].version}\)"
    ):
        RunHistory.open(Project(root))
    result = strata("runs", "list")
    assert result.code == 1
    assert result.err.startswith("strata: error: the system database ")
    assert "upgrade strata" in result.err
    assert result.err.count("\n") == 1


def _add_note(connection: sa.Connection) -> None:
    connection.execute(sa.text("ALTER TABLE strata_runs ADD COLUMN note TEXT"))


def _broken(connection: sa.Connection) -> None:
    connection.execute(sa.text("CREATE TABLE half_done (x INTEGER)"))
    raise RuntimeError("step failed halfway")


@pytest.mark.usefixtures("database")
def test_steps_apply_in_order_once_and_a_failing_step_leaves_nothing_behind(root: Path) -> None:
    engine = history_db.create_engine(history_db.database_url(Project(root)))
    last = MIGRATIONS[-1].version
    steps = [*MIGRATIONS, Migration(last + 1, "note column", _add_note)]
    assert migrate(engine, "test", steps) == last + 1
    assert migrate(engine, "test", steps) == last + 1
    assert versions(engine) == list(range(1, last + 2))
    assert "note" in [c["name"] for c in sa.inspect(engine).get_columns("strata_runs")]
    with pytest.raises(RuntimeError, match="halfway"):
        migrate(engine, "test", [*steps, Migration(last + 2, "broken", _broken)])
    assert versions(engine) == list(range(1, last + 2))
    assert not sa.inspect(engine).has_table("half_done")
    with pytest.raises(SystemDatabaseError, match=f"schema version {last + 1}, newer than this strata knows"):
        migrate(engine, "test", MIGRATIONS)
    engine.dispose()


@pytest.mark.usefixtures("database")
def test_processes_opening_a_new_database_at_once_migrate_it_once(root: Path) -> None:
    code = "from strata.history import RunHistory\nfrom strata.project.project import Project\nRunHistory.open(Project.find()).close()\n"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=root, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with RunHistory.open(Project(root)) as history:
        assert versions(history.engine) == [m.version for m in MIGRATIONS]


def test_database_uri_relative_sqlite_paths_are_under_the_project_root(root: Path) -> None:
    write_project(root, "database_uri: sqlite:///data/history.db\n")
    assert history_db.database_url(Project(root)).database == str(root / "data" / "history.db")
    with RunHistory.open(Project(root)):
        pass
    assert (root / "data" / "history.db").is_file()


def test_strata_database_uri_overrides_the_file_and_meltano_sys_dir_means_dot_strata(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(root, "database_uri: sqlite:///$MELTANO_SYS_DIR_ROOT/meltano.db\n")
    assert history_db.database_url(Project(root)).database == str(root / ".strata" / "meltano.db")
    monkeypatch.setenv("STRATA_DATABASE_URI", "postgresql://app:s3cret@db.example/strata")
    url = history_db.database_url(Project(root))
    assert url.drivername == "postgresql+psycopg"
    assert history_db.shown(url) == "postgresql+psycopg://app:***@db.example/strata"


def test_other_databases_are_refused_with_one_line(root: Path, strata: Cli) -> None:
    write_project(root, "database_uri: mysql://u@h/db\n")
    result = strata("runs", "list")
    assert result.code == 1
    assert "database_uri uses `mysql`" in result.err
    assert result.err.count("\n") == 1


def test_an_unreachable_postgres_is_one_line_without_the_password(root: Path, strata: Cli) -> None:
    write_project(root, "database_uri: postgresql://app:s3cret@127.0.0.1:1/strata\n")
    result = strata("runs", "list")
    assert result.code == 1
    assert result.err.startswith(
        "strata: error: the system database postgresql+psycopg://app:***@127.0.0.1:1/strata failed"
    )
    assert "s3cret" not in result.err
    assert result.err.count("\n") == 1


@pytest.mark.usefixtures("database")
def test_runs_of_a_version_2_database_read_back_with_no_builds_after_the_upgrade(root: Path) -> None:
    engine = history_db.create_engine(history_db.database_url(Project(root)))
    assert migrate(engine, "test", MIGRATIONS[:2]) == 2
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO strata_runs (run_id, state_id, blocks, status, started_at, heartbeat_at, records) "
                "VALUES ('ab12', 'dev:x-to-y', '[]', 'success', '2026-01-01 00:00:00', '2026-01-01 00:00:00', "
                "'{\"users\": 3}')"
            )
        )
    engine.dispose()
    with RunHistory.open(Project(root)) as history:
        assert versions(history.engine) == [m.version for m in MIGRATIONS]
        old = history.get("ab12")
        assert old.builds == []
        assert old.records == {"users": 3}
        run = history.start("dev:features:build", "dev", ["features:build"])
        run.add_builds([{"feature": "clip", "written": 2, "failures": []}])
        run.finish("success")
        assert history.get(run.run_id).builds == [
            {"feature": "clip", "written": 2, "failures": [], "failed_batches": 0}
        ]
