"""Choosing a backend from the project, what each keeps on disk, and failures as one clear error."""

from __future__ import annotations

import json
import socket
import stat
import textwrap
from pathlib import Path

import pytest

from strata.errors import SettingError, StateBackendError, VariableNotSetError
from strata.project.project import Project
from strata.state import StateRecord, complete, open_backend, state_backend_for
from strata.state.file import FileStateBackend
from strata.state.sql import SqlStateBackend
from tests.helpers import write_project
from tests.servers import AzuriteServer, PostgresServer, S3Server, free_port

ID = "dev:tap-x-to-target-y"


def project_with(root: Path, backend: str = "", environ: dict[str, str] | None = None) -> Project:
    write_project(root, "version: 1\n" + textwrap.dedent(backend))
    return Project(root, environ=environ or {})


# -- choosing -------------------------------------------------------------------------------


def test_default_is_files_under_dot_strata(tmp_path: Path) -> None:
    with state_backend_for(project_with(tmp_path)) as backend:
        assert isinstance(backend, FileStateBackend)
        assert backend.root == tmp_path / ".strata" / "state"
        backend.put(ID, complete(None, {"singer_state": {}}))
    assert (tmp_path / ".strata" / "state" / ID / "state.json").is_file()


@pytest.mark.parametrize(
    ("uri", "kind", "where"),
    [
        ("file://states", FileStateBackend, "states"),
        ("file:///ABS/states", FileStateBackend, "ABS/states"),
        ("sqlite:///state/s.db", SqlStateBackend, "state/s.db"),
        ("sqlite:////ABS/s.db", SqlStateBackend, "ABS/s.db"),
        ("systemdb", SqlStateBackend, ".strata/state.db"),
    ],
)
def test_uris_choose_backends_relative_to_the_project_root(tmp_path: Path, uri: str, kind: type, where: str) -> None:
    root = tmp_path / "proj"
    uri = uri.replace("/ABS", str(tmp_path))
    with state_backend_for(project_with(root, f"state_backend:\n  uri: {uri}\n")) as backend:
        assert isinstance(backend, kind)
        backend.put(ID, complete(None, {"singer_state": {"a": 1}}))
        assert backend.ids() == [ID]
    base = tmp_path if "ABS" in where else root
    assert (base / where.removeprefix("ABS/")).exists()


def test_postgresql_urls_use_psycopg_3_and_hide_the_password(tmp_path: Path) -> None:
    with open_backend("postgresql://me:s3cret@db.example:5432/app", root=tmp_path) as backend:
        assert isinstance(backend, SqlStateBackend)
        assert backend.url.drivername == "postgresql+psycopg"
        assert "s3cret" not in backend.describe()
    with open_backend("postgres://me@db/app", root=tmp_path) as backend:
        assert isinstance(backend, SqlStateBackend)
        assert backend.url.drivername == "postgresql+psycopg"


def test_variables_override_the_file_strata_first_then_meltano(tmp_path: Path) -> None:
    text = "state_backend:\n  uri: file://from-file\n"
    meltano = {"MELTANO_STATE_BACKEND_URI": "file://from-meltano"}
    with state_backend_for(project_with(tmp_path, text, meltano)) as backend:
        assert isinstance(backend, FileStateBackend)
        assert backend.root == tmp_path / "from-meltano"
    both = {**meltano, "STRATA_STATE_BACKEND_URI": "file://from-strata"}
    with state_backend_for(project_with(tmp_path, text, both)) as backend:
        assert isinstance(backend, FileStateBackend)
        assert backend.root == tmp_path / "from-strata"


def test_variables_in_the_file_are_expanded(tmp_path: Path) -> None:
    text = "state_backend:\n  uri: file://${STATE_DIR}/x\n"
    with state_backend_for(project_with(tmp_path, text, {"STATE_DIR": str(tmp_path / "somewhere")})) as backend:
        assert isinstance(backend, FileStateBackend)
        assert backend.root == tmp_path / "somewhere" / "x"
    with pytest.raises(VariableNotSetError, match="STATE_DIR"):
        state_backend_for(project_with(tmp_path, text, {"MELTANO_FF_STRICT_ENV_VAR_MODE": "1"}))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/x", "state_backend.uri `gs://bucket/x` names no supported state backend"),
        ("ftp://me:pw@host/x", r"state_backend.uri `ftp://\*\*\*@host/x` names"),
        ("just-a-path", "names no supported state backend"),
        ("file://", "names no directory"),
        ("s3:///prefix", "names no bucket"),
        ("azure://container/x", "the azure state backend needs a connection string"),
    ],
)
def test_bad_uris_are_setting_errors(tmp_path: Path, uri: str, message: str) -> None:
    with pytest.raises(SettingError, match=message) as refused:
        open_backend(uri, root=tmp_path, environ={})
    assert refused.value.exit_code == 2


def test_s3_and_azure_settings_come_from_the_project(
    tmp_path: Path, moto_server: S3Server, azurite_server: AzuriteServer
) -> None:
    bucket = moto_server.create_bucket()
    container = azurite_server.create_container()
    text = f"""\
        state_backend:
          uri: s3://{bucket}/states
          s3:
            endpoint_url: {moto_server.endpoint_url}
            aws_access_key_id: {moto_server.access_key_id}
          azure:
            connection_string: ${{AZ}}
        """
    environ = {"STRATA_STATE_BACKEND_S3_AWS_SECRET_ACCESS_KEY": moto_server.secret_access_key}
    environ["AZ"] = azurite_server.connection_string
    project = project_with(tmp_path, text, environ)
    with state_backend_for(project) as backend:
        backend.put(ID, complete(None, {"singer_state": {"s3": True}}))
        assert backend.describe() == f"s3://{bucket}/states/"
    client = moto_server.client()
    try:
        assert client.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"] == f"states/{ID}/state.json"
    finally:
        client.close()
    environ["STRATA_STATE_BACKEND_URI"] = f"azure://{container}"
    with state_backend_for(project_with(tmp_path, text, environ)) as backend:
        backend.put(ID, complete(None, {"singer_state": {"azure": True}}))
        assert backend.ids() == [ID]
        assert backend.describe() == f"azure://{container}/"


def test_s3_keys_in_the_uri_and_from_dotenv(tmp_path: Path, moto_server: S3Server) -> None:
    bucket = moto_server.create_bucket()
    endpoint = {"s3": {"endpoint_url": moto_server.endpoint_url}}
    with open_backend(f"s3://AKID:SECRET@{bucket}/p", root=tmp_path, options=endpoint, environ={}) as backend:
        assert "SECRET" not in backend.describe()
        backend.put(ID, complete(None, {"singer_state": {}}))
        assert backend.ids() == [ID]
    (tmp_path / ".env").write_text("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n")
    text = f"state_backend:\n  uri: s3://{bucket}/p\n  s3:\n    endpoint_url: {moto_server.endpoint_url}\n"
    with state_backend_for(project_with(tmp_path, text)) as backend:
        assert backend.ids() == [ID]


# -- the file backend's files ---------------------------------------------------------------


def test_files_are_owner_only_and_meltanos_layout(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "state")
    backend.put(ID, complete(None, {"singer_state": {"a": 1}}))
    with backend.lock(ID):
        lease = json.loads((tmp_path / "state" / ID / "strata.lock").read_text())
        assert lease["holder"].endswith("@" + socket.gethostname())
    path = tmp_path / "state" / ID / "state.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["completed"] == {"singer_state": {"a": 1}}
    assert document["partial"] == {}
    assert not (tmp_path / "state" / ID / "strata.lock").exists()  # released
    assert backend.delete(ID)
    assert backend.ids() == []


def test_meltanos_state_files_are_read_and_strays_ignored(tmp_path: Path) -> None:
    (tmp_path / "state" / ID).mkdir(parents=True)
    (tmp_path / "state" / ID / "state.json").write_text('{"completed": {"singer_state": {"m": 1}}, "partial": {}}')
    (tmp_path / "state" / ID / ".state.json.abc.tmp").write_text('{"half')  # left by a killed writer
    (tmp_path / "state" / "not an id").mkdir()
    (tmp_path / "state" / "not an id" / "state.json").write_text("{}")
    (tmp_path / "state" / "dev:empty").mkdir()
    backend = FileStateBackend(tmp_path / "state")
    assert backend.ids() == [ID]
    record = backend.get(ID)
    assert record == StateRecord({"singer_state": {"m": 1}}, None)
    assert record is not None
    assert record.updated_at is not None


def test_a_corrupt_state_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state" / ID).mkdir(parents=True)
    (tmp_path / "state" / ID / "state.json").write_text("not json")
    with pytest.raises(StateBackendError, match=f"{ID}/state.json is not a state document") as failed:
        FileStateBackend(tmp_path / "state").get(ID)
    assert "strata state clear" in str(failed.value)


# -- servers that fail ----------------------------------------------------------------------


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    uri = f"postgresql://me:pw-{'x' * 8}@127.0.0.1:{free_port()}/db?connect_timeout=5"
    with open_backend(uri, root=tmp_path) as backend, pytest.raises(StateBackendError) as failed:
        backend.get(ID)
    message = str(failed.value)
    assert message.startswith("state database postgresql+psycopg://me:***@127.0.0.1:")
    assert "pw-xxxxxxxx" not in message
    assert "\n" not in message
    assert failed.value.exit_code == 1


def test_a_wrong_password_is_one_line(tmp_path: Path, postgres_server: PostgresServer) -> None:
    uri = postgres_server.dsn(password="wrong-password-123")
    with open_backend(uri, root=tmp_path) as backend, pytest.raises(StateBackendError, match="password") as failed:
        backend.ids()
    assert "wrong-password-123" not in str(failed.value)


def test_a_missing_bucket_or_container_is_named(
    tmp_path: Path, moto_server: S3Server, azurite_server: AzuriteServer
) -> None:
    options = {
        "s3": {
            "endpoint_url": moto_server.endpoint_url,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        },
        "azure": {"connection_string": azurite_server.connection_string},
    }
    with (
        open_backend("s3://no-such-bucket-here/x", root=tmp_path, options=options) as backend,
        pytest.raises(StateBackendError, match="bucket `no-such-bucket-here` does not exist; create it"),
    ):
        backend.put(ID, complete(None, {"singer_state": {}}))
    with (
        open_backend("azure://no-such-container/x", root=tmp_path, options=options) as backend,
        pytest.raises(StateBackendError, match="container `no-such-container` does not exist; create it"),
    ):
        backend.get(ID)
