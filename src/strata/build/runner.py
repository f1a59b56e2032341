"""``strata build``: bring features up to date by running their ``compute``.

For each feature with a ``compute`` method, in topological order (roots come from ingest and
are never computed):

1. ``resolve_update`` gives the increment: samples to add, to recompute (per field, with the
   cause) and to remove;
2. removed samples are deleted (soft);
3. added and changed samples go to ``compute`` in batches of ``batch_size`` (a class attribute
   of the feature, default 10 000), in worker processes when ``--workers`` is above one, or as
   Ray tasks with ``features.executor: ray`` (:mod:`strata.build.ray`);
4. each batch's result is checked — the feature's id columns, one column per field, no
   ``strata_`` columns, exactly the batch's samples (or, for an expansion, children of them) —
   joined to the increment's version columns and written at once, so a killed build keeps
   every finished batch and the next one picks up the rest.

A batch that raises or returns a bad frame is recorded in the system database
(``strata_build_errors``: which samples, on which inputs, what error) and skipped; other
batches go on. Those samples are skipped by later builds until their inputs or code versions change.

``compute(self, inputs)`` gets :class:`~strata.build.worker.Inputs`: per upstream feature, a Polars frame of its live
rows for the batch (id columns and the user's columns), and ``inputs.samples``, the batch's ids
with the ``strata_cause__<field>`` columns (null for added samples).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strata.build.worker import call
from strata.build.worker import compute as compute_in_worker
from strata.build.worker import init as init_worker
from strata.errors import DefinitionError, FeatureNotFoundError, RuntimeFailure, UsageError
from strata.features.keys import FeatureKey, feature_key_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from concurrent.futures import Future

    import polars as pl

    from strata.features.graph import FeatureGraph
    from strata.history import RunHistory
    from strata.progress import Reporter
    from strata.project.project import Project
    from strata.resolve.increment import Increment
    from strata.resolve.plan import FeaturePlan
    from strata.stores.base import MetadataStore

DEFAULT_BATCH_SIZE = 10_000
FIRST_IDS = 5
"""Ids a failed batch (or a group of skipped samples) names in what ``build`` returns."""
_ERROR_TEXT = 500
_IN_LIMIT = 50_000
"""Above this many samples, upstream rows are read whole and narrowed in Polars."""
_WAIT_STEP_SECONDS = 0.1
"""How often a wait for a worker's batch lets a signal through (see ``_result``)."""


@dataclass
class FeatureBuild:
    """What ``build`` did (or, dry, would do) for one feature."""

    key: str
    computable: bool
    added: int = 0
    changed: int = 0
    removed: int = 0
    fields: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per field: samples to recompute by cause."""
    computed: int = 0
    written: int = 0
    written_fields: dict[str, int] = field(default_factory=dict)
    """Per field: samples written because that field was stale (added, or changed with a cause for it)."""
    skipped: int = 0
    """Samples left out because they failed before on the same inputs and code versions."""
    skipped_errors: list[dict[str, Any]] = field(default_factory=list)
    """Per error the skipped samples failed with: how many, the first ids (JSON values), the error."""
    batches: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Per failed batch: its samples, the first ids (JSON values: a list for several id columns), the error."""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.key,
            "computable": self.computable,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "fields": self.fields,
            "computed": self.computed,
            "written": self.written,
            "written_fields": self.written_fields,
            "skipped": self.skipped,
            "skipped_errors": self.skipped_errors,
            "batches": self.batches,
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
        }


def has_compute(cls: type) -> bool:
    """Whether a feature class defines ``compute`` (so ``build`` can run it)."""
    return callable(getattr(cls, "compute", None))


def selected(graph: FeatureGraph, names: list[str]) -> list[FeatureKey]:
    """The features to build, in order: those named and everything upstream of them (all when none)."""
    order = graph.topological_order()
    if not names:
        return order
    wanted: set[FeatureKey] = set()
    for name in names:
        key = feature_key_of(name)
        if key not in graph:
            raise FeatureNotFoundError(f"no feature `{name}` in the graph", "see `strata features list`")
        stack = [key]
        while stack:
            item = stack.pop()
            if item not in wanted:
                wanted.add(item)
                stack.extend(graph.upstream(item))
    return [k for k in order if k in wanted]


class Builder:
    """One build over one open store."""

    def __init__(
        self,
        project: Project | None,
        store: MetadataStore,
        store_name: str,
        history: RunHistory | None,
        *,
        workers: int = 1,
        executor: str = "local",
        ray_address: str | None = None,
        run_id: str | None = None,
        report: Reporter | None = None,
    ) -> None:
        self.project = project
        self.store = store
        self.store_name = store_name
        self.history = history
        self.workers = max(1, workers)
        self.executor = executor
        self.ray_address = ray_address
        self.run_id = run_id
        self.report = report
        self._pool: Any = None
        self._ray: Any = None
        self._failed_before = False

    def close(self, *, abandon: bool = False) -> None:
        """Shut the workers down; ``abandon`` (the build failed or was stopped) kills those still computing.

        Otherwise a Ctrl-C or SIGTERM would wait for every running batch to finish, minutes maybe,
        for results nobody will write.
        """
        if self._pool is not None:
            if abandon:
                for process in list(self._pool._processes.values()):  # noqa: SLF001 - kill_workers() is Python 3.14
                    with contextlib.suppress(OSError):
                        process.kill()
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._ray is not None:
            self._ray.close()
            self._ray = None

    def run(
        self, keys: list[FeatureKey], *, dry_run: bool, into: list[FeatureBuild] | None = None
    ) -> list[FeatureBuild]:
        """Build ``keys`` in order; each feature's result goes into ``into`` as it starts (so a stopped build tells)."""
        graph = self.store.graph
        results = [] if into is None else into
        for key in keys:
            plan = self.store.plan(key)
            if plan.is_root:
                continue
            cls = graph.feature(key)
            result = FeatureBuild(str(key), has_compute(cls), written_fields={f.name: 0 for f in plan.fields})
            results.append(result)
            started = time.monotonic()
            increment = self.store.resolve_update(key)
            counts = increment.counts()
            result.added, result.changed, result.removed = counts["added"], counts["changed"], counts["removed"]
            result.fields = increment.changed_fields()
            if not dry_run and result.computable:
                self._apply(cls, plan, increment, result)
            result.seconds = time.monotonic() - started
        return results

    # -- one feature -------------------------------------------------------------------------

    def _apply(self, cls: type, plan: FeaturePlan, increment: Increment, result: FeatureBuild) -> None:
        import polars as pl

        if result.removed:
            self.store.delete(plan.key, increment.removed)
        added = increment.added.to_native()
        changed = increment.changed.to_native()
        causes = [f.cause_column for f in plan.fields]
        work = pl.concat(
            [added.with_columns(pl.lit(None, pl.String).alias(c) for c in causes), changed], how="diagonal"
        )
        work = self._skip_failed(plan, work, result)
        if work.is_empty():
            return
        upstream = self._upstream_rows(plan, work)
        size = int(getattr(cls, "batch_size", DEFAULT_BATCH_SIZE) or DEFAULT_BATCH_SIZE)
        batches = [work.slice(i, size) for i in range(0, len(work), size)]
        result.batches = len(batches)
        payloads = list(zip(batches, _rows_for(plan, work, size, upstream), strict=True))
        counts = _field_counts(plan, work, size)
        if self.report is not None:
            self.report.start(result.key, len(batches), unit="batch", items="sample")
        for (batch, _), outcome, count in zip(payloads, self._compute(cls, plan, payloads), counts, strict=True):
            self._finish_batch(plan, batch, outcome, result, count)
        if self.report is not None:
            self.report.finish(result.key, "done", f"{result.written} written")

    def _skip_failed(self, plan: FeaturePlan, work: pl.DataFrame, result: FeatureBuild) -> pl.DataFrame:
        """Leave out samples that failed before on the very same inputs; forget failures of samples not to compute.

        A failed sample missing from the increment was deleted upstream since: it never needs
        computing again, so its failure is no build error any more.
        """
        if self.history is None:
            return work
        failed = self.history.build_errors(self.store_name, str(plan.key))
        self._failed_before = bool(failed)
        if not failed:
            return work
        import polars as pl

        keys = sample_keys(plan, work)
        gone = sorted(set(failed).difference(keys))
        if gone:
            self.history.clear_build_errors(self.store_name, str(plan.key), gone)
        if work.is_empty():
            return work
        inputs = _input_keys(plan, work)
        skip = [failed.get(k, (None,))[0] == v for k, v in zip(keys, inputs, strict=True)]
        by_error: dict[str, list[str]] = {}
        for key, skipped in zip(keys, skip, strict=True):
            if skipped:
                by_error.setdefault(failed[key][1], []).append(key)
        result.skipped = sum(skip)
        result.skipped_errors = [
            {"samples": len(samples), "first": _first_ids(samples), "error": error}
            for error, samples in by_error.items()
        ]
        return work.filter(~pl.Series(skip))

    def _upstream_rows(self, plan: FeaturePlan, work: pl.DataFrame) -> dict[str, pl.DataFrame]:
        """Each upstream's live rows (user columns) for the samples to compute, read once per feature."""
        import narwhals as nw
        import polars as pl

        frames = {}
        for up in plan.upstreams:
            shared = [c for c in plan.resolve_ids if c in up.id_columns]
            if not self.store.has_feature(up.key):
                frames[str(up.key)] = pl.DataFrame()
                continue
            filters = []
            if shared:
                wanted = work[shared[0]].unique()
                if len(wanted) <= _IN_LIMIT:  # a longer IN list costs more than reading all and joining in Polars
                    filters = [nw.col(shared[0]).is_in(wanted.to_list())]
            frame = self.store.read(up.key, filters=filters)
            native = frame.to_native() if hasattr(frame, "to_native") else frame
            user = [c for c in native.columns if not c.startswith("strata_")]
            frames[str(up.key)] = native.select(user)
        return frames

    def _compute(
        self, cls: type, plan: FeaturePlan, payloads: list[tuple[pl.DataFrame, dict[str, pl.DataFrame]]]
    ) -> Iterator[Any]:
        """Each batch's result frame, or the exception it raised; in order."""
        if self.executor == "ray":
            yield from self._ensure_ray().map(str(plan.key), payloads)
            return
        if self.workers == 1 or len(payloads) == 1:
            for payload in payloads:
                yield call(cls, *payload)
            return
        pool = self._ensure_pool()
        futures = [pool.submit(compute_in_worker, str(plan.key), *payload) for payload in payloads]
        for future in futures:
            try:
                yield _result(future)
            except Exception as exc:  # noqa: BLE001 - a worker that died; recorded like a raising compute
                yield exc

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            root = str(self.project.root) if self.project is not None else None
            environment = self.project.environment.name if self.project and self.project.environment else None
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(root, environment, os.getpid()),
            )
        return self._pool

    def _ensure_ray(self) -> Any:
        if self._ray is None:
            from strata.build.ray import RayExecutor

            if self.project is None:
                raise DefinitionError("the Ray executor needs a project", "run build from a project")
            environment = self.project.environment.name if self.project.environment else None
            self._ray = RayExecutor(str(self.project.root), environment, address=self.ray_address, workers=self.workers)
        return self._ray

    def _finish_batch(
        self, plan: FeaturePlan, batch: pl.DataFrame, outcome: Any, result: FeatureBuild, counts: dict[str, int]
    ) -> None:
        result.computed += len(batch)
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            rows = _checked(plan, batch, outcome)
        except Exception as exc:  # noqa: BLE001 - recorded per batch; other batches go on
            message = _describe(exc)
            samples = sample_keys(plan, batch)
            result.failures.append({"samples": len(batch), "first": _first_ids(samples), "error": message})
            if self.history is not None:
                inputs = dict(zip(samples, _input_keys(plan, batch), strict=True))
                self.history.record_build_errors(self.store_name, str(plan.key), inputs, message, self.run_id)
            if self.report is not None:
                self.report.advance(result.key, items=len(batch), failed=1, note=message)
            return
        result.written += self.store.write(plan.key, rows)
        for name, count in counts.items():
            result.written_fields[name] = result.written_fields.get(name, 0) + count
        if self.history is not None and self._failed_before:
            self.history.clear_build_errors(self.store_name, str(plan.key), sample_keys(plan, batch))
        if self.report is not None:
            self.report.advance(result.key, items=len(batch))


def _result(future: Future[Any]) -> Any:
    """``future.result()``, waited for in short steps so that Ctrl-C stops the build at once.

    Polars installs a SIGINT handler that restarts a wait blocked on a lock: ``result()`` alone
    would only see the KeyboardInterrupt once the batch is done, minutes later maybe.
    """
    from concurrent.futures import wait

    while not wait([future], timeout=_WAIT_STEP_SECONDS).done:
        pass
    return future.result()


# -- batches -----------------------------------------------------------------------------------


_BATCH = "strata_batch"
"""A batch's number, in frames built for all batches at once (user columns never start with ``strata_``)."""


def _field_counts(plan: FeaturePlan, work: pl.DataFrame, size: int) -> list[dict[str, int]]:
    """Per batch of ``size`` rows, what it adds to ``written_fields`` once written.

    All fields of an added sample count, the stale ones of a changed one; counted for every
    batch in one pass instead of once per batch.
    """
    import polars as pl

    batches = (len(work) + size - 1) // size
    if not plan.fields:
        return [{} for _ in range(batches)]
    causes = [pl.col(f.cause_column).is_not_null() for f in plan.fields]
    added = ~pl.any_horizontal(causes)
    counts = (
        work.with_row_index(_BATCH)
        .group_by(pl.col(_BATCH) // size)
        .agg((cause | added).sum().alias(f.name) for f, cause in zip(plan.fields, causes, strict=True))
        .sort(_BATCH)
    )
    return [{f.name: int(row[f.name]) for f in plan.fields} for row in counts.iter_rows(named=True)]


def _rows_for(
    plan: FeaturePlan, work: pl.DataFrame, size: int, upstream: dict[str, pl.DataFrame]
) -> list[dict[str, pl.DataFrame]]:
    """Per batch of ``size`` rows of ``work``, each upstream's rows for it: one join per upstream for all batches.

    An upstream row goes to every batch holding a sample that shares its ids (an upstream
    without shared ids goes whole to each), in the upstream frame's order.
    """
    import polars as pl

    batches = (len(work) + size - 1) // size
    out: list[dict[str, pl.DataFrame]] = [{} for _ in range(batches)]
    for up in plan.upstreams:
        key = str(up.key)
        frame = upstream[key]
        shared = [c for c in plan.resolve_ids if c in up.id_columns]
        if frame.width == 0 or not shared:
            for rows in out:
                rows[key] = frame
            continue
        numbers = work.select(shared).with_row_index(_BATCH).with_columns(pl.col(_BATCH) // size).unique()
        joined = frame.join(numbers, on=shared, how="inner", nulls_equal=True, maintain_order="left")
        parts = joined.partition_by(_BATCH, as_dict=True, include_key=False)
        empty = frame.clear()
        for number, rows in enumerate(out):
            rows[key] = parts.get((number,), empty)
    return out


def _checked(plan: FeaturePlan, batch: pl.DataFrame, out: Any) -> pl.DataFrame:
    """The rows to write: compute's result checked and joined to the increment's version columns."""
    import polars as pl

    if out is None:
        raise BatchError("compute returned nothing", "return a frame with the id columns and one column per field")
    result = _polars(out)
    missing = [c for c in plan.id_columns if c not in result.columns]
    if missing:
        raise BatchError(f"compute returned no id column(s) {', '.join(missing)}", "keep the id columns")
    missing = [f.name for f in plan.fields if f.name not in result.columns]
    if missing:
        raise BatchError(f"compute returned no column for field(s) {', '.join(missing)}", "return one per field")
    reserved = [c for c in result.columns if c.startswith("strata_")]
    if reserved:
        raise BatchError(f"compute returned reserved column(s) {', '.join(reserved)}", "drop columns named strata_*")
    keys = list(plan.resolve_ids)
    wanted = batch.select(keys)
    versions = batch.select([*keys, *plan.input_columns, *plan.dv_columns])
    if not plan.child_ids and _same_rows(result.select(keys), wanted):  # the batch's samples, in its order
        return result.hstack(versions.drop(keys))
    got = result.select(keys).unique()
    strangers = got.join(wanted, on=keys, how="anti", nulls_equal=True)
    if len(strangers):
        raise BatchError(f"compute returned {len(strangers)} sample(s) that were not asked for", "return the batch's")
    lacking = wanted.join(got, on=keys, how="anti", nulls_equal=True)
    if len(lacking) and not plan.child_ids:
        raise BatchError(f"compute returned no row for {len(lacking)} sample(s) of the batch", "return every sample")
    if plan.child_ids:
        rows = result.join(versions, on=keys, how="left", nulls_equal=True)
    else:  # in the batch's order, which is the order the resolve asked for them: the store ticks them off at once
        joined = versions.join(result, on=keys, how="left", nulls_equal=True, maintain_order="left")
        rows = joined.select([*result.columns, *versions.columns[len(keys) :]])
    if len(lacking):  # parents that expanded into no children: one row each with null child ids records it
        childless = lacking.join(versions, on=keys, how="left", nulls_equal=True).with_columns(
            pl.lit(None, rows.schema[c]).alias(c) for c in plan.child_ids
        )
        rows = pl.concat([rows, childless], how="diagonal_relaxed")
    return rows


def _polars(out: Any) -> pl.DataFrame:
    """What compute returned as a Polars frame (a Polars frame as it is)."""
    import narwhals as nw
    import polars as pl

    if isinstance(out, pl.DataFrame):
        return out
    try:
        frame = nw.from_native(out)
        if isinstance(frame, nw.LazyFrame):
            frame = frame.collect()
        result = pl.from_arrow(frame.to_arrow())
    except TypeError:
        raise BatchError(
            f"compute returned a {type(out).__name__}, not a data frame", "return a Polars frame"
        ) from None
    assert isinstance(result, pl.DataFrame)
    return result


def _same_rows(got: pl.DataFrame, wanted: pl.DataFrame) -> bool:
    """Whether ``got`` holds exactly the rows of ``wanted``, in the same order and of the same types.

    ``equals`` compares values only (Int32 ids equal Int64 ones): the types are checked apart, or
    compute's narrower ids would be stored (and fix the table's id type on a first write).
    """
    if got.schema != wanted.schema:
        return False
    try:
        return got.equals(wanted, null_equal=True)
    except Exception:  # noqa: BLE001 - types that do not compare: take the joins
        return False


class BatchError(RuntimeFailure):
    """A batch's compute gave something strata cannot write."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BatchError):
        return str(exc)[:_ERROR_TEXT]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:_ERROR_TEXT] if text else type(exc).__name__


def sample_keys(plan: FeaturePlan, frame: pl.DataFrame) -> list[str]:
    """Each row's sample as ``strata_build_errors`` keys it: its resolve ids as JSON (one id: the value alone)."""
    rows = frame.select(list(plan.resolve_ids)).rows()
    if len(plan.resolve_ids) == 1:
        return [json.dumps(row[0], default=str) for row in rows]
    return [json.dumps(list(row), default=str, separators=(",", ":")) for row in rows]


def _first_ids(keys: list[str]) -> list[Any]:
    """The first samples of ``keys`` (from :func:`sample_keys`) as JSON values: an id, or a list of ids."""
    return [json.loads(key) for key in keys[:FIRST_IDS]]


def _input_keys(plan: FeaturePlan, frame: pl.DataFrame) -> list[str]:
    """What a sample's failure is recorded against: its inputs and the code versions computing it.

    A later build skips the sample while both are the same; new inputs, or a bumped
    ``code_version`` (the compute fixed), compute it again.
    """
    columns = list(plan.input_columns)
    code = [f.code_version for f in plan.fields]
    rows = frame.select(columns).rows() if columns else [() for _ in range(len(frame))]
    return [json.dumps([*row, *code], separators=(",", ":")) for row in rows]


# -- entry point -----------------------------------------------------------------------------


def build(
    project: Project,
    names: list[str],
    *,
    dry_run: bool = False,
    workers: int | None = None,
    executor: str | None = None,
    store_name: str | None = None,
    run_id: str | None = None,
    report: Reporter | None = None,
    into: list[FeatureBuild] | None = None,
) -> list[FeatureBuild]:
    """Build the project's features (``names`` and what they need; all when empty).

    ``executor`` (``local`` or ``ray``) overrides ``features.executor``. ``report`` hears of each
    feature's batches as they end (:mod:`strata.progress`). ``into`` gets each feature's result
    as its build starts, filled in as batches are written: a caller stopped by a signal reads
    there what was written (and stays written) before it.
    """
    from strata.build.lock import build_lock
    from strata.features.project import EXECUTORS, build_executor, load_graph, make_store, opened, store_config
    from strata.history import RunHistory

    configured, ray_address = build_executor(project)
    if executor is not None and executor not in EXECUTORS:
        raise UsageError(f"unknown executor `{executor}`", f"use one of: {', '.join(EXECUTORS)}")
    graph = load_graph(project)
    config = store_config(project, store_name)
    store = make_store(project, store_name, graph=graph, read_only=dry_run)
    keys = selected(graph, names)
    count = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if config.path is not None:
        store._check_place(config.path)  # noqa: SLF001 - before the lock beside it: a path no file can be at
    lock = contextlib.nullcontext() if dry_run else build_lock(config)  # a dry run writes nothing, not even a lock
    with lock, opened(store, config), graph.use(), RunHistory.open(project) as history:
        builder = Builder(
            project,
            store,
            config.name,
            history,
            workers=count,
            executor=executor or configured,
            ray_address=ray_address,
            run_id=run_id,
            report=report,
        )
        done = False
        try:
            results = builder.run(keys, dry_run=dry_run, into=into)
            done = True
        finally:
            builder.close(abandon=not done)
        return results


def failed(results: Sequence[FeatureBuild]) -> str | None:
    """What a build whose batches failed fails with (exit 1), or None.

    Samples skipped for failing before on the same inputs do not fail it: their failure failed
    the build that met it, and nothing retries them short of new inputs, so a scheduled build
    would otherwise fail until then. ``skipped`` and ``skipped_errors`` say they are left.
    """
    keys = [r.key for r in results if r.failures]
    return f"compute failed for some batches of {', '.join(keys)}" if keys else None


def kept(results: Sequence[FeatureBuild]) -> str:
    """What a stopped build wrote, which stays: ``transcript: 8 rows, embedding: 4 rows`` (empty: nothing)."""
    return ", ".join(f"{r.key}: {r.written} row{'' if r.written == 1 else 's'}" for r in results if r.written)
