"""Views of a feature graph for people and machines: descriptions, renderings and store status.

- :func:`describe` / :func:`summary`: a feature as JSON-able data (``features show`` / ``list``);
- :func:`render_text`, :func:`render_mermaid`, :func:`render_dot`: the graph with its fields
  and field-level edges (``graph render``); every identifier is quoted and escaped, so any key
  a :class:`~strata.features.keys.FeatureKey` accepts renders as valid Mermaid and Graphviz;
- :func:`status`: per feature, what the store holds and what must be recomputed, with causes.

Everything here reads the graph; only :func:`status` touches a store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from strata.features.graph import FeatureGraph
    from strata.features.keys import FeatureKey
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


# -- renderings --------------------------------------------------------------------------


def render_text(graph: FeatureGraph) -> str:
    """Features in topological order, each with its upstreams and its fields' inputs."""
    lines: list[str] = []
    for key in graph.topological_order():
        spec = graph.spec(key)
        ups = []
        for dep in spec.deps:
            extra = [] if dep.lineage.kind == "identity" else [f"{dep.lineage.kind} on {', '.join(dep.lineage.on)}"]
            extra += ["optional"] if dep.optional else []
            ups.append(f"{dep.feature}" + (f" ({'; '.join(extra)})" if extra else ""))
        lines.append(f"{key}  <- {', '.join(ups)}" if ups else f"{key}  (root)")
        width = max(len(f.key.name) for f in spec.fields)
        for fspec in spec.fields:
            inputs = ", ".join(i.dotted for i in graph.field_inputs(key, fspec.key))
            text = f"  {fspec.key.name:<{width}}  v{fspec.code_version}"
            lines.append(f"{text}  <- {inputs}" if inputs else text)
    return "\n".join(lines)


def mermaid_text(text: str) -> str:
    """Text inside a Mermaid ``"..."`` label: quotes and markup characters as entities."""
    for char, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return text


def render_mermaid(graph: FeatureGraph) -> str:
    """A Mermaid flowchart: one node per feature (key and fields), edges labelled with the fields used."""
    order = graph.topological_order()
    ids = {key: f"f{index}" for index, key in enumerate(order)}
    lines = ["graph TD"]
    for key in order:
        names = ", ".join(f.key.name for f in graph.spec(key).fields)
        lines.append(f'    {ids[key]}["{mermaid_text(str(key))}<br/>{mermaid_text(names)}"]')
    for up, down, used in edges(graph):
        label = f'|"{mermaid_text(", ".join(used))}"|' if used else ""
        lines.append(f"    {ids[up]} -->{label} {ids[down]}")
    return "\n".join(lines)


def _dot_string(*lines: str) -> str:
    r"""A Graphviz quoted string of ``lines``: ``"`` and ``\`` escaped, lines joined by ``\n``."""
    return '"' + "\\n".join(t.replace("\\", "\\\\").replace('"', '\\"') for t in lines) + '"'


def render_dot(graph: FeatureGraph) -> str:
    """A Graphviz digraph: one box per feature (key and fields), edges labelled with the fields used."""
    lines = ["digraph strata {", "    rankdir=TB;", "    node [shape=box];"]
    for key in graph.topological_order():
        names = ", ".join(f.key.name for f in graph.spec(key).fields)
        lines.append(f"    {_dot_string(str(key))} [label={_dot_string(str(key), names)}];")
    for up, down, used in edges(graph):
        attrs = f" [label={_dot_string(', '.join(used))}]" if used else ""
        lines.append(f"    {_dot_string(str(up))} -> {_dot_string(str(down))}{attrs};")
    lines.append("}")
    return "\n".join(lines)


RENDERERS = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}


# -- status ------------------------------------------------------------------------------


def status(store: MetadataStore, keys: Sequence[FeatureKey]) -> list[dict[str, Any]]:
    """Per feature: live samples in ``store`` and, for non-root features, the increment's counts.

    Root features need their candidate samples to resolve, so they show their sample count only.
    ``fields`` maps each stale field to its causes (``code``, or the upstream fields whose data
    changed) and how many samples each cause touches; ``stale`` maps every field to the samples
    it must be computed for (added ones, and changed ones whose cause names it).
    """
    rows = []
    for key in keys:
        plan = store.plan(key)
        samples = len(store.read(key, columns=list(plan.id_columns)))
        if plan.is_root:
            rows.append({"feature": str(key), "root": True, "samples": samples, "in_sync": None})
            continue
        increment = store.resolve_update(key)
        counts = increment.counts()
        rows.append(
            {
                "feature": str(key),
                "root": False,
                "samples": samples,
                **counts,
                "fields": increment.changed_fields(),
                "stale": increment.stale_fields(),
                "in_sync": not any(counts.values()),
            }
        )
    return rows


def out_of_sync(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``transcript (5 changed)`` for every feature of :func:`status` that is not in sync."""
    found = []
    for row in rows:
        if row["in_sync"] is False:
            parts = [f"{row[p]} {p}" for p in ("added", "changed", "removed") if row[p]]
            found.append(f"{row['feature']} ({', '.join(parts)})")
    return found
