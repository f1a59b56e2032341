"""`strata job …` and `strata schedule …`: project-file edits, runs through the pipeline, cron export."""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type information

from strata.project.project import Project
from tests.helpers import Cli, snapshot, write_project
from tests.history.conftest import PROJECT


def _file(root: Path) -> str:
    return (root / "strata.yml").read_text()


def test_job_add_writes_meltanos_shape(strata: Cli, root: Path) -> None:
    result = strata("job", "add", "nightly", "--tasks", '["tap-x target-y", ["tap-y hash-pii target-y", "dbt:run"]]')
    assert result.code == 0, result.err
    assert result.out == "Added job `nightly` to strata.yml\n"
    assert (
        "  - name: nightly\n    tasks:\n      - tap-x target-y\n      - [tap-y hash-pii target-y, dbt:run]\n"
        in _file(root)
    )
    assert strata("job", "add", "one", "--tasks", "tap-x target-y").code == 0
    assert strata("job", "add", "both", "--tasks", "[nightly, 'features:build[a/b,c]']").code == 0
    jobs = {j.name: j.tasks for j in Project(root).model.jobs}
    assert jobs == {
        "nightly": ["tap-x target-y", ["tap-y hash-pii target-y", "dbt:run"]],
        "one": ["tap-x target-y"],
        "both": ["nightly", "features:build[a/b,c]"],
    }


def test_job_list_shows_tasks_and_blocks(strata: Cli, root: Path) -> None:
    assert "no jobs" in strata("job", "list").out
    strata("job", "add", "nightly", "--tasks", '["tap-x target-y", ["tap-y target-y"]]')
    result = strata("job", "list")
    assert result.out.splitlines() == ["job      tasks", "nightly  tap-x target-y, [tap-y target-y]"]
    data = strata("job", "list", "--json").json()
    assert data == [
        {
            "name": "nightly",
            "tasks": ["tap-x target-y", ["tap-y target-y"]],
            "blocks": ["tap-x", "target-y", "tap-y", "target-y"],
        }
    ]


BAD_JOBS = [
    (["job", "add", "j", "--tasks", "[tap-x"], "--tasks is not valid YAML"),
    (["job", "add", "j", "--tasks", "[tap-x, 1]"], "--tasks holds `1`, which is not a task"),
    (["job", "add", "j", "--tasks", "{a: b}"], "--tasks must name at least one task"),
    (["job", "add", "j", "--tasks", "[]"], "--tasks must name at least one task"),
    (["job", "add", "j", "--tasks", "['tap-x', []]"], "--tasks holds `[]`, which is not a task"),
    (["job", "add", "j", "--tasks", "[[tap-x, [target-y]]]"], "which is not a task"),
    (["job", "add", "j", "--tasks", "tap-z target-y"], "--tasks names `tap-z`, which is neither a plugin nor a job"),
    (["job", "add", "j", "--tasks", "nope:run"], "--tasks names `nope:run`"),
    (["job", "add", "j", "--tasks", "tap-x j"], "job `j` cannot run itself"),
    (["job", "add", "../etc", "--tasks", "tap-x target-y"], "`../etc` is not a valid job name"),
    (["job", "add", "tap-x", "--tasks", "tap-y target-y"], "`tap-x` is already a plugin name"),
    (["job", "add", "existing", "--tasks", "tap-y target-y"], "a job named `existing` already exists"),
    (["job", "remove", "nope"], "no job named `nope` in strata.yml; defined jobs: existing"),
    (["job", "remove", "existin"], "no job named `existin` in strata.yml; did you mean `existing`?"),
    (["job", "remove", "existing"], "job `existing` is used by schedule `daily`"),
    (["job", "run", "nope"], "no job named `nope`"),
    (["job", "add", "j"], "Missing option '--tasks'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_JOBS, ids=[" ".join(a) for a, _ in BAD_JOBS])
def test_bad_job_input_is_one_line_exit_2_and_changes_nothing(
    strata: Cli, root: Path, args: list[str], message: str
) -> None:
    assert strata("job", "add", "existing", "--tasks", "tap-x target-y").code == 0
    assert strata("schedule", "add", "daily", "--interval", "@daily", "--job", "existing").code == 0
    before = snapshot(root)
    result = strata(*args)
    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1 or "Usage:" in result.err
    assert snapshot(root) == before


def test_job_remove(strata: Cli, root: Path) -> None:
    strata("job", "add", "a", "--tasks", "tap-x target-y")
    strata("job", "add", "b", "--tasks", "[a, tap-y target-y]")
    blocked = strata("job", "remove", "a")
    assert blocked.code == 2
    assert "job `a` is used by job `b`" in blocked.err
    assert strata("job", "remove", "b").out == "Removed job `b` from strata.yml\n"
    assert strata("job", "remove", "a").code == 0
    assert Project(root).model.jobs == []


@dataclass
class Pipeline:
    """What the pipeline was asked to run."""

    calls: list[tuple[Project, list[str], Any]] = field(default_factory=list)


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """The real pipeline module with ``run_blocks`` replaced by a recorder."""
    from strata.ingest import pipeline as module

    seen = Pipeline()

    def run_blocks(project: Project, blocks: list[str], options: Any) -> list[Any]:
        seen.calls.append((project, blocks, options))
        return [module.RunResult(options.state_id or "dev:x", "ab" * 16, {"users": 4}, 1.25, 1, None)]

    monkeypatch.setattr(module, "run_blocks", run_blocks)
    return seen


def test_job_run_expands_nested_jobs_into_blocks(strata: Cli, root: Path, pipeline: Pipeline) -> None:
    strata("job", "add", "inner", "--tasks", "tap-x hash-pii target-y")
    strata("job", "add", "outer", "--tasks", "[inner, [tap-y target-y, dbt:run]]")
    result = strata("job", "run", "outer", "--full-refresh", "--state-id-suffix", "s1")
    assert result.code == 0, result.err
    assert result.out == f"dev:x: 4 records in 1.2 s, run {'ab' * 16}\n"
    ((project, blocks, options),) = pipeline.calls
    assert blocks == ["tap-x", "hash-pii", "target-y", "tap-y", "target-y", "dbt:run"]
    assert options.full_refresh
    assert options.state_id_suffix == "s1"
    assert not options.force
    assert project.environment is not None
    assert project.environment.name == "dev"


def test_a_job_cycle_in_a_hand_edited_file_is_an_error(strata: Cli, root: Path, pipeline: Pipeline) -> None:
    write_project(
        root, PROJECT + "    jobs:\n      - {name: a, tasks: [b]}\n      - {name: b, tasks: [tap-x target-y, a]}\n"
    )
    result = strata("job", "run", "a")
    assert result.code == 2
    assert "job `a` runs itself: a -> b -> a" in result.err
    assert pipeline.calls == []


def test_job_run_without_the_pipeline_is_a_clear_error(
    strata: Cli, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strata("job", "add", "j", "--tasks", "tap-x target-y")
    monkeypatch.setitem(sys.modules, "strata.ingest.pipeline", None)
    result = strata("job", "run", "j")
    assert result.code == 2
    assert (
        result.err
        == "strata: error: the pipeline is not available in this strata; run the plugins with `strata invoke` meanwhile\n"
    )


# -- schedules ----------------------------------------------------------------------------


def test_schedule_add_both_forms(strata: Cli, root: Path) -> None:
    strata("job", "add", "j", "--tasks", "tap-x target-y")
    assert strata("schedule", "add", "nightly", "--interval", "0 2 * * *", "--job", "j").code == 0
    result = strata(
        "schedule", "add", "x-to-y", "--interval", "@HOURLY", "--extractor", "tap-x", "--loader", "target-y"
    )
    assert result.code == 0, result.err
    assert result.out == "Added schedule `x-to-y` to strata.yml\n"
    schedules = Project(root).model.schedules
    assert [(s.name, s.interval, s.job, s.extractor, s.loader) for s in schedules] == [
        ("nightly", "0 2 * * *", "j", None, None),
        ("x-to-y", "@HOURLY", None, "tap-x", "target-y"),
    ]


BAD_SCHEDULES = [
    (["--interval", "0 2 * *", "--job", "j"], "`0 2 * *` is not a valid cron expression"),
    (["--interval", "0 0 2 * * *", "--job", "j"], "`0 0 2 * * *` is not a valid cron expression"),
    (["--interval", "61 2 * * *", "--job", "j"], "`61 2 * * *` is not a valid cron expression"),
    (["--interval", "every day", "--job", "j"], "`every day` is not a valid cron expression"),
    (["--interval", "@sometimes", "--job", "j"], "`@sometimes` is not an interval strata knows"),
    (["--interval", "@daily", "--job", "nope"], "no job named `nope` in strata.yml"),
    (["--interval", "@daily", "--extractor", "tap-z", "--loader", "target-y"], "no plugin named `tap-z`"),
    (
        ["--interval", "@daily", "--extractor", "target-y", "--loader", "tap-x"],
        "`target-y` is in `loaders`, not `extractors`",
    ),
    (["--interval", "@daily", "--extractor", "tap-x"], "a schedule needs --job, or --extractor and --loader"),
    (["--interval", "@daily"], "a schedule needs --job, or --extractor and --loader"),
    (["--interval", "@daily", "--job", "j", "--extractor", "tap-x"], "give either --job or --extractor and --loader"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SCHEDULES, ids=[" ".join(a) for a, _ in BAD_SCHEDULES])
def test_bad_schedule_input_is_one_line_exit_2_and_changes_nothing(
    strata: Cli, root: Path, args: list[str], message: str
) -> None:
    strata("job", "add", "j", "--tasks", "tap-x target-y")
    before = snapshot(root)
    result = strata("schedule", "add", "s", *args)
    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedule", "add", "daily", "--interval", "@daily", "--job", "j"], "a schedule named `daily` already exists"),
        (["schedule", "add", "a/b", "--interval", "@daily", "--job", "j"], "`a/b` is not a valid schedule name"),
        (["schedule", "add", "..", "--interval", "@daily", "--job", "j"], "`..` is not a valid schedule name"),
        (["schedule", "remove", "dialy"], "no schedule named `dialy` in strata.yml; did you mean `daily`?"),
        (["schedule", "run", "nope"], "no schedule named `nope`"),
    ],
)
def test_schedule_names_are_checked(strata: Cli, root: Path, args: list[str], message: str) -> None:
    strata("job", "add", "j", "--tasks", "tap-x target-y")
    strata("schedule", "add", "daily", "--interval", "@daily", "--job", "j")
    before = snapshot(root)
    result = strata(*args)
    assert result.code == 2
    assert message in result.err
    assert snapshot(root) == before


def test_schedule_list_gives_the_next_run(strata: Cli, root: Path) -> None:
    assert "no schedules" in strata("schedule", "list").out
    strata("job", "add", "j", "--tasks", "tap-x target-y")
    strata("schedule", "add", "nightly", "--interval", "30 2 * * *", "--job", "j")
    strata("schedule", "add", "by-hand", "--interval", "@manual", "--extractor", "tap-x", "--loader", "target-y")
    before = datetime.now().astimezone()
    data = {s["name"]: s for s in strata("schedule", "list", "--json").json()}
    upcoming = datetime.fromisoformat(data["nightly"]["next_run"])
    assert (upcoming.hour, upcoming.minute) == (2, 30)
    assert before < upcoming <= before + timedelta(days=1)
    assert data["nightly"]["cron"] == "30 2 * * *"
    assert data["by-hand"]["next_run"] is None
    assert data["by-hand"]["extractor"] == "tap-x"
    lines = strata("schedule", "list").out.splitlines()
    assert lines[0].split() == ["schedule", "interval", "runs", "next", "run"]
    assert lines[1].split()[:7] == ["nightly", "30", "2", "*", "*", "*", "job"]
    assert upcoming.strftime("%Y-%m-%d 02:30") in lines[1]
    assert lines[2].endswith("tap-x -> target-y  never (@manual)")


def test_schedule_list_honours_start_date(strata: Cli, root: Path) -> None:
    write_project(
        root,
        PROJECT
        + "    schedules:\n      - {name: later, interval: '@daily', extractor: tap-x, loader: target-y, start_date: '2999-01-05'}\n",
    )
    (entry,) = strata("schedule", "list", "--json").json()
    assert entry["next_run"].startswith("2999-01-05T00:00:00")


def test_schedule_remove(strata: Cli, root: Path) -> None:
    strata("schedule", "add", "s", "--interval", "@daily", "--extractor", "tap-x", "--loader", "target-y")
    assert strata("schedule", "remove", "s").out == "Removed schedule `s` from strata.yml\n"
    assert Project(root).model.schedules == []


def test_schedule_run_of_a_job(strata: Cli, root: Path, pipeline: Pipeline) -> None:
    strata("job", "add", "j", "--tasks", "[tap-x target-y, tap-y target-y]")
    strata("schedule", "add", "s", "--interval", "@daily", "--job", "j")
    result = strata("schedule", "run", "s", "--dry-run")
    assert result.code == 0, result.err
    ((_, blocks, options),) = pipeline.calls
    assert blocks == ["tap-x", "target-y", "tap-y", "target-y"]
    assert options.dry_run
    assert options.state_id is None


def test_schedule_run_of_a_pair_uses_the_schedule_name_as_state_id_and_its_env(
    strata: Cli, root: Path, pipeline: Pipeline
) -> None:
    write_project(
        root,
        PROJECT
        + "    schedules:\n"
        + "      - name: x-to-y\n        interval: '@daily'\n        extractor: tap-x\n        loader: target-y\n"
        + "        env: {STRATA_ENVIRONMENT: prod, BATCH: 5, ROOT: $STRATA_PROJECT_ROOT}\n",
    )
    result = strata("schedule", "run", "x-to-y", "--force")
    assert result.code == 0, result.err
    ((project, blocks, options),) = pipeline.calls
    assert blocks == ["tap-x", "target-y"]
    assert options.state_id == "x-to-y"
    assert options.force
    assert project.environment is not None
    assert project.environment.name == "prod"
    assert project.variables["BATCH"] == "5"
    assert project.variables["ROOT"] == str(root)
    pipeline.calls.clear()
    assert strata("-e", "dev", "schedule", "run", "x-to-y").code == 0
    environment = pipeline.calls[0][0].environment
    assert environment is not None
    assert environment.name == "dev"


def _cron_lines(out: str) -> list[tuple[str, list[str]]]:
    """Each crontab line as (5-field schedule, the shell command's words)."""
    jobs = []
    for line in out.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        expression = " ".join(fields[:5])
        assert croniter.is_valid(expression), expression
        jobs.append((expression, shlex.split(fields[5].replace("\\%", "%"))))
    return jobs


def test_schedule_export_to_cron(strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "my 100% project"
    write_project(
        root,
        PROJECT
        + "    jobs: [{name: j, tasks: [tap-x target-y]}]\n"
        + "    schedules:\n"
        + "      - {name: nightly, interval: '0 2 * * *', job: j}\n"
        + "      - {name: hourly.pair, interval: '@hourly', extractor: tap-x, loader: target-y, env: {STRATA_ENVIRONMENT: prod}}\n"
        + "      - {name: by-hand, interval: '@manual', job: j}\n",
    )
    monkeypatch.chdir(root)
    result = strata("schedule", "export", "--to", "cron")
    assert result.code == 0, result.err
    assert result.out.startswith(f"# strata schedules of {root}\n")
    assert "# by-hand: @manual, not run on a clock\n" in result.out
    assert "%" not in result.out.replace("\\%", "").split("\n", 2)[2]
    (nightly, nightly_cmd), (hourly, hourly_cmd) = _cron_lines(result.out)
    assert (nightly, hourly) == ("0 2 * * *", "0 * * * *")
    logs = str(root / ".strata" / "logs")
    assert nightly_cmd[:4] == ["mkdir", "-p", logs, "&&"]
    assert nightly_cmd[5:] == [
        "-C",
        str(root),
        "-e",
        "dev",
        "schedule",
        "run",
        "nightly",
        ">>",
        f"{logs}/schedule-nightly.log",
        "2>&1",
    ]
    assert Path(nightly_cmd[4]).name == "strata"
    assert hourly_cmd[5:12] == ["-C", str(root), "-e", "prod", "schedule", "run", "hourly.pair"]
    done = subprocess.run(["/bin/sh", "-n", "-c", _hourly_command(result.out)], check=False)
    assert done.returncode == 0


def _hourly_command(out: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith("0 * * * *"))
    return line.split(None, 5)[5].replace("\\%", "%")


def test_schedule_export_without_a_default_environment_passes_no_e(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(
        tmp_path,
        "plugins:\n  extractors: [{name: tap-x, executable: /bin/true}]\n  loaders: [{name: target-y, executable: /bin/true}]\n"
        "schedules: [{name: s, interval: '*/15 * * * *', extractor: tap-x, loader: target-y}]\n",
    )
    monkeypatch.chdir(tmp_path)
    ((expression, command),) = _cron_lines(strata("schedule", "export", "--to", "cron").out)
    assert expression == "*/15 * * * *"
    assert "-e" not in command
    assert command[5:10] == ["-C", str(tmp_path), "schedule", "run", "s"]


def test_schedule_export_refuses_a_schedule_it_cannot_run(strata: Cli, root: Path) -> None:
    write_project(root, PROJECT + "    schedules: [{name: s, interval: '@daily', job: gone}]\n")
    result = strata("schedule", "export", "--to", "cron")
    assert result.code == 2
    assert "no job named `gone`" in result.err
    bad_name = strata("schedule", "export", "--to", "airflow")
    assert bad_name.code == 2


@pytest.mark.parametrize("target", ["cron", "dagster"])
def test_schedule_export_skips_a_broken_schedule_with_a_warning_and_exports_the_rest(
    strata: Cli, root: Path, target: str
) -> None:
    write_project(
        root,
        PROJECT
        + "    jobs: [{name: j, tasks: [tap-x target-y]}]\n"
        + "    schedules:\n"
        + "      - {name: gone-job, interval: '@daily', job: gone}\n"
        + "      - {name: nightly, interval: '0 2 * * *', job: j}\n"
        + "      - {name: bad-clock, interval: 'at noon', job: j}\n",
    )
    result = strata("schedule", "export", "--to", target)
    assert result.code == 0, result.err
    gone, clock = result.err.splitlines()
    assert (
        gone
        == "strata: warning: schedule `gone-job` is not exported: no job named `gone` in strata.yml; defined jobs: j"
    )
    assert clock.startswith(
        "strata: warning: schedule `bad-clock` is not exported: `at noon` is not a valid cron expression; write 5 fields"
    )
    assert "nightly" in result.out
    assert "gone-job" not in result.out.replace("# gone-job: not exported", "")
    if target == "cron":
        assert [expression for expression, _ in _cron_lines(result.out)] == ["0 2 * * *"]
        assert "# gone-job: not exported: no job named `gone` in strata.yml\n" in result.out


def test_listing_jobs_and_schedules_loads_no_database_library(root: Path) -> None:
    (root / "strata.yml").write_text(
        _file(root) + "jobs: [{name: j, tasks: [tap-x target-y]}]\nschedules: [{name: s, interval: '@daily', job: j}]\n"
    )
    code = (
        "import sys\nfrom strata.cli import main\n"
        "for args in (['job', 'list'], ['schedule', 'list']):\n"
        "    try:\n        main(args)\n    except SystemExit as exc:\n        assert exc.code == 0, exc.code\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    loaded = set(done.stderr.split())
    assert "strata.project.jobs_edit" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"sqlalchemy", "psycopg", "polars", "duckdb"}}
    assert "strata.history" not in loaded
