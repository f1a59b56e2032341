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
from typing import Any, NamedTuple
from urllib.parse import quote

WIDTH = 240
"""Least width of a feature's box; a box is as wide as its widest text needs (:func:`box_width`)."""
PAD = 10
"""Space between a box's border and its text, each side."""
FIELD_GAP = 16
"""Least space between a field's name and its count."""
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


_NARROW = set("fijlrtI1.,:;'!|() ·")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float, bold: bool = False) -> float:
    """A generous estimate of ``text``'s width in pixels at ``size`` px (``system-ui, sans-serif``, as ``ui.css``).

    The page is drawn without the browser's font metrics, so characters count by class, each at
    least as wide as in common sans-serif fonts: narrow ones 0.35 em, wide ones 0.95 em,
    capitals 0.75 em, others 0.62 em; bold 8 % more.
    """
    ems = sum(0.35 if c in _NARROW else 0.95 if c in _WIDE else 0.75 if c.isupper() else 0.62 for c in text)
    return ems * size * (1.08 if bold else 1.0)


def box_width(feature: dict[str, Any]) -> int:
    """The width ``feature``'s box needs for its key, subtitle and field rows (at least :data:`WIDTH`)."""
    needs = [text_width(_short(feature["key"]), 13, bold=True), text_width(subtitle(feature), 11)]
    needs += [
        text_width(_short(name, 20), 13) + FIELD_GAP + text_width(shown, 13, bold=True) + 4
        for name, shown, _, _ in field_cells(feature)
    ]
    return max(WIDTH, int(max(needs)) + 2 * PAD + 1)


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
    """The ``<svg>`` element of the graph (``features`` from :func:`strata.ui.data.graph_page`).

    A column is as wide as its widest box (:func:`box_width`); every box of it takes that width.
    """
    columns: dict[int, int] = {}
    for feature in features:
        depth = int(feature["depth"])
        columns[depth] = max(columns.get(depth, WIDTH), box_width(feature))
    lefts, x = {}, MARGIN
    for depth in range(max(columns, default=0) + 1):
        lefts[depth] = x
        x += columns.get(depth, WIDTH) + GAP_X
    boxes: dict[str, Box] = {}
    heights: dict[int, int] = {}
    for feature in features:
        depth = int(feature["depth"])
        y = heights.get(depth, MARGIN)
        height = HEADER + LINE * len(feature["fields"]) + 8
        boxes[feature["key"]] = Box(lefts[depth], y, columns[depth], height)
        heights[depth] = y + height + GAP_Y
    width = x - GAP_X + MARGIN
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
    parts += [_box(feature, boxes[feature["key"]]) for feature in features]
    parts.append("</svg>")
    return "\n".join(parts)


class Box(NamedTuple):
    """Where a feature's box is drawn."""

    x: int
    y: int
    width: int
    height: int


def _edge(up_key: str, down_key: str, up: Box, down: Box, used: list[str]) -> str:
    """A curve from the upstream's box to the downstream's, labelled with the upstream fields read.

    One that skips columns dips below the boxes between. The label (``graph render``'s,
    :func:`strata.views.graph.edge_label`) sits at the curve's middle, in the gap between the two boxes.
    """
    from strata.views.graph import edge_label

    x1, y1 = up.x + up.width, up.y + HEADER // 2
    x2, y2 = down.x, down.y + HEADER // 2
    if x2 - x1 > GAP_X:
        low = max(up.y + up.height, down.y + down.height) + GAP_Y // 2
        points = [(x1, up.y + up.height - 10), (x1 + GAP_X, low), (x2 - GAP_X, low), (x2 - 6, y2)]
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


def _box(feature: dict[str, Any], box: Box) -> str:
    key = feature["key"]
    x, y, width, height = box
    state = feature_class(feature)
    lines = [
        f'<a href="{escape(feature_href(key))}" class="node {state}" data-feature="{escape(key)}">',
        f"<title>{escape(key)}: {escape(subtitle(feature))}</title>",
        f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6"/>',
        f'<text class="key" x="{x + PAD}" y="{y + 17}">{escape(_short(key))}</text>',
        f'<text class="sub" x="{x + PAD}" y="{y + 33}">{escape(subtitle(feature))}</text>',
    ]
    for index, (name, shown, cell, counts) in enumerate(field_cells(feature)):
        top = y + HEADER + index * LINE
        lines.append(
            f'<g class="field {cell}" data-field="{escape(name)}"><title>{escape(name)}: {escape(counts)}</title>'
            f'<text class="name" x="{x + PAD + 4}" y="{top + 14}">{escape(_short(name, 20))}</text>'
            f'<text class="count" x="{x + width - PAD}" y="{top + 14}" text-anchor="end">{escape(shown)}</text></g>'
        )
    lines.append("</a>")
    return "".join(lines)
