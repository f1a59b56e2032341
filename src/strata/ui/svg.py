"""The feature graph as inline SVG: one column per topological depth, one box per feature.

Each box lists the feature's fields with their staleness (samples to compute, from ``strata
status``); a box links to the feature's page. The layout needs no ``dot``: roots on the left,
every feature one column right of its deepest upstream, boxes stacked in graph order. Every
text goes through :func:`html.escape`; colours come from CSS classes (``ok``, ``stale``,
``failed``, ``root``, ``unknown``) in ``static/ui.css``.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

WIDTH = 240
"""Width of a feature's box."""
GAP_X = 90
GAP_Y = 28
HEADER = 40
LINE = 20
MARGIN = 12
MAX_CHARS = 30
"""Characters of a key or field name drawn before an ellipsis (the full text is in the box's tooltip)."""


def feature_href(key: str) -> str:
    """The page of one feature."""
    return "/feature?key=" + quote(key, safe="")


def _short(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def feature_class(feature: dict[str, Any]) -> str:
    """``failed``, ``stale``, ``ok``, ``root`` or ``unknown`` (status not read)."""
    status = feature.get("status")
    if feature.get("failed"):
        return "failed"
    if status is None:
        return "unknown"
    if status["root"] and status["in_sync"] is not False:
        return "root"
    return "ok" if status["in_sync"] else "stale"


def field_cells(feature: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(field, what to show, class)`` per field: ``5 stale`` / ``in sync`` / ``root`` / ``?``.

    A root's field is ``N stale`` when N samples hold another code_version than the code's.
    """
    status = feature.get("status")
    cells = []
    for name in feature["fields"]:
        if status is None:
            cells.append((name, "?", "unknown"))
        else:
            stale = int(status.get("stale", {}).get(name, 0))
            fine = (name, "root", "root") if status["root"] else (name, "in sync", "ok")
            cells.append((name, f"{stale} stale", "stale") if stale else fine)
    return cells


def subtitle(feature: dict[str, Any]) -> str:
    """``200 samples · 5 to recompute · 1 to remove · 3 failed`` under the key (the words of ``strata status``)."""
    status = feature.get("status")
    parts = []
    if status is not None:
        parts.append(f"{status['samples']} samples")
        if not status["root"]:
            counts = (("added", "to add"), ("changed", "to recompute"), ("removed", "to remove"))
            parts += [f"{status[key]} {words}" for key, words in counts if status[key]] or ["in sync"]
    if feature.get("failed"):
        parts.append(f"{feature['failed']} failed")
    return " · ".join(parts) or "status not read"


def render(features: list[dict[str, Any]], edges: list[tuple[str, str, list[str]]]) -> str:
    """The ``<svg>`` element of the graph (``features`` from :func:`strata.ui.data.graph_page`)."""
    boxes: dict[str, tuple[int, int, int]] = {}
    heights: dict[int, int] = {}
    for feature in features:
        depth = int(feature["depth"])
        x = MARGIN + depth * (WIDTH + GAP_X)
        y = heights.get(depth, MARGIN)
        height = HEADER + LINE * len(feature["fields"]) + 8
        boxes[feature["key"]] = (x, y, height)
        heights[depth] = y + height + GAP_Y
    width = MARGIN + (max((f["depth"] for f in features), default=0) + 1) * (WIDTH + GAP_X) - GAP_X + MARGIN
    height = max(heights.values(), default=MARGIN + 40) + GAP_Y  # room for edges that dip below
    parts = [
        (
            f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="feature graph">'
        )
    ]
    parts += [_edge(boxes[up], boxes[down], used) for up, down, used in edges if up in boxes and down in boxes]
    parts += [_box(feature, *boxes[feature["key"]]) for feature in features]
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(up: tuple[int, int, int], down: tuple[int, int, int], used: list[str]) -> str:
    """A curve from the upstream's box to the downstream's; one that skips columns dips below the boxes between."""
    x1, y1 = up[0] + WIDTH, up[1] + HEADER // 2
    x2, y2 = down[0], down[1] + HEADER // 2
    if x2 - x1 > GAP_X:
        low = max(up[1] + up[2], down[1] + down[2]) + GAP_Y // 2
        curve = f"M{x1},{up[1] + up[2] - 10} C{x1 + GAP_X},{low} {x2 - GAP_X},{low} {x2 - 6},{y2}"
    else:
        middle = (x1 + x2) // 2
        curve = f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2 - 6},{y2}"
    label = escape(", ".join(used))
    return (
        f'<path class="edge" d="{curve}"><title>{label}</title></path>'
        f'<path class="arrow" d="M{x2 - 8},{y2 - 5} L{x2},{y2} L{x2 - 8},{y2 + 5} Z"/>'
    )


def _box(feature: dict[str, Any], x: int, y: int, height: int) -> str:
    key = feature["key"]
    state = feature_class(feature)
    lines = [
        f'<a href="{escape(feature_href(key))}" class="node {state}" data-feature="{escape(key)}">',
        f"<title>{escape(key)}: {escape(subtitle(feature))}</title>",
        f'<rect x="{x}" y="{y}" width="{WIDTH}" height="{height}" rx="6"/>',
        f'<text class="key" x="{x + 10}" y="{y + 17}">{escape(_short(key))}</text>',
        f'<text class="sub" x="{x + 10}" y="{y + 33}">{escape(subtitle(feature))}</text>',
    ]
    for index, (name, shown, cell) in enumerate(field_cells(feature)):
        top = y + HEADER + index * LINE
        lines.append(
            f'<g class="field {cell}" data-field="{escape(name)}">'
            f'<text class="name" x="{x + 14}" y="{top + 14}">{escape(_short(name, 20))}</text>'
            f'<text class="count" x="{x + WIDTH - 10}" y="{top + 14}" text-anchor="end">{escape(shown)}</text></g>'
        )
    lines.append("</a>")
    return "".join(lines)
