"""Property tests: random graphs, random changes, every store against a plain-Python oracle.

Nothing that should be recomputed is missed, nothing else is flagged, causes are right, and the
in-memory and DuckDB stores return identical increments with byte-identical data versions. A
third store resolves lazily and writes the increment's parts in place (DuckDB relations, never
leaving DuckDB): it must see the same increments and reach the same sync records.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import strata as st
from strata.features.versions import sample_hash
from tests.servers import PostgresServer


@dataclass
class FeatureDef:
    name: str
    deps: list[str]
    fields: dict[str, list[tuple[str, str]] | None]  # field -> explicit (feature, field) inputs, or None = all
    code: dict[str, str] = field(default_factory=dict)


@hs.composite
def graphs(draw: hs.DrawFn) -> list[FeatureDef]:
    count = draw(hs.integers(2, 4))
    defs: list[FeatureDef] = []
    for index in range(count):
        name = f"f{index}"
        ups = [d.name for d in defs if draw(hs.booleans())] if index else []
        names = [f"x{j}" for j in range(draw(hs.integers(1, 3)))]
        fields: dict[str, list[tuple[str, str]] | None] = {}
        for fname in names:
            available = [(u, g) for u in ups for g in next(d for d in defs if d.name == u).fields]
            explicit = draw(hs.booleans())
            if ups and explicit:
                fields[fname] = draw(hs.lists(hs.sampled_from(available), min_size=1, unique=True))
            else:
                fields[fname] = None
        defs.append(FeatureDef(name, ups, fields, dict.fromkeys(names, "1")))
    return defs


def build(defs: list[FeatureDef]) -> st.FeatureGraph:
    graph = st.FeatureGraph()
    with graph.use():
        for d in defs:
            specs = [
                st.FieldSpec(f, d.code[f], None if deps is None else [st.FieldDep(u, [g]) for u, g in deps])
                for f, deps in d.fields.items()
            ]
            graph.add_spec(st.FeatureSpec(d.name, deps=d.deps, fields=specs))
    return graph


def inputs_of(defs: list[FeatureDef], d: FeatureDef, fname: str) -> list[tuple[str, str]]:
    explicit = d.fields[fname]
    if explicit is None:
        explicit = [(u, g) for u in d.deps for g in next(x for x in defs if x.name == u).fields]
    return sorted(set(explicit), key=lambda item: f"{item[0]}.{item[1]}")


Row = tuple[dict[str, tuple[Any, str]], dict[str, str | None]]
"""A stored sample: per field (code version as stored, data version), and its feature's input columns."""


def stored_code(defs: list[FeatureDef], d: FeatureDef, fname: str) -> Any:
    """What the store keeps as the code version of ``fname``: a non-root field's comes with its input list."""
    if not d.deps:
        return d.code[fname]
    return (d.code[fname], tuple(f"{u}.{g}" for u, g in inputs_of(defs, d, fname)))


class Oracle:
    """What a correct store holds: per feature, per sample, its fields (cv, dv) and input columns."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[int, Row]] = {}

    def expected(
        self, defs: list[FeatureDef], d: FeatureDef, roots: dict[str, dict[int, dict[str, str]]]
    ) -> dict[int, Row]:
        if not d.deps:
            return {s: ({f: (d.code[f], dv[f]) for f in d.fields}, {}) for s, dv in roots.get(d.name, {}).items()}
        samples = set.intersection(*(set(self.rows.get(u, {})) for u in d.deps))
        out: dict[int, Row] = {}
        for s in samples:
            fields: dict[str, tuple[Any, str]] = {}
            inputs: dict[str, str | None] = {}
            for fname in d.fields:
                parts: list[str | None] = [fname, d.code[fname]]
                for u, g in inputs_of(defs, d, fname):
                    inputs[f"{u}.{g}"] = self.rows[u][s][0][g][1]
                    parts += [f"{u}.{g}", inputs[f"{u}.{g}"]]
                fields[fname] = (stored_code(defs, d, fname), sample_hash("md5", parts))
            out[s] = (fields, inputs)
        return out

    def diff(
        self, defs: list[FeatureDef], d: FeatureDef, expected: dict[int, Row]
    ) -> tuple[set[int], dict[int, dict[str, str | None]], set[int]]:
        """Input columns are the feature's, shared by its fields: one no field read before is null."""
        stored = self.rows.get(d.name, {})
        added = set(expected) - set(stored)
        removed = set(stored) - set(expected)
        changed: dict[int, dict[str, str | None]] = {}
        for s in set(expected) & set(stored):
            (new_fields, new_inputs), (old_fields, old_inputs) = expected[s], stored[s]
            per_field = {}
            for fname in d.fields:
                cv, dv = new_fields[fname]
                old_cv, old_dv = old_fields.get(fname, (None, None))
                causes = []
                if old_cv != cv:
                    causes.append("code")
                if not d.deps:
                    if old_dv != dv:
                        causes.append("data")
                else:
                    names = [f"{u}.{g}" for u, g in inputs_of(defs, d, fname)]
                    causes += [n for n in names if old_inputs.get(n) != new_inputs[n]]
                per_field[fname] = ",".join(causes) or None
            if any(per_field.values()):
                changed[s] = per_field
        return added, changed, removed


def frame_to(
    inc: st.Increment, fields: list[str]
) -> tuple[set[int], dict[int, dict[str, str | None]], set[int], dict[int, dict[str, str]]]:
    added = inc.added.to_native()
    changed = inc.changed.to_native()
    dvs = {}
    for frame in (added, changed):
        for row in frame.to_dicts():
            dvs[row["sample_uid"]] = {f: row[f"strata_dv__{f}"] for f in fields}
    causes = {row["sample_uid"]: {f: row[f"strata_cause__{f}"] for f in fields} for row in changed.to_dicts()}
    return set(added["sample_uid"].to_list()), causes, set(inc.removed.to_native()["sample_uid"].to_list()), dvs


changes = hs.fixed_dictionaries(
    {
        "n": hs.integers(1, 6),
        "edits": hs.lists(hs.tuples(hs.integers(0, 5), hs.integers(0, 2)), max_size=6),
        "drop": hs.lists(hs.integers(0, 5), max_size=2),
        "grow": hs.integers(0, 2),
        "bumps": hs.lists(hs.tuples(hs.integers(0, 3), hs.integers(0, 2)), max_size=2),
        "rewires": hs.lists(
            hs.tuples(hs.integers(0, 3), hs.integers(0, 2), hs.lists(hs.integers(0, 8), min_size=1, max_size=3)),
            max_size=2,
        ),
    }
)


def root_values(
    defs: list[FeatureDef], n: int, edits: list[tuple[int, int]], rev: int
) -> dict[str, dict[int, dict[str, str]]]:
    out: dict[str, dict[int, dict[str, str]]] = {}
    for d in defs:
        if d.deps:
            continue
        names = list(d.fields)
        out[d.name] = {s: {f: f"{d.name}{s}{f}" for f in names} for s in range(n)}
        for s, j in edits:
            if s < n and j < len(names):
                out[d.name][s][names[j]] = f"edited{rev}-{s}"
    return out


def resolve_and_write(
    store: st.MetadataStore, d: FeatureDef, roots: dict[str, dict[int, dict[str, str]]], *, lazy: bool = False
) -> st.Increment:
    """Resolve one feature, then write its increment as a user would (``lazy``: its parts, in place)."""
    if d.deps:
        inc = store.resolve_update(d.name, lazy=lazy)
    else:
        data = roots[d.name]
        frame = pl.DataFrame(
            {"sample_uid": list(data), **{f"strata_dv__{f}": [data[s][f] for s in data] for f in d.fields}},
            schema_overrides={"sample_uid": pl.Int64},
        )
        inc = store.resolve_update(d.name, samples=frame, lazy=lazy)
    if lazy:
        seen = inc.collect()  # what the parts hold now; the writes below evaluate them again
        store.write(d.name, inc.added)
        store.write(d.name, inc.changed)
        if len(seen.removed):
            store.delete(d.name, inc.removed)
        return seen
    changed = inc.changed.to_native()
    write = pl.concat(
        [inc.added.to_native(), changed.drop([c for c in changed.columns if c.startswith("strata_cause__")])],
        how="vertical_relaxed",
    )
    store.write(d.name, write)
    if len(inc.removed):
        store.delete(d.name, inc.removed)
    return inc


def second_round(
    defs: list[FeatureDef], change: dict[str, Any]
) -> tuple[dict[str, dict[int, dict[str, str]]], list[FeatureDef]]:
    """Edited, dropped and new root samples, code bumps, and fields that read other inputs (rewires)."""
    edited = root_values(defs, change["n"] + change["grow"], change["edits"], 1)
    for values in edited.values():
        for s in change["drop"]:
            values.pop(s, None)
    bumped = [FeatureDef(d.name, d.deps, dict(d.fields), dict(d.code)) for d in defs]
    for i, j in change["bumps"]:
        if i < len(bumped):
            names = list(bumped[i].fields)
            bumped[i].code[names[j % len(names)]] = "2"
    for i, j, picks in change["rewires"]:
        if i < len(bumped) and bumped[i].deps:
            d = bumped[i]
            available = [(u, g) for u in d.deps for g in next(x for x in bumped if x.name == u).fields]
            d.fields[list(d.fields)[j % len(d.fields)]] = list(
                dict.fromkeys(available[k % len(available)] for k in picks)
            )
    return edited, bumped


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(defs=graphs(), change=changes)
def test_every_store_matches_the_oracle_and_each_other(
    postgres_server: PostgresServer, defs: list[FeatureDef], change: dict[str, Any]
) -> None:
    folder = tempfile.TemporaryDirectory()  # a function-scoped fixture would be shared by every example
    sqlite = st.SQLiteStore(Path(folder.name) / "meta.sqlite")
    schema = f"t_{secrets.token_hex(6)}"  # a schema of each example's own
    stores: list[st.MetadataStore] = [
        st.InMemoryStore(),
        st.DuckDBStore(":memory:"),
        st.DuckDBStore(":memory:"),
        sqlite,
        st.PostgresStore(postgres_server.dsn(), schema=schema),
        st.ClickHouseStore(Path(folder.name) / "clickhouse"),
    ]
    lazy = stores[2]
    oracle = Oracle()
    rounds = [(root_values(defs, change["n"], [], 0), defs), second_round(defs, change)]
    for store in stores:
        store.__enter__()
    try:
        for roots, round_defs in rounds:
            graph = build(round_defs)
            for store in stores:
                store.graph = graph  # the same store seen by new code
            for d in round_defs:
                expected = oracle.expected(round_defs, d, roots)
                want_added, want_changed, want_removed = oracle.diff(round_defs, d, expected)
                seen_dvs = []
                for store in stores:
                    inc = resolve_and_write(store, d, roots, lazy=store is lazy)
                    added, causes, removed, dvs = frame_to(inc, list(d.fields))
                    assert (added, causes, removed) == (want_added, want_changed, want_removed), (store.kind, d.name)
                    assert dvs == {s: {f: expected[s][0][f][1] for f in d.fields} for s in dvs}, (store.kind, d.name)
                    seen_dvs.append(dvs)
                assert all(dvs == seen_dvs[0] for dvs in seen_dvs)  # byte-identical data versions in every store
                rows = oracle.rows.setdefault(d.name, {})
                for s in want_removed:
                    rows.pop(s)
                for s in want_added | set(want_changed):
                    rows[s] = expected[s]
            for d in (d for d in round_defs if d.deps):
                modes = []
                for store in stores:
                    inc = store.resolve_update(d.name)
                    assert inc.is_empty, (store.kind, d.name)
                    modes.append(inc.meta.get("mode"))
                assert modes[1] == modes[2], d.name  # in place, the writes settle what the resolve asked as eagerly
    finally:
        for store in stores:
            store.__exit__(None, None, None)
        folder.cleanup()
        postgres_server.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
