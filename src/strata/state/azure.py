"""``azure://container/prefix``: Azure Blob Storage through azure-storage-blob.

Settings: ``state_backend.azure.connection_string``, else ``AZURE_STORAGE_CONNECTION_STRING``.
The container must exist. Layout and lease: :mod:`strata.state.objects`; a lease is created
with ``If-None-Match: *`` and changed with ``If-Match`` (Azure's ETag conditions), not with
Azure's own blob leases, which last at most 60 seconds unless infinite.
"""

from __future__ import annotations

import contextlib
import email.utils
import weakref
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import ContainerClient

from strata.errors import StateBackendError
from strata.state.objects import ObjectStateBackend, StoredObject

if TYPE_CHECKING:
    from collections.abc import Iterator


def _code(exc: Exception) -> str | None:
    """The storage service's error code (``BlobNotFound``, ``ContainerNotFound``…), set by the SDK."""
    code = getattr(exc, "error_code", None)
    return str(code) if code is not None else None


class AzureStateBackend(ObjectStateBackend):
    """States as blobs in an Azure storage container."""

    def __init__(self, container: str, prefix: str = "", *, connection_string: str) -> None:
        super().__init__(prefix)
        self.container_name = container
        try:
            self.container = ContainerClient.from_connection_string(
                connection_string, container, connection_timeout=10, read_timeout=30, retry_total=3
            )
        except ValueError:
            raise StateBackendError(
                "the Azure storage connection string cannot be read",
                "check state_backend.azure.connection_string or AZURE_STORAGE_CONNECTION_STRING",
            ) from None
        self._finalizer = weakref.finalize(self, self.container.close)

    def describe(self) -> str:
        return f"azure://{self.container_name}/{self.prefix}"

    def close(self) -> None:
        self._finalizer()

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except HttpResponseError as exc:
            code = _code(exc) or exc.status_code
            if code == "ContainerNotFound":
                raise StateBackendError(
                    f"container `{self.container_name}` does not exist", "create it, or fix state_backend.uri"
                ) from None
            message = (exc.message or str(exc)).strip().splitlines()[0]
            raise StateBackendError(
                f"{self.describe()}{key[len(self.prefix) :]}: {code}: {message}",
                "check the container and the connection string",
            ) from None
        except AzureError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StateBackendError(
                f"{self.describe()} cannot be reached: {first}", "check the connection string and the network"
            ) from None

    def _read(self, key: str) -> StoredObject | None:
        dates: list[str] = []

        def keep_date(response: Any) -> None:
            if date := response.http_response.headers.get("Date"):
                dates.append(date)

        with self._errors(key):
            try:
                download = self.container.download_blob(key, raw_response_hook=keep_date)
                data = download.readall()
            except ResourceNotFoundError as exc:
                if _code(exc) == "ContainerNotFound":
                    raise
                return None
        properties = download.properties
        return StoredObject(
            data,
            str(properties.etag),
            properties.last_modified.timestamp(),
            email.utils.parsedate_to_datetime(dates[-1]).timestamp() if dates else None,
        )

    def _write(self, key: str, data: bytes, *, if_absent: bool = False, if_etag: str | None = None) -> str | None:
        conditions: dict[str, Any] = {}
        if if_etag is not None and not if_absent:
            conditions = {"etag": if_etag, "match_condition": MatchConditions.IfNotModified}
        with self._errors(key):
            try:
                result = self.container.get_blob_client(key).upload_blob(data, overwrite=not if_absent, **conditions)
            except (ResourceExistsError, ResourceModifiedError):
                return None
            except ResourceNotFoundError as exc:
                if conditions and _code(exc) != "ContainerNotFound":
                    return None
                raise
        return str(result["etag"])

    def _remove(self, key: str, *, if_etag: str | None = None) -> bool:
        conditions: dict[str, Any] = {}
        if if_etag is not None:
            conditions = {"etag": if_etag, "match_condition": MatchConditions.IfNotModified}
        with self._errors(key):
            try:
                self.container.delete_blob(key, **conditions)
            except ResourceModifiedError:
                return False
            except ResourceNotFoundError as exc:
                if _code(exc) == "ContainerNotFound":
                    raise
                return False
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        with self._errors(prefix):
            names = list(self.container.list_blob_names(name_starts_with=prefix or None))
        yield from names
