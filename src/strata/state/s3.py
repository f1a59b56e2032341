"""``s3://bucket/prefix``: S3 and S3-compatible object storage through boto3.

Settings: ``state_backend.s3.endpoint_url`` (for S3-compatible servers),
``state_backend.s3.aws_access_key_id`` and ``aws_secret_access_key`` (else the URI's
``key:secret@``, else boto3's own chain: ``AWS_ACCESS_KEY_ID``…, profiles, instance roles).
The bucket must exist. Layout and lease: :mod:`strata.state.objects`; the lease needs conditional
writes (``If-None-Match``, ``If-Match`` on PutObject and DeleteObject), which AWS S3 has.
"""

from __future__ import annotations

import contextlib
import email.utils
import weakref
from typing import TYPE_CHECKING, Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # type: ignore[import-untyped]

from strata.errors import StateBackendError
from strata.state.objects import ObjectStateBackend, StoredObject

if TYPE_CHECKING:
    from collections.abc import Iterator

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class S3StateBackend(ObjectStateBackend):
    """States as objects in an S3 bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
    ) -> None:
        super().__init__(prefix)
        self.bucket = bucket
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
        )
        self.client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}),
        )
        self._finalizer = weakref.finalize(self, self.client.close)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def close(self) -> None:
        self._finalizer()

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except NoCredentialsError:
            raise StateBackendError(
                f"no AWS credentials for {self.describe()}",
                "set state_backend.s3.aws_access_key_id and aws_secret_access_key, or AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY",
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            if code == "NoSuchBucket":
                raise StateBackendError(
                    f"bucket `{self.bucket}` does not exist", "create it, or fix state_backend.uri"
                ) from None
            raise StateBackendError(
                f"{self.describe()}{key[len(self.prefix) :]}: {code}: {error.get('Message', exc)}",
                "check the bucket, the credentials and state_backend.s3.endpoint_url",
            ) from None
        except BotoCoreError as exc:
            raise StateBackendError(
                f"{self.describe()} cannot be reached: {exc}", "check state_backend.s3.endpoint_url and the network"
            ) from None

    def _read(self, key: str) -> StoredObject | None:
        with self._errors(key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _MISSING:
                    return None
                raise
            data = response["Body"].read()
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        return StoredObject(
            data,
            response["ETag"],
            response["LastModified"].timestamp(),
            email.utils.parsedate_to_datetime(date).timestamp() if date else None,
        )

    def _write(self, key: str, data: bytes, *, if_absent: bool = False, if_etag: str | None = None) -> str | None:
        conditions: dict[str, str] = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        elif if_etag is not None:
            conditions["IfMatch"] = if_etag
        with self._errors(key):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType="application/json", **conditions
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if conditions and (code in _CONDITION_FAILED or (if_etag and code in _MISSING)):
                    return None
                raise
        return str(response["ETag"])

    def _remove(self, key: str, *, if_etag: str | None = None) -> bool:
        conditions = {"IfMatch": if_etag} if if_etag is not None else {}
        with self._errors(key):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, **conditions)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in _MISSING or (conditions and code in _CONDITION_FAILED):
                    return False
                raise
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        with self._errors(prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        yield from keys
