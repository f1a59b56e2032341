"""Property test: random graphs of identity, expansion and aggregation edges, built with the builder.

Every store is checked against a plain-Python model that knows nothing of strata's increments:
after each round of source changes (values, arrivals, departures, children counts that grow,
shrink and drop to zero, a second root never written or sharing no ids, a code bump in a graph
built anew), the live rows of every feature equal what the model computes from the roots, the
builder computed exactly the samples whose provenance changed, and a second build does nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import strata as st
from strata.build.runner import Builder

TOP = ("sample_uid",)
CHILD = ("sample_uid", "k")


def digest(*parts: Any) -> str:
    return hashlib.md5(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]  # noqa: S324 - test values


@dataclass
class Node:
    """One feature of a random graph."""

    name: str
    kind: str  # root | identity | expansion | aggregation
    deps: list[str]
    fields: list[str]
    ids: tuple[str, ...] = TOP
    code: str = "1"


@hs.composite
def graphs(draw: hs.DrawFn) -> list[Node]:
    nodes = [Node("r0", "root", [], ["a", "b"]), Node("r1", "root", [], ["c"])]
    levels = {"r0": 0, "r1": 0}
    for index in range(draw(hs.integers(2, 5))):
        name = f"f{index}"
        kinds = ["identity", "expansion"] + (["aggregation"] if 1 in levels.values() else [])
        kind = draw(hs.sampled_from(kinds))
        if kind == "identity":
            level = draw(hs.sampled_from(sorted(set(levels.values()))))
            pool = [n for n, lv in levels.items() if lv == level]
            deps = draw(hs.lists(hs.sampled_from(pool), min_size=1, max_size=2, unique=True))
        elif kind == "expansion":
            deps, level = [draw(hs.sampled_from([n for n, lv in levels.items() if lv == 0]))], 1
        else:
            deps, level = [draw(hs.sampled_from([n for n, lv in levels.items() if lv == 1]))], 0
        fields = [f"{name}x{j}" for j in range(draw(hs.integers(1, 2)))]
        nodes.append(Node(name, kind, deps, fields, CHILD if level else TOP))
        levels[name] = level
    return nodes


def children_count(values: list[Any]) -> int:
    return int(digest("count", values), 16) % 4  # 0 to 3 children


class Model:
    """Each feature's rows, from the roots, by plain Python: {sample ids: ({field: value}, provenance)}."""

    def __init__(self, nodes: list[Node], roots: dict[str, dict[int, dict[str, str]]]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.rows: dict[str, dict[tuple[Any, ...], tuple[dict[str, str], Any]]] = {}
        self.units: dict[str, dict[tuple[Any, ...], Any]] = {}
        for node in nodes:
            self.rows[node.name] = self._rows(node, roots)
            self.units[node.name] = self._units(node)

    def _rows(self, node: Node, roots: dict[str, dict[int, dict[str, str]]]) -> dict[tuple[Any, ...], Any]:
        if node.kind == "root":
            return {(s,): (dict(v), (node.code, tuple(sorted(v.items())))) for s, v in roots.get(node.name, {}).items()}
        upstream = self.rows[node.deps[0]]
        out: dict[tuple[Any, ...], Any] = {}
        if node.kind == "identity":
            shared = set(upstream).intersection(*(self.rows[d] for d in node.deps[1:]))
            for ids in shared:
                inputs = [[d, sorted(self.rows[d][ids][0].items())] for d in node.deps]
                fields = {f: digest(f, inputs) for f in node.fields}
                out[ids] = (fields, (node.code, tuple(self.rows[d][ids][1] for d in node.deps)))
        elif node.kind == "expansion":
            for (parent_id,), (parent_values, prov) in upstream.items():
                parent = sorted(parent_values.items())
                for k in range(children_count(parent)):
                    out[(parent_id, k)] = ({f: digest(f, k, parent) for f in node.fields}, (node.code, prov))
        else:
            groups: dict[int, list[Any]] = {}
            for (parent_id, k), (child_values, prov) in upstream.items():
                groups.setdefault(parent_id, []).append((k, child_values, prov))
            for parent_id, members in groups.items():
                members.sort(key=lambda m: m[0])
                inputs = [[k, sorted(v.items())] for k, v, _ in members]
                fields = {f: digest(f, inputs) for f in node.fields}
                out[(parent_id,)] = (fields, (node.code, tuple((k, p) for k, _, p in members)))
        return out

    def _units(self, node: Node) -> dict[tuple[Any, ...], Any]:
        """Provenance per unit of work: the parent for an expansion, else the sample."""
        if node.kind != "expansion":
            return {s: prov for s, (_, prov) in self.rows[node.name].items()}
        return {(s,): (node.code, prov) for (s,), (_, prov) in self.rows[node.deps[0]].items()}


def define(nodes: list[Node], calls: list[tuple[str, list[Any]]]) -> st.FeatureGraph:
    """A graph of the nodes; ``compute`` appends (feature, unit ids) to ``calls``."""
    graph = st.FeatureGraph()
    with graph.use():
        for node in nodes:
            lineage = {
                "identity": st.Lineage.identity(),
                "expansion": st.Lineage.expansion(TOP),
                "aggregation": st.Lineage.aggregation(TOP),
            }.get(node.kind)
            deps = [st.FeatureDep(d, lineage) for d in node.deps]
            spec = st.FeatureSpec(
                node.name, id_columns=node.ids, deps=deps, fields=[st.FieldSpec(f, node.code) for f in node.fields]
            )
            body: dict[str, Any] = {"__module__": __name__}
            if node.kind != "root":
                body["compute"] = _compute(node, calls)
            type(node.name.upper(), (st.Feature,), body, spec=spec)
    return graph


def _compute(node: Node, calls: list[tuple[str, list[Any]]]) -> Any:
    def compute(self: Any, inputs: Any) -> pl.DataFrame:
        calls.append((node.name, inputs.samples.select(node.ids if node.kind == "identity" else TOP).rows()))
        frames = {d: inputs[d] for d in node.deps}
        rows: list[dict[str, Any]] = []
        if node.kind == "identity":
            ids = list(node.ids)
            for sample in inputs.samples.select(ids).rows(named=True):
                seen: list[Any] = []
                for d in node.deps:
                    match = frames[d].filter(pl.all_horizontal(pl.col(c) == v for c, v in sample.items()))
                    own = {c: match[c][0] for c in match.columns if c not in ids}
                    seen.append([d, sorted(own.items())])
                rows.append({**sample, **{f: digest(f, seen) for f in node.fields}})
        elif node.kind == "expansion":
            for parent in frames[node.deps[0]].rows(named=True):
                pairs = [[c, v] for c, v in sorted(parent.items()) if c != "sample_uid"]
                for k in range(children_count(pairs)):
                    fields = {f: digest(f, k, pairs) for f in node.fields}
                    rows.append({"sample_uid": parent["sample_uid"], "k": k, **fields})
        else:
            children = frames[node.deps[0]].sort("sample_uid", "k")
            for (sample,), group in children.group_by("sample_uid", maintain_order=True):
                members = [
                    [r["k"], sorted((c, v) for c, v in r.items() if c not in CHILD)] for r in group.rows(named=True)
                ]
                rows.append({"sample_uid": sample, **{f: digest(f, members) for f in node.fields}})
        schema = {c: (pl.Int64 if c in CHILD else pl.String) for c in [*node.ids, *node.fields]}
        return pl.DataFrame(rows, schema=schema)

    return compute


@hs.composite
def rounds(draw: hs.DrawFn) -> list[dict[str, Any]]:
    """Three rounds of root contents: which samples exist and their values."""
    out = []
    for _ in range(3):
        r0 = {
            s: {"a": draw(hs.sampled_from("pqrs")), "b": draw(hs.sampled_from("xy"))}
            for s in draw(hs.sets(hs.integers(0, 7), max_size=6))
        }
        mode = draw(hs.sampled_from(["never", "disjoint", "overlap"]))
        r1 = (
            {}
            if mode == "never"
            else {
                s + (100 if mode == "disjoint" else 0): {"c": draw(hs.sampled_from("mn"))}
                for s in draw(hs.sets(hs.integers(0, 7), max_size=6))
            }
        )
        out.append({"r0": r0, "r1": r1, "bump": draw(hs.booleans())})
    return out


def write_roots(store: st.MetadataStore, roots: dict[str, dict[int, dict[str, str]]]) -> None:
    for name, fields in (("r0", ["a", "b"]), ("r1", ["c"])):
        samples = roots[name]
        if not samples and not store.has_feature(name):
            continue  # a root never written
        ids = sorted(samples)
        frame = pl.DataFrame(
            {
                "sample_uid": pl.Series(ids, dtype=pl.Int64),
                **{f: pl.Series([samples[s][f] for s in ids], dtype=pl.String) for f in fields},
                **{f"strata_dv__{f}": pl.Series([digest(samples[s][f]) for s in ids], dtype=pl.String) for f in fields},
            }
        )
        store.write_changed(name, frame, snapshot=True)


def live(store: st.MetadataStore, node: Node) -> dict[tuple[Any, ...], dict[str, str]]:
    if not store.has_feature(node.name):
        return {}
    rows = store.read(node.name).to_native()
    return {tuple(r[c] for c in node.ids): {f: r[f] for f in node.fields} for r in rows.rows(named=True)}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=graphs(), plan=rounds())
def test_builds_match_the_model_on_every_store(nodes: list[Node], plan: list[dict[str, Any]]) -> None:
    stores: list[st.MetadataStore] = [st.InMemoryStore(), st.DuckDBStore(":memory:")]
    for store in stores:
        store.__enter__()
    try:
        before: Model | None = None
        for index, round_ in enumerate(plan):
            if round_["bump"] and index:
                derived = [n for n in nodes if n.kind != "root"]
                derived[index % len(derived)].code = str(index + 1)
            roots = {"r0": round_["r0"], "r1": round_["r1"]}
            model = Model(nodes, roots)
            for store in stores:
                calls: list[tuple[str, list[Any]]] = []
                store.graph = define(nodes, calls)  # a graph built anew every round
                write_roots(store, roots)
                keys = store.graph.topological_order()
                builder = Builder(None, store, "test", None, workers=1)
                builder.run(keys, dry_run=False)
                for node in nodes:
                    if node.kind == "root":
                        continue
                    want = {s: values for s, (values, _) in model.rows[node.name].items()}
                    assert live(store, node) == want, (store.kind, node.name, index)
                    new, old = model.units[node.name], before.units[node.name] if before else {}
                    stale = {u for u, prov in new.items() if old.get(u) != prov}
                    done = {tuple(u) for n, us in calls if n == node.name for u in us}
                    assert done == stale, (store.kind, node.name, index)
                calls.clear()
                Builder(None, store, "test", None, workers=1).run(keys, dry_run=False)
                assert calls == [], (store.kind, index)
                for key in keys:
                    if not store.plan(key).is_root:
                        assert store.resolve_update(key).is_empty, (store.kind, key, index)
            before = model
    finally:
        for store in stores:
            store.__exit__(None, None, None)
