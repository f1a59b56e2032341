"""The in-memory store: Polars frames in the process, for tests, notebooks and small graphs.

Same contract and same hashes as the SQL stores (``versioning/polars.py`` mirrors
``versioning/sql.py``); nothing outlives the process.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import polars as pl

from strata.features.versions import DEFAULT_ALGORITHM
from strata.resolve import polars as engine
from strata.resolve.increment import Increment
from strata.resolve.plan import DELETED, FEATURE_VERSION, SEQ, SNAPSHOT_VERSION, WRITTEN_AT, FeaturePlan
from strata.stores.base import MetadataStore
from strata.stores.checks import fit_stored

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import narwhals as nw
    import pyarrow as pa

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey


class InMemoryStore(MetadataStore):
    """Metadata held in Polars frames."""

    kind = "in-memory"

    def __init__(
        self,
        *,
        hash_algorithm: str = DEFAULT_ALGORITHM,
        graph: FeatureGraph | None = None,
        read_only: bool = False,
        fallbacks: Sequence[MetadataStore] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(
            hash_algorithm=hash_algorithm, graph=graph, read_only=read_only, fallbacks=fallbacks, name=name
        )
        self._latest: dict[str, pl.DataFrame] = {}
        self._history: dict[str, list[pl.DataFrame]] = {}
        self._meta: dict[str, str] = {}
        self._sync: dict[str, dict[str, Any]] = {}
        self._snapshot_rows: list[tuple[str, str]] = []
        self._migration_rows: list[str] = []
        """Pushed snapshots: (snapshot version, record), in the order pushed."""
        self._seq = 0
        self._table_seq: dict[str, int] = {}
        """Per table, the sequence number of its last write or delete (what ``_max_seq`` answers)."""

    def to_native(self) -> dict[str, pl.DataFrame]:
        """The latest frame of every feature table."""
        return dict(self._latest)

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    def _set_meta(self, name: str, value: str) -> None:
        self._meta[name] = value

    def _has_table(self, table: str) -> bool:
        return table in self._latest

    def _next_seq(self, table: str) -> int:
        self._seq += 1
        self._table_seq[table] = self._seq
        return self._seq

    def _stamp(self, plan: FeaturePlan, frame: pl.DataFrame) -> pl.DataFrame:
        self._next_seq(plan.table)
        managed = {*plan.cv_columns, FEATURE_VERSION, SNAPSHOT_VERSION, SEQ, WRITTEN_AT, DELETED}
        frame = frame.drop([c for c in frame.columns if c in managed])
        return frame.with_columns(
            *(pl.lit(f.stored_code_version, pl.String).alias(f.cv_column) for f in plan.fields),
            pl.lit(plan.feature_version, pl.String).alias(FEATURE_VERSION),
            pl.lit(plan.snapshot_version, pl.String).alias(SNAPSHOT_VERSION),
            pl.lit(self._seq, pl.Int64).alias(SEQ),
            pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias(WRITTEN_AT),
            # an expansion's "no children" row (every child id null) is kept as a deleted row
            pl.all_horizontal(pl.lit(value=bool(plan.child_ids)), *(pl.col(c).is_null() for c in plan.child_ids)).alias(
                DELETED
            ),
        )

    def _replace(self, plan: FeaturePlan, rows: pl.DataFrame) -> None:
        """New rows become the latest; the rows they supersede (same resolve ids) move to the history."""
        latest = self._latest.get(plan.table)
        history = self._history.setdefault(plan.table, [])
        if latest is None:
            self._latest[plan.table] = rows
            return
        on = list(plan.resolve_ids)
        history.append(latest.join(rows.select(on), on=on, how="semi", nulls_equal=True))
        kept = latest.join(rows.select(on), on=on, how="anti", nulls_equal=True)
        self._latest[plan.table] = pl.concat([kept, rows], how="diagonal_relaxed")

    def _in_step(self, since: Mapping[str, int | None] | None) -> bool:
        """Whether the tables' numbers are still those of ``since`` (None: nothing to compare)."""
        return since is None or all(self._max_seq(t) == seq for t, seq in since.items())

    def _write(
        self,
        plan: FeaturePlan,
        table: pa.Table,
        *,
        since: Mapping[str, int | None] | None = None,
        fresh: bool = False,  # noqa: ARG002 - nothing to gain here: the history is found by a join anyway
    ) -> int | None:
        in_step = self._in_step(since)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        latest = self._latest.get(plan.table)
        if latest is not None:
            frame = fit_stored(self.describe(), plan.key, frame, latest.schema)
        rows = self._stamp(plan, frame)
        if plan.child_ids and latest is not None:  # rows replace all of their parents' rows
            parents = list(plan.resolve_ids)
            ids = list(plan.id_columns)
            ours = latest.filter(~pl.col(DELETED)).join(rows.select(parents), on=parents, how="semi", nulls_equal=True)
            vanished = ours.join(rows.select(ids), on=ids, how="anti", nulls_equal=True)
            stamp = rows[SEQ][0], rows[WRITTEN_AT][0]
            tombs = vanished.with_columns(
                pl.lit(value=True).alias(DELETED),
                pl.lit(stamp[0], pl.Int64).alias(SEQ),
                pl.lit(stamp[1]).alias(WRITTEN_AT),
            )
            rows = pl.concat([rows, tombs], how="diagonal_relaxed")
        self._replace(plan, rows)
        return self._seq if in_step else None

    def _delete(
        self, plan: FeaturePlan, ids: pa.Table, *, soft: bool, since: Mapping[str, int | None] | None = None
    ) -> tuple[int, int | None]:
        in_step = self._in_step(since)
        deleted = self._delete_rows(plan, ids, soft=soft)
        return deleted, self._max_seq(plan.table) if in_step else None

    def _delete_rows(self, plan: FeaturePlan, ids: pa.Table, *, soft: bool) -> int:
        keys = list(ids.column_names)  # the id columns, or an expansion's parent ids
        wanted = pl.from_arrow(ids)
        assert isinstance(wanted, pl.DataFrame)
        latest = self._latest[plan.table]
        matched = latest.join(wanted, on=keys, how="semi", nulls_equal=True)
        hit = matched.filter(~pl.col(DELETED))
        if soft:
            if len(matched):  # live rows become tombstones; an expansion's "no children" row just goes
                self._next_seq(plan.table)
                tomb = hit.with_columns(
                    pl.lit(value=True).alias(DELETED),
                    pl.lit(self._seq, pl.Int64).alias(SEQ),
                    pl.lit(dt.datetime.now(dt.UTC).replace(tzinfo=None)).alias(WRITTEN_AT),
                )
                self._history[plan.table].append(matched)
                kept = latest.join(wanted, on=keys, how="anti", nulls_equal=True)
                self._latest[plan.table] = pl.concat([kept, tomb], how="diagonal_relaxed")
                if len(matched) > len(hit):  # tombstones or a "no children" row left without a row in their place
                    self._lost_track()
            return len(hit)
        self._next_seq(plan.table)  # a hard delete changes the table too
        self._latest[plan.table] = latest.join(wanted, on=keys, how="anti", nulls_equal=True)
        self._history[plan.table] = [
            h.join(wanted, on=keys, how="anti", nulls_equal=True) for h in self._history[plan.table]
        ]
        return len(hit)

    def _put(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> int:
        kept = self._latest.get(plan.table)
        fitted = []
        for table in (latest, history):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            fitted.append(frame if kept is None else fit_stored(self.describe(), plan.key, frame, kept.schema))
        seq = self._next_seq(plan.table)
        frames = [frame.with_columns(pl.lit(seq, pl.Int64).alias(SEQ)) for frame in fitted]
        rows, older = frames
        stored = self._latest.get(plan.table, rows.clear())
        parents, same = list(plan.resolve_ids), [*plan.id_columns, WRITTEN_AT]
        ours = stored.join(rows.select(parents), on=parents, how="semi", nulls_equal=True)
        moved = ours.join(rows.select(same), on=same, how="anti", nulls_equal=True)  # rows put again are replaced
        kept = stored.join(rows.select(parents), on=parents, how="anti", nulls_equal=True)
        self._latest[plan.table] = pl.concat([kept, rows], how="diagonal_relaxed")
        self._history.setdefault(plan.table, []).extend([older, moved])
        return seq

    def _erase(self, plan: FeaturePlan, latest: pa.Table, history: pa.Table) -> None:
        if latest.num_rows:
            self._next_seq(plan.table)  # the latest table changes: a new number, as for a hard delete
            self._latest[plan.table] = self._without(self._latest[plan.table], latest)
        if history.num_rows:
            self._history[plan.table] = [self._without(h, history) for h in self._history[plan.table]]

    @staticmethod
    def _without(frame: pl.DataFrame, rows: pa.Table) -> pl.DataFrame:
        """``frame`` without the rows that match ``rows`` on all of its columns."""
        picked = pl.from_arrow(rows)
        assert isinstance(picked, pl.DataFrame)
        on = list(picked.columns)
        return frame.join(picked.cast(frame.select(on).schema), on=on, how="anti", nulls_equal=True)

    def _read(self, plan: FeaturePlan, *, history: bool, include_deleted: bool) -> nw.LazyFrame[Any] | None:
        import narwhals as nw

        if plan.table not in self._latest:
            return None
        if history:
            frame = pl.concat([*self._history[plan.table], self._latest[plan.table]], how="diagonal_relaxed")
        else:
            frame = self._latest[plan.table]
            if not include_deleted:
                frame = frame.filter(~pl.col(DELETED))
        return nw.from_native(frame.lazy())

    def _max_seq(self, table: str) -> int | None:
        return self._table_seq.get(table)

    def _resolve(
        self, plan: FeaturePlan, since: dict[str, int] | None, *, lazy: bool, only: dict[str, Any] | None = None
    ) -> Increment:
        candidates = None
        if only is not None:
            candidates = pl.DataFrame({k: [only[k]] for k in plan.resolve_ids})
        elif since is not None:
            candidates = engine.candidates_frame(plan, self._latest, since)
        expected = engine.expected_frame(self.hash_algorithm, plan, self._latest, candidates)
        current = engine.current_frame(plan, self._latest.get(plan.table), candidates)
        schema = self._id_schema(plan, plan.resolve_ids) if expected is None and current is None else None
        return self._wrap(plan, engine.increment(self.hash_algorithm, plan, expected, current, schema), lazy=lazy)

    def _resolve_root(self, plan: FeaturePlan, samples: pa.Table, *, lazy: bool) -> Increment:
        frame = pl.from_arrow(samples)
        assert isinstance(frame, pl.DataFrame)
        expected = frame.select([*plan.id_columns, *plan.dv_columns])
        current = engine.current_frame(plan, self._latest.get(plan.table), None)
        return self._wrap(plan, engine.increment(self.hash_algorithm, plan, expected, current), lazy=lazy)

    def _wrap(self, plan: FeaturePlan, parts: dict[str, pl.DataFrame], *, lazy: bool) -> Increment:
        import narwhals as nw

        frames = {k: nw.from_native(v.lazy() if lazy else v) for k, v in parts.items()}
        return Increment(plan.key, frames["added"], frames["changed"], frames["removed"], lazy=lazy)

    def _get_sync(self, key: FeatureKey) -> dict[str, Any] | None:
        return self._sync.get(str(key))

    def _set_sync(self, key: FeatureKey, state: dict[str, Any]) -> None:
        self._sync[str(key)] = state

    def _clear_sync(self) -> None:
        self._sync.clear()

    # -- snapshots -----------------------------------------------------------------------

    def _add_snapshot(self, version: str, pushed_at: str, record: str) -> None:  # noqa: ARG002 - in the record
        self._snapshot_rows.append((version, record))

    def _get_snapshots(self, version: str | None) -> list[str]:
        return [record for v, record in self._snapshot_rows if version in (None, v)]

    def _add_migration_record(self, migration: str, recorded_at: str, record: str) -> None:  # noqa: ARG002 - in the record
        self._migration_rows.append(record)

    def _get_migration_records(self) -> list[str]:
        return list(self._migration_rows)
