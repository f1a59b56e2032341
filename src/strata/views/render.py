"""Pictures of a feature graph: SVG and PNG drawn by Graphviz's ``dot`` program.

:func:`render_svg` and :func:`render_png` draw :func:`~strata.views.graph.render_dot`'s digraph
(with each field's staleness when given a status from
:func:`~strata.views.graph.store_status`). They need no store, only ``dot`` on ``PATH``
(Debian's and Homebrew's ``graphviz`` package)::

    from strata.features.project import load_graph
    from strata.project.project import Project
    from strata.views.graph import store_status
    from strata.views.render import render_svg

    project = Project.find()
    graph = load_graph(project)
    svg = render_svg(graph, store_status(project, graph))   # or render_svg(graph): no counts

Feature keys and field names reach the picture only through the DOT text, where they are
quoted and escaped; ``dot`` escapes them again for SVG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from strata.features.graph import FeatureGraph
    from strata.views.graph import FeatureState

PICTURES = ("svg", "png")
"""Formats drawn by ``dot``."""

DOT_TIMEOUT = 120.0
"""Seconds ``dot`` may take to lay out a graph."""

_ERROR_TEXT = 300


def find_dot() -> str:
    """The path of Graphviz's ``dot``; a :class:`~strata.errors.UsageError` saying how to install it when missing."""
    import shutil

    found = shutil.which("dot")
    if found is None:
        raise UsageError(
            "Graphviz's `dot` program is not installed (it draws svg and png)",
            "install graphviz (apt-get install graphviz, brew install graphviz) or use --format dot|mermaid",
        )
    return found


def run_dot(source: str, fmt: str) -> bytes:
    """``source`` (DOT text) laid out by ``dot -T fmt``; its stderr as one line of a RuntimeFailure when it fails."""
    import subprocess

    if fmt not in PICTURES:
        raise UsageError(f"`{fmt}` is not a picture format", f"use one of: {', '.join(PICTURES)}")
    try:
        done = subprocess.run(
            [find_dot(), f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=DOT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(
            f"Graphviz `dot` took more than {DOT_TIMEOUT:.0f} s", "draw fewer features, or use --format dot"
        ) from exc
    except OSError as exc:
        raise RuntimeFailure(f"Graphviz `dot` could not start: {exc}", "check the graphviz installation") from exc
    if done.returncode != 0:
        error = " ".join(done.stderr.decode(errors="replace").split())[:_ERROR_TEXT] or f"exit code {done.returncode}"
        raise RuntimeFailure(f"Graphviz `dot` failed: {error}", "check the graphviz installation (`dot -V`)")
    return done.stdout


def render_svg(graph: FeatureGraph, status: Mapping[str, FeatureState] | None = None) -> str:
    """The graph as an SVG document; with ``status``, each field's counts in its state's colour.

    Each feature is an SVG group of class ``node strata-feature`` plus ``in-sync``, ``stale`` or
    ``failed`` (its worst field), so a page can style or find it.
    """
    from strata.views.graph import render_dot

    return run_dot(render_dot(graph, status), "svg").decode()


def render_png(graph: FeatureGraph, status: Mapping[str, FeatureState] | None = None) -> bytes:
    """The graph as a PNG image (see :func:`render_svg`)."""
    from strata.views.graph import render_dot

    return run_dot(render_dot(graph, status), "png")
