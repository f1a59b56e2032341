"""Views of a feature graph for people and machines: descriptions, renderings and store status.

- :func:`describe` / :func:`summary`: a feature as JSON-able data (``features show`` / ``list``);
- :func:`render_text`, :func:`render_mermaid`, :func:`render_dot`: the graph with its fields
  and field-level edges (``graph render``); every identifier is quoted and escaped, so any key
  a :class:`~strata.features.keys.FeatureKey` accepts renders as valid Mermaid and Graphviz;
- :func:`status`: per feature, what the store holds and what must be recomputed, with causes;
- :func:`field_status` / :func:`store_status`: per feature and field, how many samples are in
  sync, stale or failed (their last build failed), which the renderings draw when given
  (``graph render`` in colour; :mod:`strata.views.render` makes SVG and PNG of it).

Everything here reads the graph; only :func:`status`, :func:`field_status` and
:func:`store_status` touch a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strata.resolve.plan import CAUSE_CODE

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey
    from strata.history.runs import RunHistory
    from strata.project.project import Project
    from strata.resolve.increment import Increment
    from strata.resolve.plan import FeaturePlan, FieldPlan
    from strata.stores.base import MetadataStore


def summary(graph: FeatureGraph, key: FeatureKey) -> dict[str, Any]:
    """Key, fields, upstreams and feature version of one feature."""
    spec = graph.spec(key)
    return {
        "key": str(key),
        "fields": [f.key.name for f in spec.fields],
        "upstreams": [str(d.feature) for d in spec.deps],
        "feature_version": graph.feature_version(key),
    }


def describe(graph: FeatureGraph, key: FeatureKey) -> dict[str, Any]:
    """Everything that defines one feature, with the versions that follow from it."""
    spec = graph.spec(key)
    versions = graph.field_versions(key)
    return {
        "key": str(key),
        "description": spec.description,
        "class": graph.feature(key).import_path(),
        "id_columns": list(spec.id_columns),
        "feature_version": graph.feature_version(key),
        "deps": [
            {
                "feature": str(d.feature),
                "lineage": d.lineage.kind,
                "on": list(d.lineage.on),
                "optional": d.optional,
            }
            for d in spec.deps
        ],
        "fields": [
            {
                "key": f.key.name,
                "code_version": f.code_version,
                "field_version": versions[f.key.name],
                "inputs": [i.dotted for i in graph.field_inputs(key, f.key)],
            }
            for f in spec.fields
        ],
        "downstream": [str(k) for k in graph.downstream(key, transitive=False)],
        "metadata": spec.metadata,
    }


def edge_label(used: Sequence[str]) -> str:
    """What an edge of the graph says: the upstream fields the downstream reads, ``body, title``."""
    return ", ".join(used)


def edges(graph: FeatureGraph) -> list[tuple[FeatureKey, FeatureKey, list[str]]]:
    """``(upstream, downstream, upstream fields used)`` for every dependency, in graph order."""
    out: list[tuple[FeatureKey, FeatureKey, list[str]]] = []
    for key in graph.topological_order():
        used: dict[FeatureKey, set[str]] = {d.feature: set() for d in graph.spec(key).deps}
        for fspec in graph.spec(key).fields:
            for item in graph.field_inputs(key, fspec.key):
                used[item.feature].add(item.field.name)
        out.extend((up, key, sorted(fields)) for up, fields in used.items())
    return out


# -- staleness per field -------------------------------------------------------------------

STATES = ("in sync", "stale", "failed")
"""A field's (or feature's) state, from best to worst."""

COLOURS = {"in sync": "#c6efce", "stale": "#ffeb9c", "failed": "#ffc7ce"}
"""Fill colour of each state in the pictures (green, amber, red)."""

STROKES = {"in sync": "#2e7d32", "stale": "#9c6500", "failed": "#9c0006"}
"""Border colour of each state (Mermaid)."""


@dataclass(frozen=True)
class FieldState:
    """How many samples of one field are in sync, stale (to compute) or failed (their last build failed).

    ``causes`` counts why the stale and failed ones are: ``new`` (an added sample), ``code``,
    ``data`` or the upstream fields whose data changed, as ``strata status`` names them.
    """

    in_sync: int
    stale: int = 0
    failed: int = 0
    causes: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """``failed`` if any sample failed, else ``stale`` if any is stale, else ``in sync``."""
        return "failed" if self.failed else "stale" if self.stale else "in sync"

    def counts_text(self, parents: bool = False) -> str:
        """``17 in sync, 3 stale, 1 failed`` (zero stale or failed counts left out); ``7 parents in sync, 3 stale``."""
        first = f"{self.in_sync} {_parents(self.in_sync)} in sync" if parents else f"{self.in_sync} in sync"
        return ", ".join([first, *filter(None, [self.pending_text()])])

    def pending_text(self, parents: bool = False) -> str:
        """``3 stale, 1 failed``: the counts not in sync (zero ones left out; "" when all are in sync).

        With ``parents``, the first names the unit: ``3 parents stale, 1 failed``.
        """
        counts = [(name, n) for name, n in (("stale", self.stale), ("failed", self.failed)) if n]
        words = [f"{n} {name}" for name, n in counts]
        if parents and counts:
            words[0] = f"{counts[0][1]} {_parents(counts[0][1])} {counts[0][0]}"
        return ", ".join(words)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "in_sync": self.in_sync,
            "stale": self.stale,
            "failed": self.failed,
            "causes": dict(self.causes),
        }


@dataclass(frozen=True)
class FeatureState:
    """One feature in the store: live samples, samples to remove, and each field's :class:`FieldState`.

    Counts are in the unit the feature resolves (and builds) in: its samples, or for a 1:N
    expansion its parents (``parents`` of them held, "no children" ones included), since a
    parent is computed whole and a parent not computed yet has no children to count. The
    texts name the unit when it is parents: ``13 samples from 10 parents``, ``7 parents in sync``.
    """

    feature: str
    root: bool
    samples: int
    removed: int
    fields: dict[str, FieldState]
    parents: int | None = None
    """For an expansion: the parents held (the unit of every other count); None otherwise."""

    @property
    def state(self) -> str:
        """The worst state of its fields; ``stale`` when samples must be removed."""
        worst = max((STATES.index(f.state) for f in self.fields.values()), default=0)
        return STATES[max(worst, 1 if self.removed else 0)]

    @property
    def unit(self) -> str:
        """What the counts count: ``samples``, or ``parents`` for an expansion."""
        return "samples" if self.parents is None else "parents"

    def samples_text(self) -> str:
        """``20 samples``; an expansion's ``13 samples from 10 parents``."""
        parents = "" if self.parents is None else f" from {self.parents} {_parents(self.parents)}"
        return f"{self.samples} samples{parents}"

    def count_text(self, n: int, words: str) -> str:
        """``2 to remove``; an expansion's ``2 parents to remove`` (``n`` in this feature's unit)."""
        return f"{n} {words}" if self.parents is None else f"{n} {_parents(n)} {words}"

    def heading(self) -> str:
        """``20 samples``, ``20 samples, 2 to remove``.

        An expansion's: ``13 samples from 10 parents, 1 parent to remove``.
        """
        return self.samples_text() + (f", {self.count_text(self.removed, 'to remove')}" if self.removed else "")

    def counts_text(self, name: str) -> str:
        """Field ``name``'s :meth:`FieldState.counts_text`, naming this feature's unit when it is parents."""
        return self.fields[name].counts_text(self.parents is not None)

    def pending_text(self, name: str) -> str:
        """Field ``name``'s :meth:`FieldState.pending_text`, naming this feature's unit when it is parents."""
        return self.fields[name].pending_text(self.parents is not None)

    def to_json(self) -> dict[str, Any]:
        found = {
            "feature": self.feature,
            "root": self.root,
            "state": self.state,
            "unit": self.unit,
            "samples": self.samples,
            "removed": self.removed,
            "fields": {name: f.to_json() for name, f in self.fields.items()},
        }
        return found | ({} if self.parents is None else {"parents": self.parents})


def _parents(n: int) -> str:
    return "parent" if n == 1 else "parents"


GraphStatus = dict[str, FeatureState]
"""Per feature key (``str(key)``): its :class:`FeatureState`."""


# -- renderings --------------------------------------------------------------------------


def render_text(graph: FeatureGraph, status: Mapping[str, FeatureState] | None = None) -> str:
    """Features in topological order, each with its upstreams and its fields' inputs.

    With ``status``, each feature's samples and each field's counts follow in brackets, with
    the causes of what is not in sync.
    """
    lines: list[str] = []
    for key in graph.topological_order():
        spec = graph.spec(key)
        state = None if status is None else status.get(str(key))
        ups = []
        for dep in spec.deps:
            extra = [] if dep.lineage.kind == "identity" else [f"{dep.lineage.kind} on {', '.join(dep.lineage.on)}"]
            extra += ["optional"] if dep.optional else []
            ups.append(f"{dep.feature}" + (f" ({'; '.join(extra)})" if extra else ""))
        line = f"{key}  <- {', '.join(ups)}" if ups else f"{key}  (root)"
        lines.append(line if state is None else f"{line}  [{state.heading()}]")
        width = max(len(f.key.name) for f in spec.fields)
        for fspec in spec.fields:
            inputs = ", ".join(i.dotted for i in graph.field_inputs(key, fspec.key))
            text = f"  {fspec.key.name:<{width}}  v{fspec.code_version}"
            text = f"{text}  <- {inputs}" if inputs else text
            if state is None or fspec.key.name not in state.fields:
                lines.append(text)
            else:
                lines.append(f"{text}  [{_counts_with_causes(state, fspec.key.name)}]")
    return "\n".join(lines)


def _counts_with_causes(state: FeatureState, name: str) -> str:
    causes = ", ".join(f"{cause} {n}" for cause, n in sorted(state.fields[name].causes.items()))
    return state.counts_text(name) + (f": {causes}" if causes else "")


def mermaid_text(text: str) -> str:
    """Text inside a Mermaid ``"..."`` label: quotes and markup characters as entities."""
    for char, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return text


_MERMAID_CLASSES = {"in sync": "inSync", "stale": "stale", "failed": "failed"}


def render_mermaid(graph: FeatureGraph, status: Mapping[str, FeatureState] | None = None) -> str:
    """A Mermaid flowchart: one node per feature (key and fields), edges labelled with the fields used.

    With ``status``, a node lists its samples and each field's counts, and is coloured by its
    worst field through the classes ``inSync``, ``stale`` and ``failed``.
    """
    order = graph.topological_order()
    ids = {key: f"f{index}" for index, key in enumerate(order)}
    lines = ["graph TD"]
    if status is not None:
        lines += [
            f"    classDef {name} fill:{COLOURS[state]},stroke:{STROKES[state]},color:#000"
            for state, name in _MERMAID_CLASSES.items()
        ]
    for key in order:
        fields = [f.key.name for f in graph.spec(key).fields]
        state = None if status is None else status.get(str(key))
        if state is None:
            lines.append(f'    {ids[key]}["{mermaid_text(str(key))}<br/>{mermaid_text(", ".join(fields))}"]')
            continue
        rows = [str(key), state.heading()]
        rows += [f"{name}: {state.counts_text(name)}" for name in fields if name in state.fields]
        label = "<br/>".join(mermaid_text(row) for row in rows)
        lines.append(f'    {ids[key]}["{label}"]:::{_MERMAID_CLASSES[state.state]}')
    for up, down, used in edges(graph):
        label = f'|"{mermaid_text(edge_label(used))}"|' if used else ""
        lines.append(f"    {ids[up]} -->{label} {ids[down]}")
    return "\n".join(lines)


def _dot_string(*lines: str) -> str:
    r"""A Graphviz quoted string of ``lines``: ``"`` and ``\`` escaped, lines joined by ``\n``."""
    return '"' + "\\n".join(t.replace("\\", "\\\\").replace('"', '\\"') for t in lines) + '"'


def render_dot(graph: FeatureGraph, status: Mapping[str, FeatureState] | None = None) -> str:
    """A Graphviz digraph: one box per feature (key and fields), edges labelled with the fields used.

    With ``status``, each box is a table: the key, its samples, then a row per field with its
    counts, filled with the field's colour; the box is filled with its worst field's
    (``fillcolor``) and has the SVG class ``strata-feature`` plus ``in-sync``, ``stale`` or ``failed``.
    """
    lines = ["digraph strata {", "    rankdir=TB;"]
    if status is None:
        lines.append("    node [shape=box];")
    else:
        lines.append('    node [shape=box, style="rounded,filled", margin="0.08,0.06", fontname="Helvetica"];')
        lines.append('    edge [fontname="Helvetica", fontsize=10];')
    for key in graph.topological_order():
        names = [f.key.name for f in graph.spec(key).fields]
        state = None if status is None else status.get(str(key))
        if state is None:
            lines.append(f"    {_dot_string(str(key))} [label={_dot_string(str(key), ', '.join(names))}];")
        else:
            lines.append(f"    {_dot_string(str(key))} [{_dot_attributes(str(key), names, state)}];")
    for up, down, used in edges(graph):
        attrs = f" [label={_dot_string(edge_label(used))}]" if used else ""
        lines.append(f"    {_dot_string(str(up))} -> {_dot_string(str(down))}{attrs};")
    lines.append("}")
    return "\n".join(lines)


def _dot_attributes(key: str, names: Sequence[str], state: FeatureState) -> str:
    """A feature's class, fill and HTML-like table label; every text escaped as XML."""
    from html import escape

    rows = [
        f'<TR><TD COLSPAN="2"><B>{escape(key)}</B></TD></TR>',
        f'<TR><TD COLSPAN="2">{escape(state.heading())}</TD></TR>',
    ]
    for name in names:
        counts = state.fields.get(name)
        if counts is None:
            continue
        colour = COLOURS[counts.state]
        rows.append(
            f'<TR><TD ALIGN="LEFT" BGCOLOR="{colour}">{escape(name)}</TD>'
            f'<TD ALIGN="LEFT" BGCOLOR="{colour}">{escape(state.counts_text(name))}</TD></TR>'
        )
    table = f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4">{"".join(rows)}</TABLE>'
    css = state.state.replace(" ", "-")
    return f'class="strata-feature {css}", fillcolor="{COLOURS[state.state]}", label=<{table}>'


RENDERERS = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}


# -- status ------------------------------------------------------------------------------


def status(
    store: MetadataStore, keys: Sequence[FeatureKey], failed: Mapping[str, Collection[str]] | None = None
) -> list[dict[str, Any]]:
    """Per feature: live samples in ``store``, the increment's counts, and per field its causes and stale samples.

    ``fields`` maps each stale field to its causes (``code``, or the upstream fields whose data
    changed) and how many samples each cause touches; ``stale`` maps every field to the samples
    it must be computed for (added ones, and changed ones whose cause names it). A root feature
    resolves against the samples its caller supplies, so it has no increment: its stale samples
    are the rows whose field's code_version is not the code's (cause ``code``, as ``strata why``
    and a resolve with its samples say); ``in_sync`` is False when there are some, else None
    (its data cannot be checked without the samples). ``failed`` lists the samples whose last
    build failed (as :func:`field_status` takes them); given, a non-root row's
    ``failed_samples`` keeps those still to compute, the rule :func:`field_status` counts by.
    """
    return [_status_row(_read(store, key), failed) for key in keys]


def status_and_fields(
    store: MetadataStore, keys: Sequence[FeatureKey], failed: Mapping[str, Collection[str]]
) -> list[tuple[dict[str, Any], FeatureState]]:
    """Per feature: its :func:`status` row and its :func:`field_status` state, from one resolve.

    For a view that shows both (``strata ui``): its per-field counts are then those of
    ``strata graph render``, and the store is read once.
    """
    found = []
    for key in keys:
        read = _read(store, key)
        found.append((_status_row(read, failed), _field_state(read, set(failed.get(str(key), ())))))
    return found


@dataclass(frozen=True)
class _Read:
    """What one feature's views are made of: its plan, live ids, increment (None for a root) and code-stale counts.

    ``parents``: for an expansion, the parents it holds (:func:`held_parents`); else None.
    """

    plan: FeaturePlan
    ids: Any
    increment: Increment | None
    code_stale: dict[str, int]
    parents: int | None = None


def _read(store: MetadataStore, key: FeatureKey) -> _Read:
    """A feature's plan, the id columns of its live rows, and its increment or, for a root, its code-stale counts."""
    plan = store.plan(key)
    ids = store.read(key, columns=list(plan.id_columns))
    if plan.is_root:
        return _Read(plan, ids, None, code_stale(store, plan))
    parents = held_parents(store, plan) if plan.child_ids else None
    return _Read(plan, ids, store.resolve_update(key).collect(), {}, parents)


def held_parents(store: MetadataStore, plan: FeaturePlan) -> int:
    """The parents an expansion holds, as its resolve compares them: those with a live child or a "no children" row.

    Every parent a resolve calls changed or to remove is one of them, so a field's in-sync
    parents (these less the changed and removed ones) are never negative. Counted where the
    rows live (the latest rows through the store's lazy read), not loaded.
    """
    import narwhals as nw

    from strata.resolve.plan import DELETED

    frame = store.read(plan.key, include_deleted=True, lazy=True)
    if DELETED in frame.collect_schema().names():  # else nothing was written: no rows
        childless = nw.all_horizontal(*(nw.col(c).is_null() for c in plan.child_ids), ignore_nulls=False)
        frame = frame.filter(~nw.col(DELETED) | childless)
    held = frame.select(list(plan.resolve_ids)).unique()
    return int(held.select(nw.len()).collect(backend="polars").item())


def _status_row(read: _Read, failed: Mapping[str, Collection[str]] | None) -> dict[str, Any]:
    """One feature's row of :func:`status`."""
    key, increment = str(read.plan.key), read.increment
    if increment is None:
        stale = read.code_stale
        return {
            "feature": key,
            "root": True,
            "samples": len(read.ids),
            "fields": {name: {CAUSE_CODE: n} for name, n in stale.items() if n},
            "stale": stale,
            "in_sync": False if any(stale.values()) else None,
        }
    counts = increment.counts()
    row = {
        "feature": key,
        "root": False,
        "samples": len(read.ids),
        **counts,
        "fields": increment.changed_fields(),
        "stale": increment.stale_fields(),
        "in_sync": not any(counts.values()),
    }
    if failed is not None:
        row["failed_samples"] = sorted(_still_failed(read.plan, increment, set(failed.get(key, ()))))
    return row


def code_stale(store: MetadataStore, plan: FeaturePlan) -> dict[str, int]:
    """Per field of ``plan``: live rows whose stored code version (``strata_cv__<field>``) is none of the code's.

    Counted where the rows live (one aggregate through the store's lazy read), not loaded. A
    row without a code version for the field (none stored, or no such column yet) counts as
    stale, as in a resolve; a feature with no rows has none.
    """
    frame = store.read(plan.key, lazy=True)
    stored = set(frame.collect_schema().names())
    counts = [_code_stale_count(f, f.cv_column in stored).alias(f.name) for f in plan.fields]
    if not counts:
        return {}
    (row,) = frame.select(*counts).collect(backend="polars").rows(named=True)
    return {f.name: int(row[f.name] or 0) for f in plan.fields}


def _code_stale_count(fplan: FieldPlan, stored: bool) -> Any:
    """The Narwhals aggregate counting the rows whose ``strata_cv__<field>`` is none of the current ones."""
    import narwhals as nw

    if not stored:
        return nw.len()
    column = nw.col(fplan.cv_column)
    return (column.is_null() | ~column.is_in(list(fplan.current_code_versions))).cast(nw.Int64).sum()


def field_status(
    store: MetadataStore, keys: Sequence[FeatureKey], failed: Mapping[str, Collection[str]] | None = None
) -> GraphStatus:
    """Per feature of ``keys``: its samples and, per field, how many are in sync, stale or failed.

    A field's stale samples are the increment's added ones and the changed ones with a cause
    for that field; those whose key is in ``failed[str(key)]`` (sample keys as ``strata
    build`` records its failures in the run history) count as failed instead. Samples to
    remove count in no field. A root feature's stale samples are those whose field's code_version
    is not the code's (:func:`code_stale`, cause ``code``); its data is what ingest wrote.
    """
    return {str(key): _field_state(_read(store, key), set((failed or {}).get(str(key), ()))) for key in keys}


def _field_state(read: _Read, failed: set[str]) -> FeatureState:
    """One feature's :class:`FeatureState` (:func:`field_status`)."""
    if read.increment is None:
        samples = len(read.ids)
        fields = {
            name: FieldState(samples - n, stale=n, causes={CAUSE_CODE: n} if n else {})
            for name, n in read.code_stale.items()
        }
        return FeatureState(str(read.plan.key), root=True, samples=samples, removed=0, fields=fields)
    return _feature_state(read, read.increment, failed)


def _still_failed(plan: FeaturePlan, increment: Increment, failed: set[str]) -> set[str]:
    """The samples of ``failed`` still to compute (added or changed): a failed sample deleted since is none."""
    from strata.build.runner import sample_keys

    if not failed:
        return set()
    added, changed = increment.added.to_native(), increment.changed.to_native()
    return failed.intersection([*sample_keys(plan, added), *sample_keys(plan, changed)])


def _feature_state(read: _Read, increment: Increment, failed: set[str]) -> FeatureState:
    """A non-root feature's counts in the unit it resolves in (:class:`FeatureState`): held less changed, removed."""
    import polars as pl

    from strata.build.runner import sample_keys

    plan, live = read.plan, read.ids.to_native()
    units = live.height if read.parents is None else read.parents
    added = increment.added.to_native()
    changed = increment.changed.to_native()
    removed = len(increment.removed)
    added_failed = sum(k in failed for k in sample_keys(plan, added)) if failed else 0
    changed_causes = increment.changed_fields()
    fields = {}
    for fplan in plan.fields:
        stale = changed.filter(pl.col(fplan.cause_column).is_not_null())
        causes = ({"new": added.height} if added.height else {}) | changed_causes.get(fplan.name, {})
        failures = added_failed + (sum(k in failed for k in sample_keys(plan, stale)) if failed else 0)
        fields[fplan.name] = FieldState(
            in_sync=units - stale.height - removed,
            stale=added.height + stale.height - failures,
            failed=failures,
            causes=causes,
        )
    return FeatureState(
        str(plan.key), root=False, samples=live.height, removed=removed, fields=fields, parents=read.parents
    )


def store_status(project: Project, graph: FeatureGraph, store_name: str | None = None) -> GraphStatus | None:
    """:func:`field_status` of every feature in the project's store (``store_name``, default ``features.store``).

    None when nothing was written yet: a store file that does not exist (it is not created,
    and no database library is imported) or one that holds no sample of any feature. Failed
    samples come from the run history, when there is one. A store that cannot be opened is a
    :class:`~strata.errors.RuntimeFailure`.
    """
    from strata.features.project import make_store, opened, store_config

    config = store_config(project, store_name)
    if config.path is not None:
        from strata.stores.base import check_place

        check_place(config.path, f"store `{config.name}`")
    if _nothing_written(config):
        return None
    keys = graph.topological_order()
    store = make_store(project, config.name, graph=graph, read_only=True)
    with opened(store, config):
        states = field_status(store, keys, failed_samples(project, config.name, keys))
    pending = any(f.stale or f.failed for s in states.values() for f in s.fields.values())
    return states if pending or any(s.samples for s in states.values()) else None


def _nothing_written(config: Any) -> bool:
    """Whether a store holds nothing for sure without opening it: an in-memory one, or a file not made yet."""
    if config.fallbacks:
        return False
    if config.type == "memory":
        return True
    path = config.path
    return path is not None and (str(path) == ":memory:" or not path.exists())


def failed_samples(project: Project, store_name: str, keys: Sequence[FeatureKey]) -> dict[str, set[str]]:
    """Per feature, the samples whose last build failed (``strata_build_errors``); none without a history."""
    history = run_history(project)
    if history is None:
        return {}
    with history:
        return {str(key): set(history.build_errors(store_name, str(key))) for key in keys}


def failures(project: Project, store_name: str) -> list[dict[str, Any]]:
    """Every sample of the store whose last build failed, as ``RunHistory.failures`` gives them, URLs redacted."""
    from strata.project.settings import redact_urls

    history = run_history(project)
    if history is None:
        return []
    with history:
        return [f | {"error": redact_urls(str(f["error"]))} for f in history.failures(store_name)]


def run_history(project: Project) -> RunHistory | None:
    """The project's run history, or None while it has none (a read creates no system database)."""
    from strata.history import RunHistory, db

    default = db.default_file(project)
    if default is not None and not default.exists():
        return None
    return RunHistory.open(project)


def out_of_sync(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``transcript (5 changed)``, ``video (3 stale)`` for every feature of :func:`status` that is not in sync."""
    found = []
    for row in rows:
        if row["in_sync"] is False and row["root"]:
            found.append(f"{row['feature']} ({max(row['stale'].values())} stale)")
        elif row["in_sync"] is False:
            parts = [f"{row[p]} {p}" for p in ("added", "changed", "removed") if row[p]]
            found.append(f"{row['feature']} ({', '.join(parts)})")
    return found
