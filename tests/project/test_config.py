"""Config precedence layer by layer, ${VAR} expansion, secrets, and `strata config`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from strata.errors import VariableNotSetError
from strata.project.expand import expand_str
from strata.project.project import Project
from strata.project.settings import resolve
from tests.helpers import Cli, snapshot, write_project

LAYERED = """
    default_environment: dev
    environments:
      - name: dev
        config:
          plugins:
            extractors:
              - name: tap-db
                config: {host: dev.example}
      - name: prod
    plugins:
      extractors:
        - name: tap-db
          executable: tap-db
          settings:
            - {name: host, value: default.example}
            - {name: port, kind: integer, value: 5432}
            - {name: user, value: reader}
            - {name: password, kind: password}
          config:
            host: file.example
            port: 6543
        - name: tap-db--eu
          inherit_from: tap-db
          config:
            user: eu_reader
"""


@pytest.fixture
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path, LAYERED)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _value(root: Path, plugin: str, key: str, **kwargs: object) -> tuple[object, str]:
    item = resolve(Project(root, **kwargs), plugin).values[key]  # type: ignore[arg-type]
    return item.value, item.describe()


def test_layers_one_by_one(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # default < project file
    assert _value(layered, "tap-db", "user") == ("reader", "default (declared in strata.yml)")
    assert _value(layered, "tap-db", "port") == (6543, "strata.yml:21")
    # project file < environment
    assert _value(layered, "tap-db", "host") == ("dev.example", "environment dev (strata.yml:8)")
    assert _value(layered, "tap-db", "host", environment="prod") == ("file.example", "strata.yml:20")
    # environment < .env
    (layered / ".env").write_text("TAP_DB_HOST=dotenv.example\nTAP_DB_PORT=7000\n")
    assert _value(layered, "tap-db", "host") == ("dotenv.example", ".env (TAP_DB_HOST)")
    assert _value(layered, "tap-db", "port") == (7000, ".env (TAP_DB_PORT)")  # cast to the declared kind
    # .env < process environment
    monkeypatch.setenv("TAP_DB_HOST", "process.example")
    assert _value(layered, "tap-db", "host") == ("process.example", "env (TAP_DB_HOST)")
    # process environment < command line
    settings = resolve(Project(layered), "tap-db", overrides={"host": "cli.example"})
    assert settings.values["host"].value == "cli.example"
    assert settings.values["host"].source == "command line"


def test_inherit_from_sits_between_default_and_own_config(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _value(layered, "tap-db--eu", "port") == (6543, "inherited (from tap-db)")
    assert _value(layered, "tap-db--eu", "user") == ("eu_reader", "strata.yml:25")
    # the child has its own variable prefix, TAP_DB__EU_, which beats the parent's value
    monkeypatch.setenv("TAP_DB__EU_PORT", "1111")
    assert _value(layered, "tap-db--eu", "port") == (1111, "env (TAP_DB__EU_PORT)")
    assert _value(layered, "tap-db", "port") == (6543, "strata.yml:21")


def test_environment_is_chosen_by_flag_variable_or_default(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Project(layered).environment.name == "dev"  # type: ignore[union-attr]
    monkeypatch.setenv("STRATA_DEFAULT_ENVIRONMENT", "prod")  # project settings take STRATA_<SETTING>
    assert Project(layered).environment.name == "prod"  # type: ignore[union-attr]
    monkeypatch.setenv("STRATA_DEFAULT_ENVIRONMENT", "dev")
    monkeypatch.setenv("STRATA_ENVIRONMENT", "prod")
    assert Project(layered).environment.name == "prod"  # type: ignore[union-attr]
    assert Project(layered, environment="dev").environment.name == "dev"  # type: ignore[union-attr]


def test_unknown_environment_is_a_usage_error(strata: Cli, layered: Path) -> None:
    result = strata("-e", "qa", "config", "tap-db", "list")
    assert result.code == 2
    assert "environment `qa` is not defined in strata.yml (defined: dev, prod)" in result.err


def test_expansion_forms() -> None:
    env = {"A": "a", "EMPTY": ""}
    assert expand_str("${A}/$A/${B:-b}/${EMPTY:-e}/${EMPTY-e}/$$A/\\$A", env, "x", strict=True) == "a/a/b/e//$A/$A"
    with pytest.raises(VariableNotSetError, match=r"x uses \$\{NOPE\}, which is not set"):
        expand_str("pre-${NOPE}", env, "x", strict=True)


def test_an_unset_variable_expands_to_empty_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert expand_str("pre-${UNSET_FORMS}-$UNSET_FORMS", {}, "x", strict=False) == "pre--"
    assert expand_str("${UNSET_FORMS}", {}, "y", strict=False) == ""
    warning = "x uses ${UNSET_FORMS}, which is not set; it expands to empty (set ff.strict_env_var_mode to make this an error)"
    assert [r.getMessage() for r in caplog.records] == [warning]


def test_expansion_in_config_sees_dotenv_and_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(
        tmp_path,
        """
        env: {DATA: "${STRATA_PROJECT_ROOT}/data"}
        plugins:
          loaders:
            - name: target-x
              executable: target-x
              config: {path: "${DATA}/out", host: "${HOST:-localhost}", user: "${DB_USER}"}
        """,
    )
    (tmp_path / ".env").write_text("DB_USER=alice\n")
    config = resolve(Project(tmp_path), "target-x").config()
    assert config == {"path": f"{tmp_path.resolve()}/data/out", "host": "localhost", "user": "alice"}


def test_unset_variable_is_one_clear_error_and_list_still_shows_the_rest(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_FF_STRICT_ENV_VAR_MODE", "1")
    write_project(
        tmp_path,
        """
        plugins:
          loaders:
            - name: target-x
              executable: /bin/true
              config: {password: "${DB_PASSWORD}", host: h}
        """,
    )
    monkeypatch.chdir(tmp_path)
    listed = strata("config", "target-x", "list")
    assert listed.code == 0
    assert "host=h (from strata.yml:5)" in listed.out
    assert "password (error: strata.yml:5 `password` uses ${DB_PASSWORD}, which is not set" in listed.out
    invoked = strata("invoke", "target-x")
    assert invoked.code == 2
    assert "uses ${DB_PASSWORD}, which is not set; set DB_PASSWORD in the environment or in .env" in invoked.err


def test_nested_config_is_flattened_and_nested_back(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """
        plugins:
          loaders:
            - name: target-x
              executable: target-x
              settings: [{name: stream_maps, kind: object}]
              config:
                batch: {size: 10, mode: fast}
                "flat.key": 1
                stream_maps: {users: {email: null}}
        """,
    )
    settings = resolve(Project(tmp_path), "target-x")
    assert {"batch.size", "batch.mode", "flat.key", "stream_maps"} <= set(settings.values)
    assert settings.config() == {
        "batch": {"size": 10, "mode": "fast"},
        "flat": {"key": 1},
        "stream_maps": {"users": {"email": None}},
    }


def test_secrets_by_kind_and_by_name_are_redacted(strata: Cli, layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_DB_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("TAP_DB_API_TOKEN", "tok-123")
    write_project(layered, LAYERED.replace("port: 6543", "port: 6543\n            api_token: placeholder"))
    for args in (
        ("config", "tap-db", "list"),
        ("--json", "config", "tap-db", "list"),
        ("config", "tap-db", "get", "password"),
    ):
        result = strata(*args)
        assert result.code == 0
        assert "hunter2-secret" not in result.out + result.err
        assert "tok-123" not in result.out + result.err
        assert "(redacted)" in result.out


def test_config_set_get_unset_round_trip_keeps_comments(strata: Cli, project: Path) -> None:
    assert strata("add", "loader", "target-x", "--executable", "target-x").code == 0
    text = (project / "strata.yml").read_text()
    (project / "strata.yml").write_text("# my comment\n" + text)
    assert strata("config", "target-x", "set", "batch.size", "100").code == 0
    assert strata("config", "target-x", "set", "name", "hello world").code == 0
    got = strata("--json", "config", "target-x", "get", "batch.size").json()
    assert got == {
        "name": "batch.size",
        "value": 100,
        "source": "strata.yml",
        "detail": "strata.yml:17",
        "secret": False,
    }
    assert resolve(Project(project), "target-x").config() == {"batch": {"size": 100}, "name": "hello world"}
    assert "# my comment" in (project / "strata.yml").read_text()
    assert strata("config", "target-x", "unset", "batch.size").code == 0
    assert resolve(Project(project), "target-x").config() == {"name": "hello world"}
    missing = strata("config", "target-x", "get", "batch.size")
    assert missing.code == 2
    assert "no setting `batch.size`" in missing.err


def test_config_set_in_an_environment(strata: Cli, project: Path) -> None:
    strata("add", "loader", "target-x", "--executable", "target-x")
    assert strata("-e", "prod", "config", "target-x", "set", "host", "prod.db").code == 0
    assert resolve(Project(project, environment="prod"), "target-x").values["host"].value == "prod.db"
    assert "host" not in resolve(Project(project, environment="dev"), "target-x").values


def test_secrets_go_to_dotenv_owner_only_never_to_the_project_file(strata: Cli, project: Path) -> None:
    strata("add", "loader", "target-x", "--executable", "target-x")
    result = strata("config", "target-x", "set", "password", "s3cr3t 'quoted'")
    assert result.code == 0
    assert "s3cr3t" not in result.out
    assert "s3cr3t" not in (project / "strata.yml").read_text()
    dotenv = project / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    assert resolve(Project(project), "target-x").values["password"].value == "s3cr3t 'quoted'"
    assert strata("config", "target-x", "set", "--secret", "region", "eu-1").code == 0
    assert "TARGET_X_REGION" in dotenv.read_text()
    assert "eu-1" not in (project / "strata.yml").read_text()
    assert strata("config", "target-x", "unset", "password").code == 0
    assert "TARGET_X_PASSWORD" not in dotenv.read_text()
    assert resolve(Project(project), "target-x").values["password"].value is None


def test_config_on_unknown_plugin_suggests_and_changes_nothing(strata: Cli, project: Path) -> None:
    strata("add", "loader", "target-jsonl", "--executable", "target-jsonl")
    before = snapshot(project)
    result = strata("config", "target-jsnl", "set", "a", "1")
    assert result.code == 2
    assert "no plugin named `target-jsnl` in strata.yml; did you mean `target-jsonl`?" in result.err
    assert snapshot(project) == before


def test_bad_value_for_declared_kind_is_refused(strata: Cli, layered: Path) -> None:
    before = snapshot(layered)
    result = strata("config", "tap-db", "set", "port", "many")
    assert result.code == 2
    assert "`port` is not a valid integer; give an integer value" in result.err
    assert "many" not in result.err
    assert snapshot(layered) == before


def test_project_settings_are_overridden_by_strata_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path, "state_backend:\n  uri: file://.strata/state\n")
    assert Project(tmp_path).setting("state_backend.uri") == "file://.strata/state"
    (tmp_path / ".env").write_text("STRATA_STATE_BACKEND_URI=sqlite:///dotenv.db\n")
    assert Project(tmp_path).setting("state_backend.uri") == "sqlite:///dotenv.db"
    monkeypatch.setenv("STRATA_STATE_BACKEND_URI", "sqlite:///env.db")
    assert Project(tmp_path).setting("state_backend.uri") == "sqlite:///env.db"
    assert Project(tmp_path).setting("no.such") is None


UNSET_PASSWORD = """
    plugins:
      loaders:
        - name: target-x
          executable: /bin/true
          config: {password: "${UNSET_DB_PASSWORD}", host: h}
"""


def test_unset_variable_expands_to_empty_with_one_warning_as_in_meltano(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, UNSET_PASSWORD)
    monkeypatch.chdir(tmp_path)
    invoked = strata("invoke", "target-x")
    assert invoked.code == 0, invoked.err
    (line,) = invoked.err.splitlines()
    assert line.endswith(
        " warning  strata.yml:5 `password` uses ${UNSET_DB_PASSWORD}, which is not set; it expands to empty "
        "(set ff.strict_env_var_mode to make this an error)"
    )
    listed = strata("config", "target-x", "list")
    assert listed.code == 0
    assert "UNSET_DB_PASSWORD" not in listed.err
    assert "error" not in listed.out


@pytest.mark.parametrize(
    ("variable", "in_file"),
    [
        ("MELTANO_FF_STRICT_ENV_VAR_MODE", ""),
        ("STRATA_FF_STRICT_ENV_VAR_MODE", ""),
        ("", "ff: {strict_env_var_mode: true}"),
    ],
)
def test_strict_env_var_mode_makes_an_unset_variable_an_error(
    strata: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, in_file: str
) -> None:
    write_project(tmp_path, UNSET_PASSWORD + in_file + "\n")
    if variable:
        monkeypatch.setenv(variable, "true")
    monkeypatch.chdir(tmp_path)
    invoked = strata("invoke", "target-x")
    assert invoked.code == 2
    error = (
        "strata: error: strata.yml:5 `password` uses ${UNSET_DB_PASSWORD}, which is not set; "
        "set UNSET_DB_PASSWORD in the environment or in .env, or write ${UNSET_DB_PASSWORD:-default}"
    )
    assert invoked.err.splitlines() == [error]
