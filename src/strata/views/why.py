"""Why one sample is (or is not) stale: its lineage across the graph, field by field, with causes.

:func:`why` walks from the asked feature up to its roots. At each feature it reads the
sample's latest row and runs the store's own resolve narrowed to that sample (what
``lookup`` runs: the same SQL, the same ``strata_cause__*`` columns), so a cause shown here is
the cause ``resolve_update`` gives; nothing is hashed again. It then names what is behind each
difference:

- ``code``: the field's code_version changed (stored, now);
- an upstream field (``video.audio``): the stored input, the one the upstream holds now, and
  the upstream samples behind it: the one sample of an identity or the parent of an
  expansion, or, for an aggregation, the children added, removed or changed since the row
  was written (its ``strata_seq``: the children as they were then, read from history);
- ``new`` / ``gone``: the feature has no row for a sample its upstreams have, or keeps one
  whose upstream samples are gone (which upstream, deleted or never there);
- ``dropped`` / ``deleted``: an expansion's child is missing while its parent is there: the
  parent's last write did not produce it, or a delete took it since.

A root feature loaded by ``target-strata`` also says where its rows come from: the stream,
the source record's key and, per field, the run that last changed the field (the
``_strata_run`` column ``target-strata`` writes during a ``strata run``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strata.bridge.target import RUN_COLUMN, STREAM_COLUMN
from strata.errors import SampleNotFoundError, UsageError, WriteError
from strata.resolve.plan import CAUSE_CODE, CAUSE_DATA, DELETED, SEQ, WRITTEN_AT, input_column, shown_code_version

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import polars as pl

    from strata.features.graph import FieldInput
    from strata.features.keys import FeatureKey
    from strata.resolve.increment import Increment
    from strata.resolve.plan import FeaturePlan, FieldPlan, UpstreamPlan
    from strata.stores.base import MetadataStore

__all__ = [
    "Cause",
    "Change",
    "FieldWhy",
    "Link",
    "Node",
    "SampleWhy",
    "Source",
    "Why",
    "behind_text",
    "id_word",
    "parse_ids",
    "why",
]

STREAM_METADATA = "singer_stream"
"""The spec metadata key naming the stream of a feature ``target-strata`` defined from a SCHEMA."""
MAX_CHILDREN = 50
"""An aggregation's children followed further up, at most (those behind a cause first)."""


@dataclass(frozen=True)
class Change:
    """An upstream sample behind a cause: ``added``, ``removed`` or ``changed``."""

    feature: FeatureKey
    ids: dict[str, Any]
    change: str
    stored: str | None = None
    """The sample's data version of the field when the row was computed (a change, a removal)."""
    now: str | None = None
    """Its data version now (a change, an addition)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": str(self.feature),
            "ids": _plain(self.ids),
            "change": self.change,
            "stored": self.stored,
            "now": self.now,
        }


@dataclass(frozen=True)
class Cause:
    """One reason a field (or a whole sample) differs from what the code and upstreams give.

    ``kind``: ``code`` (the field's code_version), ``data`` (a root's data version), ``input``
    (an upstream field: ``input`` names it), ``new`` (no row yet), ``gone`` (upstream samples gone),
    ``empty`` (an aggregation's upstream holds the parent but no child of it),
    ``dropped`` (an expansion's child its parent's last write did not produce), ``deleted`` (one a
    delete took since).
    """

    kind: str
    text: str
    input: str | None = None
    stored: str | None = None
    now: str | None = None
    samples: tuple[Change, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "input": self.input,
            "stored": self.stored,
            "now": self.now,
            "samples": [s.to_json() for s in self.samples],
        }


@dataclass(frozen=True)
class FieldWhy:
    """One field of one sample: stored and expected data and code versions, and the causes of a difference."""

    name: str
    stored: str | None
    expected: str | None
    code_version: str | None
    expected_code_version: str
    causes: tuple[Cause, ...] = ()
    run: str | None = None
    """A root loaded by ``target-strata``: the run that last changed the field's value."""
    changed_at: str | None = None
    """When that row was written (ISO 8601)."""
    pending: str | None = None
    """``to add`` or ``to remove`` when the whole sample is (its value is not the store's yet, or goes)."""

    @property
    def stale(self) -> bool:
        """Whether the field differs from what the code and upstreams give (a cause, a value to add or remove)."""
        return bool(self.causes) or self.stored != self.expected or self.pending is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.name,
            "stale": self.stale,
            "pending": self.pending,
            "stored": self.stored,
            "expected": self.expected,
            "code_version": self.code_version,
            "expected_code_version": self.expected_code_version,
            "causes": [c.to_json() for c in self.causes],
            "run": self.run,
            "changed_at": self.changed_at,
        }


@dataclass(frozen=True)
class Link:
    """How a feature reads an upstream for this sample: the lineage and the upstream samples."""

    feature: FeatureKey
    lineage: str
    ids: tuple[dict[str, Any], ...]
    total: int
    """How many upstream samples there are (an aggregation's children beyond ``ids`` are not followed)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": str(self.feature),
            "lineage": self.lineage,
            "ids": [_plain(i) for i in self.ids],
            "total": self.total,
        }


@dataclass(frozen=True)
class Source:
    """Where a root's row comes from when ``target-strata`` loaded it."""

    stream: str
    key: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "key": _plain(self.key)}


@dataclass(frozen=True)
class Node:
    """One sample of one feature on the way."""

    feature: FeatureKey
    ids: dict[str, Any]
    status: str
    """A root: ``present``, ``deleted`` or ``stale``; else ``up to date``, ``stale``, ``to add``, ``to remove``.

    ``missing``: no row, and none to add."""
    fields: tuple[FieldWhy, ...]
    causes: tuple[Cause, ...] = ()
    """Causes of the whole sample: ``new``, ``gone``."""
    upstreams: tuple[Link, ...] = ()
    written_at: str | None = None
    source: Source | None = None
    held_by: str | None = None
    """The store of the chain the row was read from, when it is a fallback, not the store asked."""

    @property
    def is_root(self) -> bool:
        return not self.upstreams

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": str(self.feature),
            "ids": _plain(self.ids),
            "status": self.status,
            "written_at": self.written_at,
            "causes": [c.to_json() for c in self.causes],
            "fields": [f.to_json() for f in self.fields],
            "upstreams": [u.to_json() for u in self.upstreams],
            "source": None if self.source is None else self.source.to_json(),
            "held_by": self.held_by,
        }


@dataclass(frozen=True)
class SampleWhy:
    """One asked sample: its nodes, roots first, the asked feature last."""

    ids: dict[str, Any]
    nodes: tuple[Node, ...]

    @property
    def status(self) -> str:
        return self.nodes[-1].status

    def to_json(self) -> dict[str, Any]:
        return {"ids": _plain(self.ids), "status": self.status, "lineage": [n.to_json() for n in self.nodes]}


@dataclass(frozen=True)
class Why:
    """What :func:`why` found: per asked sample, its lineage. ``to_json()`` for machines."""

    feature: FeatureKey
    store: str
    samples: tuple[SampleWhy, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"feature": str(self.feature), "store": self.store, "samples": [s.to_json() for s in self.samples]}


# -- entry point -------------------------------------------------------------------------


def why(store: MetadataStore, feature: Any, ids: Any, *, failures: Iterable[Mapping[str, Any]] = ()) -> Why:
    """The lineage of one sample (or several) of ``feature``, from its roots down, with every cause.

    ``ids``: one sample as a mapping of the feature's id columns (``{"sample_uid": 3}``), a
    sequence of such mappings, or, for a feature of one id column, its value (or a list of
    values). Values may be text (``"3"``): they are read as the stored id types. ``store`` must
    be open. Raises :class:`SampleNotFoundError` for a sample no feature on the way holds,
    :class:`~strata.errors.FeatureNotFoundError` for an unknown feature, :class:`UsageError`
    for ids of the wrong shape or type. A sample asked twice is answered once.

    ``failures``: a build's failed samples of this store, as ``RunHistory.failures`` gives them
    (``feature``, ``sample``, ``error``, ``failed_at``): a sample still to compute that failed
    names its last error (the command line and the page pass them; the store knows none).
    """
    plan = store.plan(feature)
    walk = _Walk(store, plan.key, failures)
    asked = {_sortable(one): one for one in _samples(store, plan, ids)}
    return Why(plan.key, store.name or store.describe(), tuple(walk.sample(one) for one in asked.values()))


def parse_ids(texts: Sequence[str], id_columns: Sequence[str]) -> list[dict[str, str]]:
    """Samples from words as a user types them, one sample per word.

    ``3`` (a feature of one id column: the word whole); ``3,7`` (values comma-separated in the
    order of the id columns, as ``metadata delete --id`` takes them); ``sample_uid=3,frame=7``
    (named, any order, each id column once). A value holding a comma or a quote is written in
    double quotes, CSV-style, with ``""`` for a quote in it: ``path="/a,b.html"``,
    ``s1,"/a,b.html"``; two values of one id column are refused. Values stay text: :func:`why`
    reads them as the stored types.
    """
    return [_parse_word(text, id_columns) for text in texts]


def _parse_word(text: str, id_columns: Sequence[str]) -> dict[str, str]:
    """One sample from one word (:func:`parse_ids`)."""
    parts = _split_word(text)
    if all(name is None for name, _ in parts):
        values = [value for _, value in parts]
        if len(id_columns) == 1 and len(values) != 1:
            values = [text]
        if len(values) != len(id_columns):
            raise UsageError(
                f"`{text}` gives {len(values)} value(s), but the id columns are {', '.join(id_columns)}",
                f"give one value per id column, comma-separated in that order, or {_pairs(id_columns)}",
            )
        return dict(zip(id_columns, values, strict=True))
    sample: dict[str, str] = {}
    for name, value in parts:
        if name is None:
            raise UsageError(f"cannot read `{text}` as ids", f"give them as {_pairs(id_columns)} {QUOTING}")
        if name in sample:
            raise UsageError(f"`{text}` names `{name}` twice", "name each id column once")
        sample[name] = value
    return sample


QUOTING = '(a value holding a comma or a quote in double quotes: path="/a,b.html", "" for a quote in it)'
"""How :func:`parse_ids` quotes, as its errors say it."""


def _split_word(text: str) -> list[tuple[str | None, str]]:
    """The comma-separated parts of a word as ``(name or None, value)``, CSV quoting undone.

    A part (``"a,b"``) or the value of a named part (``path="a,b"``) starting with ``"`` runs to
    the closing quote, ``""`` standing for a quote; anywhere else a quote is a plain character.
    Python's :mod:`csv` reads each quoted field; it knows a quote only at a field's start, so
    the value of ``name="…"`` is handed to it from after the ``=``.
    """
    parts: list[tuple[str | None, str]] = []
    at = 0
    while True:
        name: str | None = None
        if not text.startswith('"', at):
            stop = _end_of_part(text, at)
            head, sep, _ = text[at:stop].partition("=")
            if sep:
                if not head.strip():
                    raise UsageError(f"cannot read `{text}` as ids", f"give them as NAME=VALUE,… {QUOTING}")
                name = head.strip()
                at += len(head) + 1
        if text.startswith('"', at):
            value, at = _quoted(text, at)
        else:
            stop = _end_of_part(text, at)
            value, at = text[at:stop], stop
        parts.append((name, value))
        if at == len(text):
            return parts
        at += 1  # the comma


def _end_of_part(text: str, at: int) -> int:
    stop = text.find(",", at)
    return len(text) if stop < 0 else stop


def _quoted(text: str, at: int) -> tuple[str, int]:
    """The value of the quoted field starting at ``text[at]`` (``"``) and the index after it (end or a comma)."""
    import csv

    close = at + 1
    while True:
        close = text.find('"', close)
        if close < 0:
            raise UsageError(
                f"`{text}` has a quote that is not closed", 'close the quoted value (a quote inside it is written "")'
            )
        if text.startswith('""', close):
            close += 2
            continue
        break
    after = close + 1
    if after < len(text) and text[after] != ",":
        raise UsageError(f"cannot read `{text}` as ids", "end a quoted value at a comma or at the end of the word")
    (value,) = next(csv.reader([text[at:after]]))
    return value, after


def _pairs(id_columns: Sequence[str]) -> str:
    return ",".join(f"{c}=VALUE" for c in id_columns)


def _samples(store: MetadataStore, plan: FeaturePlan, ids: Any) -> list[dict[str, Any]]:
    """The asked samples as mappings of every id column, each value of its stored type."""
    from collections.abc import Mapping

    if isinstance(ids, Mapping):
        given: list[Any] = [ids]
    elif isinstance(ids, (list, tuple)):
        given = list(ids)
    else:
        given = [ids]
    if not given:
        raise UsageError(f"no sample of `{plan.key}` given", "give at least one id")
    columns = list(plan.id_columns)
    samples = []
    for item in given:
        one = item
        if not isinstance(one, Mapping):
            if len(columns) != 1:
                raise UsageError(
                    f"`{one}` is one value, but `{plan.key}` has id columns {', '.join(columns)}",
                    "give each sample as a mapping of its id columns",
                )
            one = {columns[0]: one}
        unknown = [str(k) for k in one if k not in columns]
        missing = [c for c in columns if c not in one]
        if unknown or missing:
            what = f"no id column {', '.join(unknown)}" if unknown else f"no value for {', '.join(missing)}"
            raise UsageError(
                f"`{plan.key}` has id columns {', '.join(columns)}: {what}", "give a value for each id column"
            )
        samples.append({c: one[c] for c in columns})
    return _typed(store, plan, samples)


def _typed(store: MetadataStore, plan: FeaturePlan, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``samples`` with their values as the feature (or the upstream giving an id column) stores them."""
    import polars as pl

    from strata.stores.checks import fit_stored

    stored = store._id_schema(plan, plan.id_columns, through=True)  # noqa: SLF001 - the types a read compares with
    try:
        frame = pl.DataFrame([{c: s[c] for c in plan.id_columns} for s in samples], strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        raise UsageError(f"cannot read the ids given for `{plan.key}`", "give one plain value per id column") from None
    texts = [pl.col(c).cast(pl.String) for c, t in stored.items() if t == pl.String and frame.schema[c] != t]
    frame = frame.with_columns(texts)
    try:
        frame = fit_stored(store.describe(), plan.key, frame, stored)
    except WriteError:
        bad = next(c for c in plan.id_columns if frame.schema[c] != stored[c])
        values = ", ".join(repr(s[bad]) for s in samples)
        raise UsageError(
            f"id `{bad}` of `{plan.key}` is stored as {stored[bad]}: {values} is not one",
            f"give a value of type {stored[bad]}",
        ) from None
    return frame.rows(named=True)


# -- the walk ----------------------------------------------------------------------------


class _Walk:
    """One sample's nodes, found from the asked feature upward, each sample of each feature once."""

    def __init__(self, store: MetadataStore, key: FeatureKey, failures: Iterable[Mapping[str, Any]] = ()) -> None:
        self.store = store
        self.key = key
        self.graph = store.graph
        self.nodes: dict[tuple[FeatureKey, tuple[Any, ...]], Node] = {}
        self.holders: dict[FeatureKey, MetadataStore] = {}
        self.failures = {(str(f["feature"]), str(f["sample"])): f for f in failures}

    def sample(self, ids: dict[str, Any]) -> SampleWhy:
        self.nodes = {}
        self._node(self.key, ids)
        if all(n.status == "missing" and not n.causes for n in self.nodes.values()):
            raise self._not_found(ids)
        order = {k: i for i, k in enumerate(self.graph.topological_order())}
        nodes = sorted(self.nodes.values(), key=lambda n: (order[n.feature], _sortable(n.ids)))
        return SampleWhy(ids, tuple(nodes))

    def _not_found(self, ids: dict[str, Any]) -> SampleNotFoundError:
        graph = self.graph
        looked = [f"`{k}`" for k in graph.topological_order() if self.key in graph.downstream(k)]
        where = f"`{self.key}`" + (f" nor its upstreams ({', '.join(looked)})" if looked else "")
        return SampleNotFoundError(
            f"no sample {_ids_text(ids)} in {where} in {self.store._called()}",  # noqa: SLF001 - its name, values hidden
            "check the ids, and that this is the store that holds them",
        )

    def _node(self, key: FeatureKey, ids: dict[str, Any]) -> Node:
        """The node of sample ``ids`` of ``key``, and, first, every node upstream of it."""
        slot = (key, _sortable(ids))
        if slot in self.nodes:
            return self.nodes[slot]
        plan = self.store.plan(key)
        row = self._row(plan, ids)
        if plan.is_root:
            node = self._root(plan, ids, row)
        else:
            links = tuple(self._link(plan, up, ids, row) for up in plan.upstreams)
            for link in links:
                for up_ids in link.ids:
                    self._node(link.feature, up_ids)
            node = self._derived(plan, ids, row, links)
        fallback = self._fallback(plan) if row is not None else None
        if fallback is not None:
            node = dataclasses.replace(node, held_by=fallback)
        self.nodes[slot] = node
        return node

    def _row(self, plan: FeaturePlan, ids: dict[str, Any]) -> dict[str, Any] | None:
        """The latest row of the sample (live or a tombstone), or None."""
        rows = self._rows(plan, ids, history=False)
        return rows[0] if rows else None

    def _rows(self, plan: FeaturePlan, ids: Mapping[str, Any], *, history: bool) -> list[dict[str, Any]]:
        """Rows of ``plan`` whose columns in ``ids`` match (tombstones too); history: every row, by ``strata_seq``.

        Read from the store of the chain holding the feature, as :meth:`MetadataStore.read` does,
        but found by the engine: a SQL store sends back the few rows, not the table.
        """
        native = self._holder(plan)._read_matching(plan, ids, history=history)  # noqa: SLF001 - a narrowed read
        if native is None:
            return []
        if SEQ in native.columns:
            native = native.sort(SEQ)
        return native.rows(named=True)

    # -- roots ------------------------------------------------------------------------

    def _root(self, plan: FeaturePlan, ids: dict[str, Any], row: dict[str, Any] | None) -> Node:
        if row is None:
            return Node(plan.key, ids, "missing", ())
        runs = self._runs(plan, ids, row)
        fields = []
        for fplan in plan.fields:
            stored_cv = row.get(fplan.cv_column)
            causes: tuple[Cause, ...] = ()
            if stored_cv not in fplan.current_code_versions and not row[DELETED]:
                causes = (_code_cause(stored_cv, fplan),)
            run, at = runs.get(fplan.name, (None, None))
            dv = row.get(fplan.dv_column)
            fields.append(
                FieldWhy(fplan.name, dv, dv, shown_code_version(stored_cv), fplan.code_version, causes, run, at)
            )
        status = "deleted" if row[DELETED] else "stale" if any(f.stale for f in fields) else "present"
        return Node(plan.key, ids, status, tuple(fields), written_at=_time(row), source=self._source(plan, ids, row))

    def _source(self, plan: FeaturePlan, ids: dict[str, Any], row: Mapping[str, Any]) -> Source | None:
        """Where ``target-strata`` loaded the row from: the stream it names, else the one its feature was made of."""
        stream = row.get(STREAM_COLUMN) or (plan.spec.metadata or {}).get(STREAM_METADATA)
        return None if stream is None else Source(str(stream), dict(ids))

    def _runs(self, plan: FeaturePlan, ids: dict[str, Any], row: dict[str, Any]) -> dict[str, tuple[str | None, str]]:
        """Per field, the run (``_strata_run``) and time of the row that last changed its data version."""
        if RUN_COLUMN not in row:
            return {}
        history = self._rows(plan, ids, history=True)
        out: dict[str, tuple[str | None, str]] = {}
        for fplan in plan.fields:
            last: dict[str, Any] | None = None  # none before the first row and after a deletion
            for item in history:
                if not item[DELETED] and (last is None or item.get(fplan.dv_column) != last.get(fplan.dv_column)):
                    out[fplan.name] = (item.get(RUN_COLUMN), _time(item) or "")
                last = None if item[DELETED] else item
        return out

    # -- derived features -------------------------------------------------------------

    def _link(self, plan: FeaturePlan, up: UpstreamPlan, ids: dict[str, Any], row: dict[str, Any] | None) -> Link:
        """The samples of ``up`` that sample ``ids`` reads."""
        if up.lineage.kind != "aggregation":
            wanted = up.lineage.on if up.lineage.kind == "expansion" else up.id_columns
            return Link(up.key, up.lineage.kind, ({c: ids[c] for c in wanted if c in ids},), 1)
        children = self._children(plan, up, ids, row)
        behind = [c.ids for c in children if c.change != "same"]
        rest = [c.ids for c in children if c.change == "same"]
        followed = [*behind, *rest][:MAX_CHILDREN]
        return Link(up.key, "aggregation", tuple(followed), len(children))

    def _children(
        self,
        plan: FeaturePlan,
        up: UpstreamPlan,
        ids: dict[str, Any],
        row: dict[str, Any] | None,
        fields: Sequence[str] = (),
    ) -> list[Change]:
        """An aggregation's children of the sample: live now, or live when its row was written; each with its change.

        Read from the upstream's history: a child is ``added`` (not live when the row was
        written), ``removed`` (not live now), ``changed`` (a data version of ``fields``, default
        every field the aggregation reads, differs) or ``same``. With one field, each change
        carries that field's data versions then and now. "When written" is by ``strata_seq``
        where one store holds both features; across a chain (the row in a dev store, the children
        in its fallback) each store numbers its own writes, so by the time of writing instead.
        """
        uplan = self.store.plan(up.key)
        seq = None if row is None else row.get(SEQ)
        holders = {id(self._holder(p)) for p in (plan, uplan)}  # whose numbers compare
        then_key = SEQ if len(holders) == 1 else WRITTEN_AT
        then: dict[tuple[Any, ...], dict[str, Any]] = {}
        now: dict[tuple[Any, ...], dict[str, Any]] = {}
        for item in self._rows(uplan, {c: ids[c] for c in up.lineage.on}, history=True):
            child = tuple(item[c] for c in uplan.id_columns)
            if row is not None and _at_or_before(item.get(then_key), row.get(then_key)):
                then[child] = item
            now[child] = item
        dvs = [f"strata_dv__{f}" for f in fields or up.fields]
        out = []
        for child in sorted(set(then) | set(now), key=_sortable):
            before = then.get(child)
            after = now.get(child)
            before = None if before is None or before[DELETED] else before
            after = None if after is None or after[DELETED] else after
            if before is None and after is None:
                continue
            change = "added" if before is None else "removed" if after is None else "same"
            if before is not None and after is not None and any(before.get(c) != after.get(c) for c in dvs):
                change = "changed"
            if seq is None:
                change = "same"  # nothing stored yet: no child is behind a difference
            was, is_ = (None, None)
            if len(dvs) == 1:
                was, is_ = (_text(r.get(dvs[0])) if r is not None else None for r in (before, after))
            out.append(Change(up.key, dict(zip(uplan.id_columns, child, strict=True)), change, was, is_))
        return out

    def _derived(
        self, plan: FeaturePlan, ids: dict[str, Any], row: dict[str, Any] | None, links: Sequence[Link]
    ) -> Node:
        increment = self._resolved(plan, ids)
        added, changed, removed = (_first(part, plan.resolve_ids, ids) for part in increment)
        live = row is not None and not row[DELETED]
        status, causes = "missing", tuple[Cause, ...]()
        if added is not None:
            status, causes = "to add", (self._new(plan, row, links, self._fallback(plan)),)
        elif removed is not None and live:
            status, causes = "to remove", (self._gone(plan, ids, links),)
        elif changed is not None:
            status = "stale"
        elif live:
            status = "up to date"
        elif any(
            self.nodes[(link.feature, tuple(_sortable(i)))].status != "missing" for link in links for i in link.ids
        ):
            gone = self._gone(plan, ids, links)
            causes = (gone if gone.samples or not plan.child_ids else self._dropped(plan, ids, row),)
        elif (empty := self._childless(plan, ids, links)) is not None:
            causes = (empty,)
        if status in ("to add", "stale") and (failed := self._failed(plan, ids)) is not None:
            causes = (*causes, failed)
        expected = added or changed
        fields = []
        for fplan in plan.fields:
            stored = None if row is None else row.get(fplan.dv_column)
            stored_cv = None if row is None else row.get(fplan.cv_column)
            field_causes: tuple[Cause, ...] = ()
            if changed is not None and changed.get(fplan.cause_column):
                field_causes = tuple(
                    self._cause(plan, fplan, str(c), ids, row, changed)
                    for c in str(changed[fplan.cause_column]).split(",")
                )
            now = expected.get(fplan.dv_column) if expected is not None else None if status == "to remove" else stored
            shown = shown_code_version(stored_cv)
            pending = status if status in ("to add", "to remove") else None
            fields.append(FieldWhy(fplan.name, stored, now, shown, fplan.code_version, field_causes, pending=pending))
        return Node(plan.key, ids, status, tuple(fields), causes, tuple(links), None if row is None else _time(row))

    def _resolved(self, plan: FeaturePlan, ids: dict[str, Any]) -> tuple[Any, Any, Any]:
        """The store's increment of ``plan`` narrowed to the sample (an expansion's: its parent).

        Its parts added, changed and removed, as Polars frames.
        """
        from strata.features.graph import has_custom_loader

        store = self.store
        only = {k: ids[k] for k in plan.resolve_ids}
        increment: Increment | None = None
        if has_custom_loader(store.graph.feature(plan.key)):
            increment = store._resolve_custom(plan, lazy=False)  # noqa: SLF001 - its loader's rows, then filtered
        if increment is None:
            chained = store._fallback_supplies(plan)  # noqa: SLF001 - upstream rows a fallback holds
            resolve = store._resolve_chained if chained else _plain_resolve(store)  # noqa: SLF001
            increment = resolve(plan, lazy=False, only=only)
        return increment.added.to_native(), increment.changed.to_native(), increment.removed.to_native()

    def _cause(
        self,
        plan: FeaturePlan,
        fplan: FieldPlan,
        cause: str,
        ids: dict[str, Any],
        row: dict[str, Any] | None,
        changed: dict[str, Any],
    ) -> Cause:
        """One entry of a ``strata_cause__<field>`` value, with what is behind it."""
        if cause == CAUSE_CODE:
            return _code_cause(None if row is None else row.get(fplan.cv_column), fplan)
        if cause == CAUSE_DATA:
            return Cause(CAUSE_DATA, "the data version the source gives changed")
        item = _inputs(plan)[cause]
        column = input_column(item)
        stored = None if row is None else _text(row.get(column))
        now = _text(changed.get(column))
        up = next(u for u in plan.upstreams if u.key == item.feature)
        samples = self._behind(plan, up, item, ids, row, stored, now)
        text = f"upstream field {item.dotted} changed" + (f" in {_changes_text(samples)}" if samples else "")
        return Cause("input", text, item.dotted, stored, now, samples)

    def _behind(
        self,
        plan: FeaturePlan,
        up: UpstreamPlan,
        item: FieldInput,
        ids: dict[str, Any],
        row: dict[str, Any] | None,
        stored: str | None,
        now: str | None,
    ) -> tuple[Change, ...]:
        """The upstream samples behind a changed input: the one read (identity, a parent) or the children that moved."""
        if up.lineage.kind == "aggregation":
            return tuple(c for c in self._children(plan, up, ids, row, [item.field.name]) if c.change != "same")
        wanted = up.lineage.on if up.lineage.kind == "expansion" else up.id_columns
        up_ids = {c: ids[c] for c in wanted}
        change = "changed" if stored is not None and now is not None else "added" if now is not None else "removed"
        return (Change(up.key, up_ids, change, stored, now),)

    def _new(self, plan: FeaturePlan, row: dict[str, Any] | None, links: Sequence[Link], fallback: str | None) -> Cause:
        """Why the feature has a sample to add: no row (a deleted one, or only a fallback's); what it comes from."""
        samples = tuple(Change(link.feature, i, "added") for link in links for i in link.ids[:MAX_CHILDREN])
        if row is not None and row[DELETED]:
            text = f"deleted from `{plan.key}` while its upstream samples are still there"
        elif row is not None and fallback is not None:
            text = (
                f"not computed in {self.store._called()} yet: the row shown is {fallback}'s; "  # noqa: SLF001 - its name
                f"a build computes `{plan.key}` here, where it writes"
            )
        else:
            text = f"not computed yet: `{plan.key}` has no row for it" + (
                f"; it comes from {_changes_text(samples, with_change=False)}" if samples else ""
            )
        return Cause("new", text, samples=samples)

    def _gone(self, plan: FeaturePlan, ids: dict[str, Any], links: Sequence[Link]) -> Cause:
        """Why the feature has a sample to remove: the required upstream samples it came from are gone."""
        gone = []
        for up, link in zip(plan.upstreams, links, strict=True):
            if up.optional:
                continue
            uplan = self.store.plan(up.key)
            if up.lineage.kind == "aggregation":  # gone when no child is live
                parent = {c: ids[c] for c in up.lineage.on}
                gone.extend([] if self._live(uplan, parent) else [Change(up.key, parent, "removed")])
                continue
            gone.extend(Change(up.key, i, "removed") for i in link.ids if not self._live(uplan, i))
        upstream = [self.nodes.get((g.feature, _sortable(g.ids))) for g in gone]
        if gone and all(n is not None and n.status == "to add" for n in upstream):  # it comes back after them
            waiting = tuple(Change(g.feature, g.ids, "to add") for g in gone)
            return Cause(
                "new", f"waits for its upstream samples, which are to add: {_changes_text(waiting)}", samples=waiting
            )
        text = "its upstream samples are gone" + (f": {_changes_text(gone)}" if gone else "")
        return Cause("gone", text, samples=tuple(gone))

    def _dropped(self, plan: FeaturePlan, ids: dict[str, Any], row: dict[str, Any] | None) -> Cause:
        """Why an expansion's child is missing while its parent is there: a delete, or the parent's last write.

        A write of the parent numbers its children (and its "no children" row) with its own
        ``strata_seq``; a tombstone numbered after that is a delete's.
        """
        parent = {c: ids[c] for c in plan.resolve_ids}
        written = [
            r[SEQ]
            for r in self._rows(plan, parent, history=False)
            if not r[DELETED] or all(r[c] is None for c in plan.child_ids)
        ]
        if row is not None and row[DELETED] and (not written or row[SEQ] > max(written)):
            return Cause("deleted", f"deleted from `{plan.key}` while its parent {_ids_text(parent)} is still there")
        text = (
            f"the last write of `{plan.key}` for {_ids_text(parent)} did not produce it "
            "(a write of an expansion replaces every child of its parent)"
        )
        return Cause("dropped", text)

    def _failed(self, plan: FeaturePlan, ids: dict[str, Any]) -> Cause | None:
        """The last build's failure on the sample (keyed by its resolve ids, as the build records it), or None."""
        import polars as pl

        from strata.build.runner import sample_keys

        if not self.failures:
            return None
        key = sample_keys(plan, pl.DataFrame([{c: ids[c] for c in plan.resolve_ids}]))[0]
        found = self.failures.get((str(plan.key), key))
        if found is None:
            return None
        at = found.get("failed_at")
        with contextlib.suppress(ValueError):  # a page's records carry the time as text
            at = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
        if isinstance(at, dt.datetime):  # the machine's time zone, as every time shown to people
            from strata.history.shown import local_time

            since = f" (since {local_time(at if at.tzinfo else at.replace(tzinfo=dt.UTC))})"
        else:
            since = ""
        return Cause("failed", f"its last build failed{since}: {found['error']}")

    def _childless(self, plan: FeaturePlan, ids: dict[str, Any], links: Sequence[Link]) -> Cause | None:
        """Why an aggregation has no sample where its upstream holds the parent, but no child of it (or None)."""
        for up, link in zip(plan.upstreams, links, strict=True):
            if link.lineage != "aggregation" or link.total or up.optional:
                continue
            parent = {c: ids[c] for c in up.lineage.on}
            if self._rows(self.store.plan(up.key), parent, history=False):
                text = f"`{up.key}` holds no child of {_ids_text(parent)}: there is nothing to aggregate"
                return Cause("empty", text, samples=(Change(up.key, parent, "removed"),))
        return None

    def _holder(self, plan: FeaturePlan) -> MetadataStore:
        """The store of the chain whose rows a read of ``plan`` gives, asked once per feature of the walk."""
        if plan.key not in self.holders:
            self.holders[plan.key] = self.store._holder(plan)  # noqa: SLF001 - it asks each store of the chain
        return self.holders[plan.key]

    def _fallback(self, plan: FeaturePlan) -> str | None:
        """The name of the fallback the feature's rows are read from; None when it is the store asked."""
        holder = self._holder(plan)
        return None if holder is self.store else holder.name or holder.shown(holder.describe())

    def _live(self, plan: FeaturePlan, ids: Mapping[str, Any]) -> bool:
        return any(not r[DELETED] for r in self._rows(plan, ids, history=False))


def _plain_resolve(store: MetadataStore) -> Any:
    """The store's own narrowed resolve (``_resolve`` with ``only``), as a callable of (plan, lazy, only)."""

    def resolve(plan: FeaturePlan, *, lazy: bool, only: dict[str, Any]) -> Increment:
        return store._resolve(plan, None, lazy=lazy, only=only)  # noqa: SLF001 - the narrowed resolve `lookup` runs

    return resolve


# -- small helpers -----------------------------------------------------------------------


def _inputs(plan: FeaturePlan) -> dict[str, FieldInput]:
    """Cause text (``video.audio``) -> the input it names."""
    return {item.dotted: item for f in plan.fields for item in f.inputs}


def _first(frame: pl.DataFrame, keys: Sequence[str], ids: Mapping[str, Any]) -> dict[str, Any] | None:
    """The row of ``frame`` whose ``keys`` are those of ``ids`` (the narrowed resolve may bring others: none)."""
    for item in frame.rows(named=True):
        if all(item.get(k) == ids[k] for k in keys):
            return item
    return None


def behind_text(nodes: Iterable[tuple[str, str]]) -> str:
    """``transcript stale, video deleted``: of (feature, status) upstream of an asked sample, those not in sync.

    Each feature once, with the status of its first such sample; empty when all are in sync.
    """
    behind: dict[str, str] = {}
    for feature, status in nodes:
        if status not in ("present", "up to date"):
            behind.setdefault(feature, status)
    return ", ".join(f"{feature} {status}" for feature, status in behind.items())


def _at_or_before(value: Any, limit: Any) -> bool:
    """Whether a child's number (or time) ``value`` is at or before the row's; unknown ones are not."""
    return value is not None and limit is not None and value <= limit


def _code_cause(stored: str | None, fplan: FieldPlan) -> Cause:
    """The ``code`` cause of a stored ``strata_cv__<field>`` value: a new code version, or a new list of inputs."""
    was, now = shown_code_version(stored), fplan.code_version
    if was == now:  # the same code version over another input list (see resolve.plan.stored_code_version)
        text = f"the upstream fields it reads changed (code_version `{now}` as before)"
    else:
        text = f"code_version {'none (never computed)' if was is None else f'`{was}`'} -> `{now}`"
    return Cause(CAUSE_CODE, text, stored=was, now=now)


def _changes_text(samples: Iterable[Change], *, with_change: bool = True) -> str:
    parts = [f"`{s.feature}` {_ids_text(s.ids)}" + (f" ({s.change})" if with_change else "") for s in samples]
    shown = parts[:5]
    more = f" and {len(parts) - len(shown)} more" if len(parts) > len(shown) else ""
    return ", ".join(shown) + more


def id_word(ids: Mapping[str, Any], *, named: bool = True) -> str:
    """A sample's ids as one word :func:`parse_ids` reads back: ``sample_uid=3,frame=7`` (or ``3,7``).

    A value holding a comma or a quote (or, unnamed, an ``=``) is quoted CSV-style: ``path="/a,b.html"``.
    """

    def shown(value: Any) -> str:
        text = str(value)
        if any(c in text for c in ',"') or (not named and "=" in text):
            return '"' + text.replace('"', '""') + '"'
        return text

    return ",".join(f"{k}={shown(v)}" if named else shown(v) for k, v in ids.items())


def _ids_text(ids: Mapping[str, Any]) -> str:
    return id_word(ids)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(row: Mapping[str, Any]) -> str | None:
    value = row.get(WRITTEN_AT)
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else _text(value)


def _sortable(ids: Any) -> tuple[Any, ...]:
    """A key ordering samples whatever their id types (nulls first)."""
    values = ids.values() if hasattr(ids, "values") else ids
    return tuple((v is not None, str(type(v).__name__), v if v is not None else 0) for v in values)


def _plain(ids: Mapping[str, Any]) -> dict[str, Any]:
    """Ids as JSON holds them: numbers, text, booleans and null as they are; other values as text."""
    return {k: v if v is None or isinstance(v, (bool, int, float, str)) else str(v) for k, v in ids.items()}
