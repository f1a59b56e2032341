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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import msgspec

from strata.errors import UsageError

if TYPE_CHECKING:
    from strata.features.diff import FieldDiff, GraphDiff
    from strata.features.graph import FeatureGraph
    from strata.progress import Reporter
    from strata.stores.base import MetadataStore

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
        for migration in self.chain:
            if migration.id == migration_id:
                return migration
        raise UsageError(f"no migration `{migration_id}` in {DIRECTORY}/", "see `strata migrations list` for the ids")


def load(root: Path) -> Loaded:
    """Read and check every ``migrations/*.yaml`` of the project at ``root``.

    A file in a bad state (not a migration, an unknown key or op, an id that is not its name, a
    missing or shared parent) is one :class:`UsageError` naming the file. What it says of the
    graph is checked for the migrations still to apply (:func:`check_pending`): an applied one
    may name a feature the code has since dropped.
    """
    from ruamel.yaml.comments import CommentedMap

    from strata.project import yamlfile

    folder = root / DIRECTORY
    migrations: dict[str, Migration] = {}
    files: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        shown = Path(DIRECTORY) / path.name  # errors name the file from the project's root
        tree = yamlfile.load_text(path.read_text(encoding="utf-8"), shown.as_posix())
        if not isinstance(tree, CommentedMap):
            raise _bad(path, "is not a migration (a mapping with id, parent, from, to, operations)")
        _check_ops(path, tree.get("operations"))
        migration = yamlfile.convert(tree, Migration, shown)
        if migration.id != path.stem or not _ID.fullmatch(migration.id):
            raise _bad(path, f"id `{migration.id}` is not the file's name `{path.stem}` (NNNN_name)")
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


def check_pending(loaded: Loaded, applied: set[str], graph: FeatureGraph) -> None:
    """Check the migrations not in ``applied`` against the code's ``graph``.

    Each operation must name a feature of the graph and fields of it, upstreams first; else one
    :class:`UsageError` naming the file.
    """
    for migration in loaded.chain:
        if migration.id not in applied:
            _check_graph(loaded.files.get(migration.id, Path(DIRECTORY, f"{migration.id}.yaml")), migration, graph)


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

    def state(self, migration: Migration) -> str:
        """``applied``, ``pending``, or ``partial (k/n operations)``."""
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


def check_applicable(store: MetadataStore, todo: list[Migration], progress: Progress) -> None:
    """Refuse (one line, before anything is written) a migration whose parent or from-snapshot is not there."""
    from strata.errors import SnapshotNotFoundError

    reachable = {s.version for s in store.snapshots()}
    for migration in todo:
        waiting = migration.parent is not None and migration.parent not in progress.applied
        if waiting and migration.parent not in {m.id for m in todo}:
            raise UsageError(f"migration {migration.id}: parent {migration.parent} is not applied", "apply it first")
        if migration.from_snapshot not in reachable:
            raise SnapshotNotFoundError(
                f"migration {migration.id} starts from snapshot {migration.from_snapshot}, "
                f"which is not in {store.name or 'the store'}",
                "apply it to the store it was generated for (--store NAME)",
            )
        reachable.add(migration.to_snapshot)


class _Reconciled(Protocol):
    samples: int


class _Reconciler(Protocol):
    """``MetadataStore.reconcile``: rewrite the stored provenance of ``fields`` to the store graph's versions."""

    def reconcile(self, key: str, *, fields: list[str] | None = None, dry_run: bool = False) -> _Reconciled: ...


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
    report: Reporter | None = None,
) -> list[Step]:
    """Run the operations of ``migration`` not yet done, recording each, then the migration.

    A reconcile leaves out the fields of ``recomputed`` (feature, field): they stay stale.
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
        _run_step(store, step, recomputed, dry_run=dry_run)
        if report is not None:
            what = "already done" if step.skipped else f"{operation.op} {operation.feature}"
            report.advance(migration.id, items=step.samples or 0, note=f"#{number} {what}")
    if not dry_run:
        store.record_migration(migration.id, {"kind": "applied", "migration": migration.id})
    if report is not None:
        report.finish(migration.id)
    return steps


def _run_step(store: MetadataStore, step: Step, recomputed: set[tuple[str, str]], *, dry_run: bool) -> None:
    """Run one operation not done yet (a reconcile rewrites; a recompute leaves stale), and record it."""
    operation = step.operation
    if step.skipped:
        return
    if operation.op == "reconcile":
        step.superseded = tuple(f for f in operation.fields if (operation.feature, f) in recomputed)
        fields = [f for f in operation.fields if f not in step.superseded]
        reconciler = cast("_Reconciler", store)
        step.samples = reconciler.reconcile(operation.feature, fields=fields, dry_run=dry_run).samples if fields else 0
    if not dry_run:
        record = {"kind": "operation", "migration": step.migration, "operation": step.number}
        store.record_migration(step.migration, {**record, "feature": operation.feature, "op": operation.op})


@dataclass(frozen=True)
class Cover:
    """Whether the pending migrations lead from a store's latest snapshot to the code's graph."""

    migration: Migration | None
    """The last migration of a run of pending ones from the latest snapshot to the code's graph."""
    stray: Migration | None = None
    """Without such a run: a pending migration that leads to the code's graph from another snapshot."""

    def stray_error(self, latest: str, loaded: Loaded, root: Path) -> UsageError:
        """The refusal of :attr:`stray`: generated from a graph the store has moved past since."""
        assert self.stray is not None
        path = loaded.files.get(self.stray.id, root / DIRECTORY / f"{self.stray.id}.yaml")
        path = path.relative_to(root) if path.is_relative_to(root) else path
        return UsageError(
            f"migration {self.stray.id} starts from snapshot {self.stray.from_snapshot}, not {latest}, "
            "the latest in the store (a graph was pushed since it was generated)",
            f"delete {path.as_posix()} and run `strata migrations generate`",
        )


def covering(loaded: Loaded, applied: set[str], latest: str, version: str) -> Cover:
    """How the migrations not in ``applied`` lead from snapshot ``latest`` to ``version``.

    A run starts at the first pending migration whose ``from`` is ``latest`` (those before it
    were generated from older snapshots: a graph pushed before its migrations were applied) and
    follows parents while each starts where the one before led.
    """
    at: str | None = None
    todo = [m for m in loaded.chain if m.id not in applied]
    for migration in todo:
        if at is None and migration.from_snapshot == latest:
            at = latest
        if at is None:
            continue
        if migration.from_snapshot != at:
            break
        at = migration.to_snapshot
        if at == version:
            return Cover(migration)
    return Cover(None, next((m for m in todo if m.to_snapshot == version), None))


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
    report: Reporter | None = None,
) -> Applied:
    """Apply the pending migrations of ``loaded`` to ``store`` in parent order, up to ``until``.

    Everything is checked before the first write: a parent not applied, a from-snapshot not in
    the store, a last migration that does not lead to the store's graph (the code's: reconcile
    rewrites to its versions, and it is pushed after a successful apply). Operations recorded
    as done are skipped, so a rerun after an interruption does only the rest.

    Reconcile rewrites to the code's versions, which are those of the last migration; so a
    field that one of the migrations applied together recomputes is reconciled by none of
    them (a refactor followed by a real change, or the other way round, leaves it stale).
    ``report`` hears of each operation of each migration as it ends (:mod:`strata.progress`).
    """
    progress = Progress.of(store)
    check_pending(loaded, progress.applied, store.graph)
    todo = pending(loaded, progress, until)
    check_applicable(store, todo, progress)
    code = store.graph.snapshot_version
    if todo and todo[-1].to_snapshot != code:
        raise UsageError(
            f"migration {todo[-1].id} leads to snapshot {todo[-1].to_snapshot}, but the code's graph is {code}",
            "apply it with the code it was generated from, or generate a migration for the rest of the change",
        )
    recomputed = {(o.feature, f) for m in todo for o in m.operations if o.op == "recompute" for f in o.fields}
    if not dry_run:  # a reconcile the store refuses (see MetadataStore.reconcile) stops the apply before any write
        for migration in todo:
            apply_migration(store, migration, progress, recomputed, dry_run=True)
    steps = [
        step
        for migration in todo
        for step in apply_migration(store, migration, progress, recomputed, dry_run=dry_run, report=report)
    ]
    if todo and not dry_run:
        store.push_graph()
    return Applied(todo, steps)
