"""Graph diffs for people: text readable at a glance and a Mermaid flowchart (``strata graph diff``).

Markers, in the text and in the flowchart's labels: ``+`` added, ``-`` removed, ``~`` changed
(its own definition), ``^`` reached (a new version through the inputs it reads). JSON is
:meth:`strata.features.diff.GraphDiff.to_json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.features.diff import ORDER, union_order
from strata.views.graph import edges, mermaid_text

if TYPE_CHECKING:
    from strata.features.diff import AttributeChange, DepDiff, FeatureDiff, FieldDiff, GraphDiff, Reach
    from strata.features.graph import FeatureGraph

MARKS = {"added": "+", "removed": "-", "changed": "~", "reached": "^"}


def counts_text(diff: GraphDiff) -> str:
    """``1 added, 2 changed, 3 reached``: the features of each kind there are."""
    counts = diff.counts()
    return ", ".join(f"{counts[kind]} {kind}" for kind in ORDER if counts[kind])


def render_text(diff: GraphDiff) -> str:
    """Each differing feature, upstreams first, with its fields, deps, attributes and reach; a blank line between."""
    return "\n\n".join("\n".join(_feature_lines(feature)) for feature in diff.features)


def _versions(old: str | None, new: str | None) -> str:
    if old is None:
        return f"version {new}"
    if new is None or old == new:
        return f"version {old}"
    return f"version {old} -> {new}"


def _feature_lines(feature: FeatureDiff) -> list[str]:
    lines = [
        f"{MARKS[feature.kind]} {feature.key} ({feature.kind})  {_versions(feature.old_version, feature.new_version)}"
    ]
    for item in feature.fields:
        lines += _field_lines(item)
    lines += [f"    deps: {_dep_text(dep)}" for dep in feature.deps]
    lines += [f"    {_attribute_text(attribute)}" for attribute in feature.attributes]
    if sum(1 for item in feature.fields if item.reach) > 1:
        lines.append(f"    reaches: {_reach_text(feature.reach)}")
    return lines


def _field_lines(item: FieldDiff) -> list[str]:
    if item.kind == "added":
        head = f"code_version {item.new_code_version}, {_versions(None, item.new_version)}"
    elif item.kind == "removed":
        head = f"code_version {item.old_code_version}, {_versions(item.old_version, None)}"
    elif item.old_code_version != item.new_code_version:
        head = f"code_version {item.old_code_version} -> {item.new_code_version}, "
        head += _versions(item.old_version, item.new_version)
    else:
        head = _versions(item.old_version, item.new_version)
    lines = [f"    {MARKS[item.kind]} {item.field}  {head}"]
    lines += [f"        + input {name}" for name in item.inputs_added]
    lines += [f"        - input {name}" for name in item.inputs_removed]
    if item.reached_by:
        lines.append(f"        through {', '.join(item.reached_by)}")
    if item.reach:
        lines.append(f"        reaches {_reach_text(item.reach)}")
    return lines


def _dep_text(dep: DepDiff) -> str:
    if dep.kind == "added":
        return f"+ {dep.upstream} ({dep.new})"
    if dep.kind == "removed":
        return f"- {dep.upstream} ({dep.old})"
    return f"~ {dep.upstream} ({dep.old} -> {dep.new})"


def _attribute_text(attribute: AttributeChange) -> str:
    def shown(value: object) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value)) or "none"
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none"
        return str(value)

    return f"{attribute.name}: {shown(attribute.old)} -> {shown(attribute.new)}"


def _reach_text(reach: Reach) -> str:
    """``transcript (text), embedding (vector)``: the features reached, each with its fields."""
    fields: dict[str, list[str]] = {key: [] for key in reach.features}
    for dotted in reach.fields:
        key, _, name = dotted.rpartition(".")
        fields.setdefault(key, []).append(name)
    return ", ".join(f"{key} ({', '.join(names)})" for key, names in fields.items())


STYLES = {
    "added": "fill:#dcfce7,stroke:#15803d",
    "removed": "fill:#fee2e2,stroke:#b91c1c,stroke-dasharray:4 3",
    "changed": "fill:#ffedd5,stroke:#c2410c",
    "reached": "fill:#fef9c3,stroke:#a16207",
}


def render_mermaid(diff: GraphDiff, old: FeatureGraph, new: FeatureGraph) -> str:
    """Both graphs in one flowchart: every feature, its fields marked, nodes classed by kind.

    Edges of the new graph are solid, edges only the old graph had are dotted.
    """
    entries = {f.key: f for f in diff.features}
    order = union_order(old, new)
    ids = {key: f"f{index}" for index, key in enumerate(order)}
    lines = ["graph TD"]
    for key in order:
        graph = new if key in new else old
        entry = entries.get(key)
        lines.append(f'    {ids[key]}["{_node_label(key, graph, entry)}"]')
    new_edges = {(str(u), str(d)): used for u, d, used in edges(new)}
    for (up, down), used in new_edges.items():
        label = f'|"{mermaid_text(", ".join(used))}"|' if used else ""
        lines.append(f"    {ids[up]} -->{label} {ids[down]}")
    for up_key, down_key, used in edges(old):
        up, down = str(up_key), str(down_key)
        if (up, down) not in new_edges:
            label = f'|"{mermaid_text(", ".join(used))}"|' if used else ""
            lines.append(f"    {ids[up]} -.->{label} {ids[down]}")
    for kind in ORDER:
        members = [ids[f.key] for f in diff.of_kind(kind)]
        if members:
            lines.append(f"    classDef {kind} {STYLES[kind]}")
            lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines)


def _node_label(key: str, graph: FeatureGraph, entry: FeatureDiff | None) -> str:
    """``video (changed)<br/>~audio, frames, -thumbnail``: fields in order, the removed ones last."""
    marks = {f.field: MARKS[f.kind] for f in entry.fields} if entry is not None else {}
    names = [f.key.name for f in graph.spec(key).fields]
    if entry is not None:
        names += [f.field for f in entry.fields if f.kind == "removed" and f.field not in names]
    fields = ", ".join(marks.get(name, "") + name for name in names)
    title = key if entry is None else f"{key} ({entry.kind})"
    return f"{mermaid_text(title)}<br/>{mermaid_text(fields)}"
