"""Migrations: reviewable files of what a graph change asks of the stored samples, and applying them.

``strata migrations generate`` diffs the store's latest pushed snapshot with the code
(:func:`strata.features.diff.diff_graphs`) and writes ``migrations/<id>.yaml``: its parent (the
previous migration), the from and to snapshot versions, and one operation per affected feature,
upstreams first, for the fields with new versions (``GraphDiff.fields_with_new_versions``):

* ``recompute`` (the default): nothing is written; the samples stay stale for ``strata build``.
* ``reconcile``: the code was refactored and results would not change, so the store rewrites the
  stored provenance of those fields to the new versions (``MetadataStore.reconcile``).

``apply`` runs the pending migrations in parent order and records each operation done, then the
migration, in the store's system table ``strata$migrations`` (append-only JSON records, as
snapshots are kept): a rerun after an interruption skips the operations already recorded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import msgspec

from strata.errors import SnapshotNotFoundError, UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from strata.features.diff import FieldDiff, GraphDiff
    from strata.features.graph import FeatureGraph
    from strata.progress import Reporter
    from strata.stores.base import MetadataStore
    from strata.stores.snapshots import Snapshot

DIRECTORY = "migrations"
"""Where a project keeps its migration files."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")
_ID = re.compile(r"(\d{4,})_[a-z0-9][a-z0-9_]*")


OPS = ("reconcile", "recompute")
"""What an operation may do."""


class Operation(msgspec.Struct, forbid_unknown_fields=True):
    """One step of a migration: what to do with the stored samples of some fields of one feature."""

    feature: str
    op: Literal["reconcile", "recompute"]
    fields: list[str]
    reason: str = ""


class Migration(msgspec.Struct, forbid_unknown_fields=True):
    """A migration file's content."""

    id: str
    parent: str | None
    from_snapshot: str = msgspec.field(name="from")
    to_snapshot: str = msgspec.field(name="to")
    created: str = ""
    operations: list[Operation] = msgspec.field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        """The file's content, keys in reading order."""
        return {
            "id": self.id,
            "parent": self.parent,
            "from": self.from_snapshot,
            "to": self.to_snapshot,
            "created": self.created,
            "operations": [
                {"feature": o.feature, "op": o.op, "fields": list(o.fields), "reason": o.reason}
                for o in self.operations
            ],
        }


@dataclass(frozen=True)
class Loaded:
    """The project's migration files, checked, in parent order (the first has no parent)."""

    chain: list[Migration]
    files: dict[str, Path] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [m.id for m in self.chain]

    def get(self, migration_id: str) -> Migration:
        """The migration of id ``migration_id``, or of a unique prefix of one (as ``graph diff`` takes versions)."""
        found = [m for m in self.chain if m.id == migration_id] or [
            m for m in self.chain if migration_id and m.id.startswith(migration_id)
        ]
        if len(found) > 1:
            ids = ", ".join(m.id for m in found)
            raise UsageError(f"`{migration_id}` is a prefix of several migrations ({ids})", "give more of the id")
        if not found:
            raise UsageError(
                f"no migration `{migration_id}` in {DIRECTORY}/", "see `strata migrations list` for the ids"
            )
        return found[0]

    def shown(self, migrations: list[Migration]) -> str:
        """The files of ``migrations`` as a user names them from the project's root."""
        return ", ".join(
            f"{DIRECTORY}/{self.files[m.id].name if m.id in self.files else m.id + '.yaml'}" for m in migrations
        )


def load(root: Path) -> Loaded:
    """Read and check every ``migrations/*.yaml`` of the project at ``root``.

    A file in a bad state (a ``*.yml``, a name not ``NNNN_name``, not a migration, an unknown key
    or op, an id that is not its name, ``created`` not an ISO time, a missing or shared parent)
    is one :class:`UsageError` naming the file. What it says of the graph is checked for the
    migrations still to apply (:func:`check_pending`): an applied one may name a feature the code
    has since dropped.
    """
    from ruamel.yaml.comments import CommentedMap

    from strata.project import yamlfile

    folder = root / DIRECTORY
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"{DIRECTORY} is a file, not a folder", f"move it away: strata keeps migration files in {DIRECTORY}/"
        )
    migrations: dict[str, Migration] = {}
    files: dict[str, Path] = {}
    misnamed = sorted(folder.glob("*.yml")) if folder.is_dir() else []
    if misnamed:  # never silently left out
        raise _bad(misnamed[0], "migration files end in .yaml", f"rename it to {misnamed[0].stem}.yaml")
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if not _ID.fullmatch(path.stem):
            raise _bad(path, f"the name `{path.stem}` is not NNNN_name", "rename the file and its id, e.g. 0001_name")
        shown = Path(DIRECTORY) / path.name  # errors name the file from the project's root
        tree = yamlfile.load_text(path.read_text(encoding="utf-8"), shown.as_posix())
        if not isinstance(tree, CommentedMap):
            raise _bad(path, "is not a migration (a mapping with id, parent, from, to, operations)")
        _check_ops(path, tree.get("operations"))
        migration = yamlfile.convert(tree, Migration, shown)
        if migration.id != path.stem:
            raise _bad(path, f"id `{migration.id}` is not the file's name `{path.stem}`")
        _check_created(path, migration.created)
        migrations[migration.id] = migration
        files[migration.id] = path
    return Loaded(_chain(migrations, files), files)


def _bad(path: Path, what: str, hint: str = "fix the file, or generate it again") -> UsageError:
    return UsageError(f"{DIRECTORY}/{path.name}: {what}", hint)


def _check_ops(path: Path, operations: Any) -> None:
    """An unknown ``op`` named plainly (the schema would only say the value is invalid)."""
    for number, operation in enumerate(operations if isinstance(operations, list) else [], 1):
        op = operation.get("op") if isinstance(operation, dict) else None
        if isinstance(op, str) and op not in OPS:
            raise _bad(path, f"operation {number}: unknown op `{op}`", f"use one of: {', '.join(OPS)}")


def _check_created(path: Path, created: str) -> None:
    try:
        dt.datetime.fromisoformat(created)
    except ValueError:
        example = "write it as e.g. 2026-12-07T13:18:34+00:00"
        raise _bad(path, f"created `{created}` is not an ISO time", example) from None


def check_pending(
    loaded: Loaded, applied: set[str], graph: FeatureGraph, snapshots: Mapping[str, Snapshot] | None = None
) -> None:
    """Check the migrations not in ``applied`` against the code's ``graph`` and the store's ``snapshots``.

    Each operation must name a feature of the graph and fields of it, upstreams first, each
    field in one operation only, and some operation when ``from`` and ``to`` differ. When both
    graphs are known (``from`` a stored snapshot, ``to`` the code's or a stored one), the
    fields operated on are those with a new version between them, every one of them. Else one
    :class:`UsageError` naming the file.
    """
    for migration in loaded.chain:
        if migration.id not in applied:
            path = loaded.files.get(migration.id, Path(DIRECTORY, f"{migration.id}.yaml"))
            _check_graph(path, migration, graph)
            _check_fields(path, migration, _diffed(migration, graph, snapshots or {}))


def _diffed(migration: Migration, code: FeatureGraph, snapshots: Mapping[str, Snapshot]) -> set[tuple[str, str]] | None:
    """The (feature, field) with a new version from ``from`` to ``to``; None when one of the graphs is unknown."""
    from strata.features.diff import diff_graphs

    old = snapshots.get(migration.from_snapshot)
    new = code if migration.to_snapshot == code.snapshot_version else None
    if new is None and migration.to_snapshot in snapshots:
        new = snapshots[migration.to_snapshot].graph()
    if old is None or new is None:
        return None
    return {(f.feature, f.field) for f in diff_graphs(old.graph(), new).fields_with_new_versions()}


def _check_fields(path: Path, migration: Migration, changed: set[tuple[str, str]] | None) -> None:
    """Each field in one operation, only fields with a new version (when known), and all of them."""
    if not migration.operations and migration.from_snapshot != migration.to_snapshot:
        raise _bad(
            path,
            f"no operations, but it leads from snapshot {migration.from_snapshot} to {migration.to_snapshot}",
            "delete it and generate it again",
        )
    seen: dict[tuple[str, str], int] = {}
    for number, operation in enumerate(migration.operations, 1):
        for name in operation.fields:
            key = (operation.feature, name)
            where = f"operation {number}: field `{name}` of `{operation.feature}`"
            if key in seen:
                raise _bad(path, f"{where} is already in operation {seen[key]}", "keep one operation per field")
            if changed is not None and key not in changed:
                versions = f"{migration.from_snapshot} to {migration.to_snapshot}"
                raise _bad(path, f"{where} has no new version from {versions}", "remove it from the operation")
            seen[key] = number
    missing = sorted(set(changed or ()) - set(seen))
    if missing:
        feature, name = missing[0]
        raise _bad(
            path,
            f"field `{name}` of `{feature}` has a new version but no operation (its samples would stay as stored)",
            f"add it to an operation: recompute `{feature}` to rebuild it, reconcile if results would not change",
        )


def _check_graph(path: Path, migration: Migration, graph: FeatureGraph) -> None:
    """Check one migration's operations against the code's graph."""
    order = {str(k): i for i, k in enumerate(graph.topological_order())}
    last = -1
    for number, operation in enumerate(migration.operations, 1):
        where = f"operation {number}"
        if operation.feature not in order:
            raise _bad(path, f"{where}: unknown feature `{operation.feature}` (not in the code's graph)")
        known = {f.key.name for f in graph.spec(operation.feature).fields}
        unknown = [f for f in operation.fields if f not in known]
        if unknown or not operation.fields:
            what = f"unknown field `{unknown[0]}` of" if unknown else "no fields for"
            raise _bad(path, f"{where}: {what} `{operation.feature}`")
        if order[operation.feature] < last:
            raise _bad(
                path, f"{where}: `{operation.feature}` comes after a feature downstream of it", "order upstreams first"
            )
        last = order[operation.feature]


def _chain(migrations: dict[str, Migration], files: dict[str, Path]) -> list[Migration]:
    """The migrations in parent order; a missing parent, two roots or a fork is an error naming a file."""
    children: dict[str | None, list[Migration]] = {}
    for migration in migrations.values():
        if migration.parent is not None and migration.parent not in migrations:
            raise _bad(files[migration.id], f"parent `{migration.parent}` is missing (no such migration file)")
        children.setdefault(migration.parent, []).append(migration)
    for siblings in children.values():
        if len(siblings) > 1:
            names = sorted(m.id for m in siblings)
            raise _bad(files[names[1]], f"has the same parent as {names[0]}", "give it the other as parent")
    chain: list[Migration] = []
    parent: str | None = None
    while parent in children:
        chain.append(children[parent][0])
        parent = chain[-1].id
    if len(chain) != len(migrations):
        stray = min(set(migrations) - {m.id for m in chain})
        raise _bad(files[stray], "is not in the chain of parents from the first migration", "fix its parent")
    return chain


# -- generate -----------------------------------------------------------------------------


def reason(item: FieldDiff) -> str:
    """Why a field's stored samples need an operation: its code version or inputs, or what reaches it."""
    if item.kind == "reached":
        return f"{item.field}: reached by {', '.join(item.reached_by)}"
    parts = []
    if item.code_changed:
        parts.append(f"code version of field {item.field} {item.old_code_version} -> {item.new_code_version}")
    if item.inputs_added:
        parts.append(f"field {item.field} reads {', '.join(item.inputs_added)}")
    if item.inputs_removed:
        parts.append(f"field {item.field} no longer reads {', '.join(item.inputs_removed)}")
    return "; ".join(parts) or f"field {item.field} has a new version"


def operations(diff: GraphDiff, reconcile: list[str]) -> list[Operation]:
    """One operation per affected feature (two when some of its fields reconcile, others recompute), upstreams first.

    ``reconcile`` names ``FEATURE`` (all its fields with new versions) or ``FEATURE.FIELD``; each
    must name something the diff changes.
    """
    fields = diff.fields_with_new_versions()
    chosen: set[tuple[str, str]] = set()
    for target in reconcile:
        hit = [(f.feature, f.field) for f in fields if target in (f.feature, f.dotted)]
        if not hit:
            raise UsageError(
                f"--reconcile `{target}` names no feature or field with a new version",
                "see `strata graph diff` for what changed",
            )
        chosen.update(hit)
    result: list[Operation] = []
    by_feature: dict[str, list[FieldDiff]] = {}
    for item in fields:
        by_feature.setdefault(item.feature, []).append(item)
    for feature, items in by_feature.items():
        for op in ("reconcile", "recompute"):
            picked = [i for i in items if ((i.feature, i.field) in chosen) == (op == "reconcile")]
            if picked:
                result.append(Operation(feature, op, [i.field for i in picked], "; ".join(reason(i) for i in picked)))
    return result


def new_migration(loaded: Loaded, name: str, diff: GraphDiff, ops: list[Operation]) -> Migration:
    """The next migration after the last of ``loaded``."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"--name `{name}` is not a migration name", "use lowercase letters, digits and `_`")
    last = loaded.chain[-1] if loaded.chain else None
    number = int(last.id.split("_", 1)[0]) + 1 if last else 1
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return Migration(
        f"{number:04d}_{name}", last.id if last else None, diff.old_version, diff.new_version, created, ops
    )


def write(root: Path, migration: Migration) -> Path:
    """Write ``migration`` to ``migrations/<id>.yaml``; the path."""
    from ruamel.yaml import YAML

    folder = root / DIRECTORY
    folder.mkdir(exist_ok=True)
    path = folder / f"{migration.id}.yaml"
    yaml = YAML()
    yaml.default_flow_style = None
    with path.open("x", encoding="utf-8") as out:
        yaml.dump(migration.to_data(), out)
    return path


# -- progress in the store ----------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What a store recorded of the migrations: those applied, and the operations done of each."""

    applied: set[str]
    done: dict[str, set[int]]
    past: frozenset[str] = frozenset()
    """Migrations counted as applied though the store never ran them: it started past them (see :meth:`beyond`)."""

    @classmethod
    def of(cls, store: MetadataStore) -> Progress:
        applied: set[str] = set()
        done: dict[str, set[int]] = {}
        for record in store.migration_records():
            if record["kind"] == "applied":
                applied.add(record["migration"])
            else:
                done.setdefault(record["migration"], set()).add(int(record["operation"]))
        return cls(applied, done)

    def beyond(self, loaded: Loaded, stored: Stored) -> Progress:
        """This progress with the first pending migrations the store started past counted as applied.

        A store set up after those migrations were applied elsewhere (a new environment, a
        developer's store) holds a graph one of them leads to, but never the graph they start
        from: there is nothing for them to do in it. Such are the pending migrations up to the
        last one whose ``to`` the store holds, as long as none of them starts from a snapshot the
        store holds or has operations done (a graph pushed before its migration was applied: that
        one still has to run).
        """
        todo = [m for m in loaded.chain if m.id not in self.applied]
        reach = max((i for i, m in enumerate(todo) if m.to_snapshot in stored.snapshots), default=-1)
        past: list[str] = []
        for migration in todo[: reach + 1]:
            if migration.from_snapshot in stored.snapshots or self.done.get(migration.id):
                break
            past.append(migration.id)
        return replace(self, applied=self.applied | set(past), past=self.past | frozenset(past))

    def state(self, migration: Migration) -> str:
        """``applied``, ``not needed``, ``pending``, or ``partial (k/n operations)``."""
        if migration.id in self.past:
            return "not needed (the store started past it)"
        if migration.id in self.applied:
            return "applied"
        finished = len(self.done.get(migration.id, set()))
        return f"partial ({finished}/{len(migration.operations)} operations)" if finished else "pending"


def pending(loaded: Loaded, progress: Progress, until: str | None) -> list[Migration]:
    """The migrations to apply, in order, up to ``until`` (None: all)."""
    chain = loaded.chain
    if until is not None:
        target = loaded.get(until)
        chain = chain[: chain.index(target) + 1]
    return [m for m in chain if m.id not in progress.applied]


@dataclass(frozen=True)
class Stored:
    """What the checks read of a store: its name, its snapshots by version, and the latest one's version."""

    name: str
    snapshots: dict[str, Snapshot]
    latest: str | None

    @classmethod
    def of(cls, store: MetadataStore) -> Stored:
        found = store.snapshots()  # newest first: the first of a version is its latest push
        by_version: dict[str, Snapshot] = {}
        for snapshot in found:
            by_version.setdefault(snapshot.version, snapshot)
        return cls(store.name or "the store", by_version, found[0].version if found else None)


def check_applicable(loaded: Loaded, todo: list[Migration], progress: Progress, stored: Stored, code: str) -> None:
    """Refuse (one line, before anything is written) migrations ``apply`` cannot run to the ``code``'s graph.

    A parent not applied; a migration that does not start where its pending parent leads, or
    (the first) from a snapshot not in the store; a last one not leading to the code's graph;
    and, when the store's latest snapshot is not the code's, no pending migration starting from
    it (the others were generated from a graph the store has moved past). ``status --check``
    runs the same checks.
    """
    check_chain(loaded, todo, progress, stored)
    if not todo:
        return
    last = todo[-1]
    if last.to_snapshot != code:
        whole = last is loaded.chain[-1]
        raise UsageError(
            f"migration {last.id} leads to snapshot {last.to_snapshot}, but the code's graph is {code}",
            f"delete {loaded.shown(_unstored(todo, stored))} and generate one migration for the whole change, "
            "or apply it with the code it was generated from"
            if whole
            else "apply up to the migration that leads to the code's graph (no ID: all of them)",
        )
    if stored.latest not in (None, code) and all(m.from_snapshot != stored.latest for m in todo):
        first = _unstored(todo, stored)[0]
        raise UsageError(
            f"migration {first.id} starts from snapshot {first.from_snapshot}, not {stored.latest}, "
            f"the latest in {stored.name} (a graph was pushed since it was generated)",
            f"delete {loaded.shown(_unstored(todo, stored))} and run `strata migrations generate`",
        )


def _unstored(todo: list[Migration], stored: Stored) -> list[Migration]:
    """The pending migrations after the last one leading to a stored snapshot: those to generate again."""
    reached = [i for i, m in enumerate(todo) if m.to_snapshot in stored.snapshots]
    return todo[reached[-1] + 1 :] if reached and reached[-1] + 1 < len(todo) else todo


def check_chain(loaded: Loaded, todo: list[Migration], progress: Progress, stored: Stored) -> None:
    """Each pending migration starts where its pending parent leads, the first from a snapshot in the store."""
    by_id = {m.id: m for m in todo}
    for migration in todo:
        parent = by_id.get(migration.parent or "")
        if migration.parent is not None and parent is None and migration.parent not in progress.applied:
            raise UsageError(f"migration {migration.id}: parent {migration.parent} is not applied", "apply it first")
        if parent is not None and migration.from_snapshot != parent.to_snapshot:
            if parent.to_snapshot in stored.snapshots and migration.from_snapshot in stored.snapshots:
                continue  # the parent leads to a pushed graph; others were pushed after it
            again = todo[todo.index(parent) :]
            raise UsageError(
                f"migration {migration.id} starts from snapshot {migration.from_snapshot}, "
                f"but its parent {parent.id} leads to {parent.to_snapshot}",
                f"delete {loaded.shown(_unstored(again, stored))} and run `strata migrations generate`",
            )
        if parent is None and migration.from_snapshot not in stored.snapshots:
            raise SnapshotNotFoundError(
                f"migration {migration.id} starts from snapshot {migration.from_snapshot}, "
                f"which is not in {stored.name}",
                "apply it to the store it was generated for (--store NAME)",
            )


class _Reconciled(Protocol):
    samples: int


class _Reconciler(Protocol):
    """``MetadataStore.reconcile``: rewrite the stored provenance of ``fields`` to the store graph's versions."""

    def reconcile(
        self,
        key: str,
        *,
        fields: list[str] | None = None,
        dry_run: bool = False,
        upstream: set[tuple[str, str]] | None = None,
    ) -> _Reconciled: ...


@dataclass
class Step:
    """One operation as applied (or to be applied, in a dry run)."""

    migration: str
    number: int
    operation: Operation
    skipped: bool = False
    samples: int | None = None
    superseded: tuple[str, ...] = ()
    """Fields of a reconcile left stale: the same apply recomputes them (see :func:`apply`)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "operation": self.number,
            "feature": self.operation.feature,
            "op": self.operation.op,
            "fields": list(self.operation.fields),
            "already_done": self.skipped,
            "samples": self.samples,
            "left_stale": list(self.superseded),
        }


def apply_migration(
    store: MetadataStore,
    migration: Migration,
    progress: Progress,
    recomputed: set[tuple[str, str]],
    *,
    dry_run: bool,
    reconciled: set[tuple[str, str]] | None = None,
    report: Reporter | None = None,
) -> list[Step]:
    """Run the operations of ``migration`` not yet done, recording each, then the migration.

    A reconcile leaves out the fields of ``recomputed`` (feature, field): they stay stale. It
    takes the new data versions of the upstream fields in ``reconciled`` (those the apply
    reconciles; None: every non-root upstream field), no other upstream change.
    A dry run records nothing; its reconcile steps carry the samples a reconcile would rewrite now.
    ``report`` hears of each operation as it ends (:mod:`strata.progress`).
    """
    steps = []
    done = progress.done.get(migration.id, set())
    if report is not None:
        report.start(migration.id, len(migration.operations), unit="operation", items="sample")
    for number, operation in enumerate(migration.operations, 1):
        step = Step(migration.id, number, operation, skipped=number in done)
        steps.append(step)
        _run_step(store, step, recomputed, reconciled, dry_run=dry_run)
        if report is not None:
            what = "already done" if step.skipped else f"{operation.op} {operation.feature}"
            report.advance(migration.id, items=step.samples or 0, note=f"#{number} {what}")
    if not dry_run:
        store.record_migration(migration.id, {"kind": "applied", "migration": migration.id})
    if report is not None:
        report.finish(migration.id)
    return steps


def _run_step(
    store: MetadataStore,
    step: Step,
    recomputed: set[tuple[str, str]],
    reconciled: set[tuple[str, str]] | None,
    *,
    dry_run: bool,
) -> None:
    """Run one operation not done yet (a reconcile rewrites; a recompute leaves stale), and record it.

    See :func:`apply_migration` for ``recomputed`` and ``reconciled``.
    """
    operation = step.operation
    if step.skipped:
        return
    if operation.op == "reconcile":
        step.superseded = tuple(f for f in operation.fields if (operation.feature, f) in recomputed)
        fields = [f for f in operation.fields if f not in step.superseded]
        reconciler = cast("_Reconciler", store)
        step.samples = (
            reconciler.reconcile(operation.feature, fields=fields, dry_run=dry_run, upstream=reconciled).samples
            if fields
            else 0
        )
    if not dry_run:
        record = {"kind": "operation", "migration": step.migration, "operation": step.number}
        store.record_migration(step.migration, {**record, "feature": operation.feature, "op": operation.op})


@dataclass(frozen=True)
class Applied:
    """What an apply did (or would do): the migrations it took, in order, and each operation."""

    migrations: list[Migration]
    steps: list[Step]


def apply(
    store: MetadataStore,
    loaded: Loaded,
    until: str | None = None,
    *,
    dry_run: bool = False,
    tags: Mapping[str, str] | None = None,
    report: Reporter | None = None,
) -> Applied:
    """Apply the pending migrations of ``loaded`` to ``store`` in parent order, up to ``until``.

    Everything is checked before the first write (:func:`check_pending`,
    :func:`check_applicable`): the last migration must lead to the store's graph, the code's
    (reconcile rewrites to its versions, and it is pushed, with ``tags``, after a successful
    apply). Operations recorded as done are skipped, so a rerun after an interruption does only
    the rest.

    Reconcile rewrites to the code's versions, which are those of the last migration; so a
    field that one of the migrations applied together recomputes is reconciled by none of
    them (a refactor followed by a real change, or the other way round, leaves it stale).
    ``report`` hears of each operation of each migration as it ends (:mod:`strata.progress`).
    """
    stored = Stored.of(store)
    progress = Progress.of(store).beyond(loaded, stored)
    check_pending(loaded, progress.applied, store.graph, stored.snapshots)
    todo = pending(loaded, progress, until)
    check_applicable(loaded, todo, progress, stored, store.graph.snapshot_version)
    recomputed = {(o.feature, f) for m in todo for o in m.operations if o.op == "recompute" for f in o.fields}
    reconciled = {(o.feature, f) for m in todo for o in m.operations if o.op == "reconcile" for f in o.fields}
    reconciled -= recomputed  # a reconcile takes these upstream fields' new data versions, no other upstream change
    if not dry_run:  # a reconcile the store refuses (see MetadataStore.reconcile) stops the apply before any write
        for migration in todo:
            apply_migration(store, migration, progress, recomputed, dry_run=True, reconciled=reconciled)
    steps = [
        step
        for migration in todo
        for step in apply_migration(
            store, migration, progress, recomputed, dry_run=dry_run, reconciled=reconciled, report=report
        )
    ]
    if todo and not dry_run:
        store.push_graph(tags)
    return Applied(todo, steps)
