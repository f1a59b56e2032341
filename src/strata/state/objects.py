"""What the S3 and Azure backends share: Meltano's object layout and a lease on conditional writes.

```
<prefix>/<state id>/state.json    {"completed": {...}, "partial": {...}, "updated_at": "..."}
<prefix>/<state id>/strata.lock   the lease: {"holder", "process", "token", "since", "ttl"}
```

A state is one object written in one request, so a reader sees the old object or the new one.
The lease is created with a conditional write that fails when the object exists
(``If-None-Match: *``), and replaced or deleted only while its ETag is the one that was read
(``If-Match``). Expiry is judged by the *server's* clocks: the lease is expired when the
``Date`` of the response that read it is more than ``ttl`` + 1 seconds after its
``Last-Modified`` (both have one-second resolution), so machines with wrong clocks still agree.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from strata.state.base import StateBackend, StateRecord
from strata.state.ids import check_state_id, is_state_id
from strata.state.lock import Lease, LeaseRequest

if TYPE_CHECKING:
    from collections.abc import Iterator

STATE_OBJECT = "state.json"
LEASE_OBJECT = "strata.lock"


@dataclass(frozen=True)
class StoredObject:
    """An object as read: its bytes, ETag, and two instants by the server's clock (epoch seconds)."""

    data: bytes
    etag: str
    modified: float
    server_now: float | None


class ObjectStateBackend(StateBackend):
    """States as objects under a prefix; subclasses provide five object primitives."""

    def __init__(self, prefix: str) -> None:
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""

    def _key(self, state_id: str, name: str) -> str:
        """The only place a key is made from an id."""
        return f"{self.prefix}{check_state_id(state_id)}/{name}"

    @abstractmethod
    def _read(self, key: str) -> StoredObject | None:
        """The object, or ``None`` when it does not exist."""

    @abstractmethod
    def _write(self, key: str, data: bytes, *, if_absent: bool = False, if_etag: str | None = None) -> str | None:
        """Write the object; its new ETag, or ``None`` when the condition did not hold."""

    @abstractmethod
    def _remove(self, key: str, *, if_etag: str | None = None) -> bool:
        """Delete the object; ``False`` when it did not exist or the condition did not hold."""

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix``."""

    # -- states --------------------------------------------------------------------------

    def get(self, state_id: str) -> StateRecord | None:
        key = self._key(state_id, STATE_OBJECT)
        stored = self._read(key)
        if stored is None:
            return None
        return StateRecord.from_document(
            stored.data, f"{self.describe()}: {key}", datetime.fromtimestamp(stored.modified, UTC), state_id
        )

    def put(self, state_id: str, record: StateRecord) -> None:
        self._write(self._key(state_id, STATE_OBJECT), record.to_document(datetime.now(UTC)))

    def delete(self, state_id: str) -> bool:
        key = self._key(state_id, STATE_OBJECT)
        if self._read(key) is None:
            return False
        return self._remove(key)

    def ids(self, pattern: str | None = None) -> list[str]:
        suffix = f"/{STATE_OBJECT}"
        found = []
        for key in self._list(self.prefix):
            state_id = key[len(self.prefix) :]
            if state_id.endswith(suffix):
                state_id = state_id[: -len(suffix)]
                if is_state_id(state_id) and (pattern is None or fnmatchcase(state_id, pattern)):
                    found.append(state_id)
        return sorted(found)

    # -- lease ---------------------------------------------------------------------------

    def _read_lease(self, state_id: str) -> Lease | None:
        stored = self._read(self._key(state_id, LEASE_OBJECT))
        if stored is None:
            return None
        now = stored.server_now if stored.server_now is not None else time.time()
        try:
            lease = json.loads(stored.data)
            ttl = float(lease["ttl"])
            return Lease(
                holder=str(lease["holder"]),
                token=str(lease["token"]),
                since=float(lease["since"]),
                expired=now - stored.modified > ttl + 1,
                tag=stored.etag,
                process=str(lease.get("process", "")),
            )
        except (ValueError, TypeError, KeyError):
            return Lease("an unreadable lock object", "", stored.modified, expired=True, tag=stored.etag)

    @staticmethod
    def _lease_body(request: LeaseRequest) -> bytes:
        return json.dumps(
            {
                "holder": request.holder,
                "process": request.process,
                "token": request.token,
                "since": request.since,
                "ttl": request.ttl,
            }
        ).encode()

    def _create_lease(self, state_id: str, request: LeaseRequest) -> str | None:
        return self._write(self._key(state_id, LEASE_OBJECT), self._lease_body(request), if_absent=True)

    def _replace_lease(self, state_id: str, request: LeaseRequest, tag: str) -> str | None:
        return self._write(self._key(state_id, LEASE_OBJECT), self._lease_body(request), if_etag=tag)

    def _drop_lease(self, state_id: str, tag: str) -> bool:
        return self._remove(self._key(state_id, LEASE_OBJECT), if_etag=tag)
