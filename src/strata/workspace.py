"""A strata project from Python: ``st.open_project()`` gives its feature graph and its stores.

What the CLI reads from ``strata.yml`` (``features.entrypoints``, ``stores:``, the active
environment, ``.env``) is read the same way here, so a script or notebook sees the very graph
and store that ``strata status`` and ``strata build`` see.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.features.graph import FeatureGraph
    from strata.project.project import Project
    from strata.stores.base import MetadataStore


class StrataProject:
    """An opened project: its root, its feature graph and its stores."""

    def __init__(self, project: Project) -> None:
        self._project = project

    @property
    def root(self) -> Path:
        return self._project.root

    @property
    def environment(self) -> str | None:
        """The active environment's name (``-e``, ``STRATA_ENVIRONMENT`` or ``default_environment``)."""
        return self._project.environment.name if self._project.environment else None

    @cached_property
    def graph(self) -> FeatureGraph:
        """The feature graph of ``features.entrypoints`` (imported once), with the ingested streams."""
        from strata.features.project import load_graph

        return load_graph(self._project)

    def store(self, name: str | None = None, *, read_only: bool = False) -> MetadataStore:
        """The store called ``name`` (default: ``features.store``), with this graph; use it as ``with store:``."""
        from strata.features.project import make_store

        return make_store(self._project, name, graph=self.graph, read_only=read_only)

    def describe_store(self, name: str | None = None) -> str:
        """Where a store lives, for people: ``duckdb at /p/.strata/metadata.duckdb``."""
        from strata.features.project import store_config

        return store_config(self._project, name).describe()


def open_project(path: str | Path | None = None, *, environment: str | None = None) -> StrataProject:
    """The project at ``path`` or above it (default: the working directory)."""
    from strata.project.project import Project

    return StrataProject(Project.find(Path(path) if path is not None else None, environment=environment))
