"""Choosing a backend by URI (``state_backend.uri``), and reading its settings from the project.

| URI | backend |
|---|---|
| ``file://DIR`` (default ``file://.strata/state``; relative to the project root) | :mod:`strata.state.file` |
| ``sqlite:///PATH`` (relative to the project root), ``sqlite:////ABS`` | :mod:`strata.state.sql` |
| ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (psycopg 3) | :mod:`strata.state.sql` |
| ``s3://[KEY:SECRET@]BUCKET/PREFIX`` | :mod:`strata.state.s3` |
| ``azure://CONTAINER/PREFIX`` | :mod:`strata.state.azure` |
| ``systemdb`` (Meltano's default) | ``sqlite:///.strata/state.db`` |

Each backend module imports its client library, and is imported only when chosen, so commands
that never touch state never load SQLAlchemy, boto3 or the Azure SDK. boto3, the Azure SDK and
psycopg come with extras of ``strata-ml``; a missing one is named by :func:`strata.extras.needs`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from strata.errors import SettingError
from strata.extras import needs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TypeAlias

    from strata.project.project import Project
    from strata.state.base import StateBackend

    _Options: TypeAlias = Mapping[str, Mapping[str, str]]
    _Env: TypeAlias = Mapping[str, str]

DEFAULT_URI = "file://.strata/state"
"""Where states live when the project names no backend."""

SYSTEMDB_URI = "sqlite:///.strata/state.db"
"""What Meltano's ``systemdb`` means here."""


SETTINGS = (
    "uri",
    "s3.endpoint_url",
    "s3.aws_access_key_id",
    "s3.aws_secret_access_key",
    "azure.connection_string",
)
"""The ``state_backend.*`` settings read from the project (Meltano's names)."""

RUN_LOCK_SECONDS = 300.0
"""How long a run's lease counts without renewal, unless ``state_backend.lock_timeout_seconds`` says."""


def lock_seconds(project: Project) -> float:
    """Meltano's ``state_backend.lock_timeout_seconds``: how long a run's state lock counts unrenewed.

    strata renews a run's lease every third of that time, so it bounds how long a crashed run
    on another machine blocks the state id. (``lock_retry_seconds`` has no use here: a locked
    state id is refused at once instead of waited for.)
    """
    value = _setting(project, "state_backend.lock_timeout_seconds")
    if value in (None, ""):
        return RUN_LOCK_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if seconds <= 0:
        raise SettingError(
            f"state_backend.lock_timeout_seconds `{value}` is not a positive number of seconds",
            "set it to a whole number of seconds, e.g. 300",
        )
    return seconds


def state_backend_for(project: Project) -> StateBackend:
    """The project's state backend: ``state_backend.uri`` and its settings, or the default."""
    values = {name: _setting(project, f"state_backend.{name}") for name in SETTINGS}
    options: dict[str, Any] = {}
    for name, value in values.items():
        if name != "uri" and value not in (None, ""):
            group, key = name.split(".")
            options.setdefault(group, {})[key] = str(value)
    outside = {**project.dotenv, **project.environ}
    return open_backend(str(values["uri"] or DEFAULT_URI), root=project.root, options=options, environ=outside)


def open_backend(
    uri: str,
    *,
    root: Path,
    options: _Options | None = None,
    environ: Mapping[str, str] | None = None,
) -> StateBackend:
    """The backend for ``uri``; relative paths are relative to ``root``.

    ``options`` holds the ``state_backend.s3`` / ``state_backend.azure`` settings; ``environ`` is
    where variables such as ``AZURE_STORAGE_CONNECTION_STRING`` are looked up (default: the
    process environment).
    """
    uri = uri.strip()
    if uri == "systemdb":
        uri = SYSTEMDB_URI
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise SettingError(
            f"state_backend.uri `{_redact(uri)}` names no supported state backend",
            "use file://DIR, sqlite:///PATH, postgresql://…, s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX or systemdb",
        )
    return opener(uri, root, options or {}, os.environ if environ is None else environ)


def _redact(uri: str) -> str:
    return re.sub(r"(?<=://)[^/@]*@", "***@", uri)


def _setting(project: Project, name: str) -> Any:
    """``STRATA_<NAME>``, then Meltano's ``MELTANO_<NAME>`` (process, then ``.env``), then the file.

    Values from the project file have ``${VAR}`` expanded; values from variables are taken as
    they are.
    """
    from_variable = project.setting_variable(name)
    if from_variable is not None:
        return from_variable
    value = project.setting(name)
    if isinstance(value, str):
        from strata.project.expand import expand_str

        value = expand_str(value, project.variables, f"{project.file_name}: {name}", strict=project.strict_env_var_mode)
    return value


def _open_file(uri: str, root: Path, options: _Options, environ: _Env) -> StateBackend:  # noqa: ARG001
    from strata.state.file import FileStateBackend

    rest = uri.split("://", 1)[1]
    if not rest:
        raise SettingError("state_backend.uri `file://` names no directory", "write file://DIR or file:///ABS/DIR")
    return FileStateBackend(root / Path(unquote(rest)).expanduser())


def _open_sql(uri: str, root: Path, options: _Options, environ: _Env) -> StateBackend:  # noqa: ARG001
    from strata.state.sql import SqlStateBackend, database_url

    return SqlStateBackend(database_url(uri, root))


def _bucket_and_prefix(uri: str, what: str) -> tuple[str, str, str | None, str | None]:
    parts = urlsplit(uri)
    userinfo, _, name = parts.netloc.rpartition("@")
    if not name:
        raise SettingError(
            f"state_backend.uri `{_redact(uri)}` names no {what}", f"write {parts.scheme}://{what.upper()}/PREFIX"
        )
    user, _, password = userinfo.partition(":")
    return name, parts.path.strip("/"), unquote(user) or None, unquote(password) or None


def _open_s3(uri: str, root: Path, options: _Options, environ: _Env) -> StateBackend:  # noqa: ARG001
    bucket, prefix, key_id, secret = _bucket_and_prefix(uri, "bucket")
    s3 = options.get("s3", {})
    token = None
    if s3.get("aws_access_key_id"):
        key_id, secret = s3.get("aws_access_key_id"), s3.get("aws_secret_access_key")
    elif not key_id and environ.get("AWS_ACCESS_KEY_ID"):  # also from .env, which boto3 does not read
        key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        token = environ.get("AWS_SESSION_TOKEN")
    with needs("s3", "the S3 state backend"):
        from strata.state.s3 import S3StateBackend

    return S3StateBackend(
        bucket,
        prefix,
        endpoint_url=s3.get("endpoint_url") or environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"),
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"),
    )


def _open_azure(uri: str, root: Path, options: _Options, environ: _Env) -> StateBackend:  # noqa: ARG001
    container, prefix, _, _ = _bucket_and_prefix(uri, "container")
    connection_string = options.get("azure", {}).get("connection_string") or environ.get(
        "AZURE_STORAGE_CONNECTION_STRING"
    )
    if not connection_string:
        raise SettingError(
            "the azure state backend needs a connection string",
            "set state_backend.azure.connection_string or AZURE_STORAGE_CONNECTION_STRING",
        )
    with needs("azure", "the Azure state backend"):
        from strata.state.azure import AzureStateBackend

    return AzureStateBackend(container, prefix, connection_string=connection_string)


_OPENERS: dict[str, Callable[[str, Path, _Options, _Env], StateBackend]] = {
    "file": _open_file,
    "sqlite": _open_sql,
    "postgresql": _open_sql,
    "postgres": _open_sql,
    "s3": _open_s3,
    "azure": _open_azure,
}
