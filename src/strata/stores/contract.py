"""The store contract: the few primitives a backend implements; everything users call is built on them.

See docs/stores.md for what each must guarantee, how a store finds what changed since its last
sync, and how a new store (SQLite, PostgreSQL, ClickHouse) passes the shared conformance tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import narwhals as nw
    import pyarrow as pa

    from strata.features.keys import FeatureKey
    from strata.resolve.increment import Increment
    from strata.resolve.plan import FeaturePlan


class StoreBackend(ABC):
    """What a backend gives :class:`~strata.stores.base.MetadataStore`."""

    @abstractmethod
    def _open(self) -> None:
        """Connect; create the bookkeeping tables (meta, sync) unless read-only."""

    @abstractmethod
    def _close(self) -> None:
        """Disconnect; temp tables and registered frames go with the connection."""

    @abstractmethod
    def _get_meta(self, name: str) -> str | None:
        """A store-wide setting (``hash_algorithm``, the write sequence ``seq``)."""

    @abstractmethod
    def _set_meta(self, name: str, value: str) -> None:
        """Set a store-wide setting."""

    @abstractmethod
    def _has_table(self, table: str) -> bool:
        """Whether a feature's latest table exists (its first write creates it).

        Tables are never dropped: a store may remember "exists" for a connection's life, but must
        ask again for a table it has not seen (another connection or process may create it).
        """

    @abstractmethod
    def _write(
        self, plan: FeaturePlan, table: pa.Table, *, since: Mapping[str, int | None] | None = None, fresh: bool = False
    ) -> int | None:
        """Append checked rows in one transaction, under a new sequence number; return the number.

        Rows they supersede (same ids; for an expansion, same parent ids) move to history; the
        system columns (code versions, feature and snapshot version, ``strata_seq``,
        ``strata_written_at``, ``strata_deleted``) are stamped here. The number becomes the
        table's in the bookkeeping :meth:`_max_seq` reads, in the same transaction.

        ``since`` (table -> :meth:`_max_seq` as a waiting resolve last saw it): the write reads
        those numbers in its transaction, and returns None instead of its number when one
        differs (something else was written in between). ``fresh``: the caller knows that, if
        they do not differ, none of the rows has a stored row to supersede (``stores/sync.py``,
        ``is_fresh``); a backend may then skip looking for one.
        """

    def _write_in_place(self, plan: FeaturePlan, frame: Any) -> int | None:  # noqa: ARG002 - a backend's option
        """Write ``frame`` without its rows leaving the backend, when it is the backend's own (a SQL relation).

        Optional: None (the default) means "not mine", and the rows go through ``_write`` as Arrow.
        A backend that takes them checks them itself (``stores/checks.py``: ``check_columns``,
        ``check_facts``), settles the sync bookkeeping, and returns how many rows it wrote.
        """
        return None

    @abstractmethod
    def _delete(
        self, plan: FeaturePlan, ids: pa.Table, *, soft: bool, since: Mapping[str, int | None] | None = None
    ) -> tuple[int, int | None]:
        """Delete by id; return how many live rows went and the table's number after the delete.

        Soft: tombstones under a new sequence number. Hard: every row, history included. Either
        takes a new number for the table's bookkeeping, in the same transaction: a hard delete
        is a change too (a resolve waiting to be settled must not take it for none). ``since``:
        as for :meth:`_write` (the number is None when one of those tables' numbers differs).
        """

    @abstractmethod
    def _put(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> int:
        """Add rows copied from another store, system columns and all, in one transaction; return the number.

        One new sequence number for the table (as :meth:`_write` takes it) goes into
        ``strata_seq`` of every row put, so the sync bookkeeping sees them as written now.
        ``latest`` rows replace every latest row of the same resolve ids (for an expansion, all
        rows of their parents, as :meth:`_write` does); those move to history, but for the ones
        ``latest`` holds again (same id columns and ``strata_written_at``), which are only
        replaced. ``history`` rows go to history. The other system columns (versions, ``strata_written_at``,
        ``strata_deleted``) are kept as given; new user columns are added.
        """

    @abstractmethod
    def _erase(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> None:
        """Erase rows picked by their id columns, ``strata_seq`` and ``strata_written_at``, in one transaction.

        ``latest`` picks rows of the latest table (compact erases old tombstones: the table takes
        a new sequence number, as a hard delete does), ``history`` rows of the history table
        (nothing a resolve reads: the numbers stay).
        """

    @abstractmethod
    def _read(self, plan: FeaturePlan, *, history: bool, include_deleted: bool) -> nw.LazyFrame[Any] | None:
        """Live rows (or the whole history) as a lazy frame; None when the table does not exist."""

    @abstractmethod
    def _max_seq(self, table: str) -> int | None:
        """The sequence number of the last write or delete of ``table`` (None: never written).

        Read from the store's own bookkeeping, kept by :meth:`_write` and :meth:`_delete` in
        their transactions: a key lookup, never a scan of the table, so it costs the same at any
        size. Equal numbers at two resolves mean the table did not change in between; every
        row written since carries a higher ``strata_seq``. This is how a store finds what
        changed since its last sync (docs/stores.md). Never cached: another connection may write.
        """

    def _max_seqs(self, tables: Sequence[str]) -> dict[str, int | None]:
        """:meth:`_max_seq` of each table; a backend may answer them all in one query."""
        return {table: self._max_seq(table) for table in tables}

    @abstractmethod
    def _resolve(
        self, plan: FeaturePlan, since: dict[str, int] | None, *, lazy: bool, only: dict[str, Any] | None = None
    ) -> Increment:
        """The increment of a non-root feature (``resolve/sql.py`` gives SQL stores the queries).

        ``since`` (table -> sequence number at the last sync) narrows the comparison to the
        samples with rows written after it, in the feature's own table or an upstream's; None
        means the full comparison. ``only`` narrows it to one sample (``lookup``).
        """

    @abstractmethod
    def _resolve_root(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        """The increment of a root feature, given every sample it should have with its data versions."""

    def _resolve_root_native(self, plan: FeaturePlan, samples: Any, *, lazy: bool) -> Increment | None:  # noqa: ARG002
        """The increment of a root feature from samples the backend reads in place, or None.

        Optional: a backend whose engine can read ``samples`` as they are (for DuckDB, a
        relation of the store's own connection) checks and compares them there, so they never
        become a Python table; None sends them the general way (Arrow, ``checks.py``,
        :meth:`_resolve_root`).
        """
        return None

    @abstractmethod
    def _get_sync(self, key: FeatureKey) -> dict[str, Any] | None:
        """The sync record of ``key``: its definition and its tables' sequence numbers when last in sync."""

    @abstractmethod
    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        """Record that ``key`` is in sync at ``state`` (only ever written when it is: see ``stores/sync.py``)."""

    @abstractmethod
    def _clear_sync(self) -> None:
        """Forget every sync record (after a hard delete the next resolves compare in full)."""

    @abstractmethod
    def _add_snapshot(self, version: str, pushed_at: str, record: str) -> None:
        """Append a pushed graph snapshot to ``strata$snapshots``, creating the table on the first push.

        ``version`` is the snapshot version, ``pushed_at`` an ISO time (UTC) and ``record`` the
        JSON text :mod:`strata.stores.snapshots` reads back; one statement, one row.
        """

    @abstractmethod
    def _get_snapshots(self, version: str | None) -> list[str]:
        """The ``record`` of every pushed snapshot (of snapshot version ``version``; None: all), in any order.

        No table (nothing pushed yet, or a read-only store that may not create it): an empty list.
        """

    @abstractmethod
    def _add_migration_record(self, migration: str, recorded_at: str, record: str) -> None:
        """Append a progress record of migration ``migration`` to ``strata$migrations``, creating the table first.

        ``recorded_at`` is an ISO time (UTC), ``record`` the JSON text
        :mod:`strata.features.migrations` reads back; one statement, one row (a record is
        written whole or not at all, so a killed apply leaves whole records only).
        """

    @abstractmethod
    def _get_migration_records(self) -> list[str]:
        """The ``record`` of every migration progress row, in any order (no table: an empty list)."""
