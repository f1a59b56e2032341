"""The feature graph as inline SVG: one column per topological depth, one box per feature.

Each box lists the feature's fields with their counts (stale and failed samples, counted as
``strata graph render`` counts them); each edge names the upstream fields the downstream reads,
as render's do; a box links to the feature's page. The layout needs no ``dot``: roots on the left,
every feature one column right of its deepest upstream, boxes stacked in graph order. Every
text goes through :func:`html.escape`; colours come from CSS classes (``ok``, ``stale``,
``failed``, ``unknown``) in ``static/ui.css``.
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
EDGE_CHARS = 13
"""Characters of an edge's label drawn before an ellipsis: what fits between two columns (all in its tooltip)."""


def feature_href(key: str) -> str:
    """The page of one feature."""
    return "/feature?key=" + quote(key, safe="")


def _short(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


STATE_CLASSES = {"in sync": "ok", "stale": "stale", "failed": "failed"}
"""The CSS class of each state of :mod:`strata.views.graph` (``graph render``'s colours: green, amber, red)."""


def feature_class(feature: dict[str, Any]) -> str:
    """``failed``, ``stale``, ``ok`` or ``unknown`` (status not read): its worst field's, as render's (a root's too)."""
    status = feature.get("status")
    if status is None:
        return "unknown"
    return STATE_CLASSES[status["state"].state]


def field_cell(status: dict[str, Any] | None, name: str) -> tuple[str, str, str]:
    """``(what to show, class, every count)`` of one field: ``5 stale``, ``1 stale, 1 failed``, ``in sync``.

    The counts are ``graph render``'s (:func:`strata.views.graph.field_status`): a sample whose
    last build failed is failed, not stale; every count is render's text, ``55 in sync, 5 stale``.
    A root's field is ``N stale`` when N samples hold another code_version than the code's, else
    ``in sync`` (green), as render's pictures say.
    """
    counts = None if status is None else status["state"].fields.get(name)
    if status is None or counts is None:
        return "?", "unknown", "status not read"
    if counts.state == "in sync":
        shown, css = "in sync", "ok"
    else:
        shown, css = status["state"].pending_text(name), STATE_CLASSES[counts.state]
    return shown, css, status["state"].counts_text(name)


def field_causes(status: dict[str, Any] | None, name: str) -> str:
    """Why a field's samples are stale or failed, as ``graph render`` says: ``articles.body (5), new (2)``."""
    counts = None if status is None else status["state"].fields.get(name)
    return "" if counts is None else ", ".join(f"{cause} ({n})" for cause, n in sorted(counts.causes.items()))


def field_cells(feature: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(field, what to show, class, every count)`` per field of ``feature`` (:func:`field_cell`)."""
    return [(name, *field_cell(feature.get("status"), name)) for name in feature["fields"]]


def subtitle(feature: dict[str, Any]) -> str:
    """``200 samples · 5 to recompute · 1 to remove · 3 failed`` under the key (the words of ``strata status``)."""
    status = feature.get("status")
    parts = []
    if status is not None:
        parts += status_counts(status)
        if not status["root"]:
            parts = parts[:1] + (parts[1:] or ["in sync"])
    if feature.get("failed"):
        parts.append(
            status["state"].count_text(feature["failed"], "failed") if status else f"{feature['failed']} failed"
        )
    return " · ".join(parts) or "status not read"


def status_counts(status: dict[str, Any]) -> list[str]:
    """``200 samples``, ``5 to recompute`` …: a feature's samples, then what its build will do (none zero).

    In the feature's unit (:class:`strata.views.graph.FeatureState`): an expansion's are
    ``13 samples from 10 parents``, ``3 parents to recompute``.
    """
    state = status["state"]
    parts = [state.samples_text()]
    if not status["root"]:
        counts = (("added", "to add"), ("changed", "to recompute"), ("removed", "to remove"))
        parts += [state.count_text(status[key], words) for key, words in counts if status[key]]
    return parts


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
    parts += [
        _edge(up, down, boxes[up], boxes[down], used) for up, down, used in edges if up in boxes and down in boxes
    ]
    parts += [_box(feature, *boxes[feature["key"]]) for feature in features]
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(up_key: str, down_key: str, up: tuple[int, int, int], down: tuple[int, int, int], used: list[str]) -> str:
    """A curve from the upstream's box to the downstream's, labelled with the upstream fields read.

    One that skips columns dips below the boxes between. The label (``graph render``'s,
    :func:`strata.views.graph.edge_label`) sits at the curve's middle, in the gap between the two boxes.
    """
    from strata.views.graph import edge_label

    x1, y1 = up[0] + WIDTH, up[1] + HEADER // 2
    x2, y2 = down[0], down[1] + HEADER // 2
    if x2 - x1 > GAP_X:
        low = max(up[1] + up[2], down[1] + down[2]) + GAP_Y // 2
        points = [(x1, up[1] + up[2] - 10), (x1 + GAP_X, low), (x2 - GAP_X, low), (x2 - 6, y2)]
    else:
        middle = (x1 + x2) // 2
        points = [(x1, y1), (middle, y1), (middle, y2), (x2 - 6, y2)]
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = points
    curve = f"M{ax},{ay} C{bx},{by} {cx},{cy} {dx},{dy}"
    label_x, label_y = (ax + 3 * bx + 3 * cx + dx) // 8, (ay + 3 * by + 3 * cy + dy) // 8  # the curve at t = 1/2
    label = edge_label(used)
    return (
        f'<g class="link" data-up="{escape(up_key)}" data-down="{escape(down_key)}">'
        f"<title>{escape(down_key)} reads {escape(up_key)}: {escape(label)}</title>"
        f'<path class="edge" d="{curve}"/>'
        f'<path class="arrow" d="M{x2 - 8},{y2 - 5} L{x2},{y2} L{x2 - 8},{y2 + 5} Z"/>'
        f'<text class="edge-label" x="{label_x}" y="{label_y - 4}" text-anchor="middle">'
        f"{escape(_short(label, EDGE_CHARS))}</text></g>"
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
    for index, (name, shown, cell, counts) in enumerate(field_cells(feature)):
        top = y + HEADER + index * LINE
        lines.append(
            f'<g class="field {cell}" data-field="{escape(name)}"><title>{escape(name)}: {escape(counts)}</title>'
            f'<text class="name" x="{x + 14}" y="{top + 14}">{escape(_short(name, 20))}</text>'
            f'<text class="count" x="{x + WIDTH - 10}" y="{top + 14}" text-anchor="end">{escape(shown)}</text></g>'
        )
    lines.append("</a>")
    return "".join(lines)
