"""The state interface: records, how partial and completed state combine, the backend contract.

Meltano's model, kept exactly: a state id has a *completed* state (written when a run succeeds)
and a *partial* state (written while a run goes, or by ``state merge``). The state a tap starts
from is the partial state deep-merged onto the completed one: mappings are merged key by key,
anything else (numbers, strings, lists) is replaced. Stored states have Meltano's shape,
``{"singer_state": {...}}``.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from strata.errors import StateBackendError, UsageError

if TYPE_CHECKING:
    from types import TracebackType

    from strata.state.lock import Lease, LeaseRequest, StateLock

SINGER_STATE_KEY = "singer_state"
"""The top-level key Meltano stores a Singer state under."""


def merge_dicts(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` deep-merged onto ``base`` (Meltano's ``merge``): mappings recurse, other values replace.

    Neither argument is changed; the result shares nothing with them.
    """
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        below = out.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            out[key] = merge_dicts(below, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StateRecord:
    """What is stored under one state id."""

    completed: dict[str, Any] | None = None
    partial: dict[str, Any] | None = None
    updated_at: datetime | None = field(default=None, compare=False)

    def effective(self) -> dict[str, Any] | None:
        """The state a run starts from: partial deep-merged onto completed; ``None`` when both are empty."""
        if not self.completed and not self.partial:
            return None
        return merge_dicts(self.completed or {}, self.partial or {})

    def to_document(self, updated_at: datetime) -> bytes:
        """The JSON stored by the file and object backends: Meltano's ``state.json`` plus ``updated_at``."""
        document = {
            "completed": self.completed or {},
            "partial": self.partial or {},
            "updated_at": updated_at.isoformat(),
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_document(
        cls, data: bytes, where: str, modified: datetime | None = None, state_id: str = "ID"
    ) -> StateRecord:
        """Read :meth:`to_document`'s JSON, or a ``state.json`` Meltano wrote (no ``updated_at``)."""
        try:
            document = json.loads(data)
            completed = document.get("completed") or None
            partial = document.get("partial") or None
            stamp = document.get("updated_at")
            updated_at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else modified
            if not isinstance(completed, dict | None) or not isinstance(partial, dict | None):
                raise TypeError
        except (ValueError, TypeError, AttributeError):
            raise StateBackendError(
                f"{where} is not a state document (JSON with `completed` and `partial` objects)",
                f"fix the file or clear the state with `strata state clear '{state_id}'`",
            ) from None
        return cls(completed, partial, updated_at)


def merge_partial(record: StateRecord | None, new_partial: dict[str, Any]) -> StateRecord:
    """``record`` with ``new_partial`` deep-merged onto its partial state; the completed state is kept."""
    record = record or StateRecord()
    return StateRecord(record.completed, merge_dicts(record.partial or {}, new_partial), _utc_now())


def replace_partial(record: StateRecord | None, new_partial: dict[str, Any]) -> StateRecord:
    """``record`` with ``new_partial`` as its partial state (the old partial dropped); the completed state is kept."""
    record = record or StateRecord()
    return StateRecord(record.completed, copy.deepcopy(new_partial), _utc_now())


STATE_STRATEGIES = ("auto", "merge", "overwrite")
"""Meltano's ``--state-strategy`` values: how a run's states combine with the stored state."""


def merges(strategy: str, *, full_refresh: bool) -> bool:
    """Whether a run's states are merged into the stored state (Meltano's ``should_merge_states``).

    ``merge`` always; ``overwrite`` never; ``auto`` only with ``--full-refresh``, so that a full
    refresh of some streams keeps the bookmarks of the others.
    """
    return strategy == "merge" or (strategy == "auto" and full_refresh)


def confirm(record: StateRecord | None, new_state: dict[str, Any], *, merge: bool) -> StateRecord:
    """``record`` after a run's target confirmed ``new_state``: merged onto the partial state, or replacing it."""
    return merge_partial(record, new_state) if merge else replace_partial(record, new_state)


def finish(record: StateRecord, *, merge: bool) -> StateRecord:
    """``record`` at a run's success: its partial state becomes the completed state.

    Merging, the partial state is deep-merged onto the completed one; overwriting, it replaces it.
    """
    return complete(record, record.effective() if merge else record.partial)


def complete(record: StateRecord | None, new_state: dict[str, Any] | None) -> StateRecord:  # noqa: ARG001 - Meltano's semantics: a completed state replaces everything
    """A record whose completed state is ``new_state`` and whose partial state is cleared."""
    return StateRecord(copy.deepcopy(new_state) if new_state else None, None, _utc_now())


def parse_state(text: str, *, require_singer_state: bool = True) -> dict[str, Any]:
    """A state given on the command line: a JSON object, with a ``singer_state`` object unless told otherwise."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"the state is not valid JSON ({exc})", "give a JSON object such as '{\"singer_state\": {...}}'"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f"the state must be a JSON object, not {type(value).__name__}",
            "give a JSON object such as '{\"singer_state\": {...}}'",
        )
    if require_singer_state and not isinstance(value.get(SINGER_STATE_KEY), dict):
        found = "no" if SINGER_STATE_KEY not in value else "a non-object"
        raise UsageError(
            f"the state has {found} `{SINGER_STATE_KEY}` object at the top level",
            "wrap it as '{\"singer_state\": {...}}' as Meltano stores it, or pass --force to store it as it is",
        )
    return value


class StateBackend(ABC):
    """Where states and their locks live. One implementation per module, chosen by URI.

    Every method checks the state id first (:func:`~strata.state.ids.check_state_id`); a backend
    never builds a path, key or query from an unchecked id. ``put`` is atomic: a reader sees the
    old record or the new one, never a mix, and a writer killed halfway leaves the old one.
    """

    @abstractmethod
    def describe(self) -> str:
        """Where the states are, without credentials (for messages)."""

    @abstractmethod
    def get(self, state_id: str) -> StateRecord | None:
        """The record stored under ``state_id``, or ``None``."""

    @abstractmethod
    def put(self, state_id: str, record: StateRecord) -> None:
        """Store ``record`` under ``state_id`` atomically, stamped with the current time."""

    @abstractmethod
    def delete(self, state_id: str) -> bool:
        """Remove the record; ``False`` when there was none."""

    @abstractmethod
    def ids(self, pattern: str | None = None) -> list[str]:
        """Every stored state id, sorted; only those matching the glob ``pattern`` when given."""

    def lock(self, state_id: str, *, ttl: float = 300, force: bool = False, auto_refresh: bool = True) -> StateLock:
        """Take the lock on ``state_id`` for one holder; use the result as a context manager.

        Raises :class:`~strata.errors.StateLockedError` while another live holder has it. A lease
        not renewed for ``ttl`` seconds is taken over; ``force`` takes it regardless. See
        :mod:`strata.state.lock`.
        """
        from strata.state.ids import check_state_id
        from strata.state.lock import acquire

        check_state_id(state_id)
        return acquire(self, state_id, ttl=ttl, force=force, auto_refresh=auto_refresh)

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Release connections and clients."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- lease primitives, used by strata.state.lock ------------------------------------------

    @abstractmethod
    def _read_lease(self, state_id: str) -> Lease | None:
        """The current lease, with ``expired`` judged by the backend's clock."""

    @abstractmethod
    def _create_lease(self, state_id: str, request: LeaseRequest) -> str | None:
        """Write a lease if none exists; its tag, or ``None`` when one exists."""

    @abstractmethod
    def _replace_lease(self, state_id: str, request: LeaseRequest, tag: str) -> str | None:
        """Overwrite the lease if it still has ``tag``; the new tag, or ``None`` when it changed."""

    @abstractmethod
    def _drop_lease(self, state_id: str, tag: str) -> bool:
        """Delete the lease if it still has ``tag``."""
