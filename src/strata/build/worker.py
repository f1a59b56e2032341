"""What runs where a batch is computed: in the build's own process, a pool worker or a Ray task.

:func:`call` runs a feature's ``compute`` on one batch with its :class:`Inputs`; a worker
process first loads the project's graph with :func:`init`, then answers :func:`compute` calls.
The builder (:mod:`strata.build.runner`) and the Ray executor (:mod:`strata.build.ray`) both
import from here and never from each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strata.errors import DefinitionError
from strata.features.keys import feature_key_of

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl

    from strata.features.graph import FeatureGraph


class Inputs(Mapping[str, "pl.DataFrame"]):
    """What ``compute`` gets: each upstream's rows for the batch, by key (``inputs["video"]``, ``inputs[Video]``)."""

    def __init__(self, frames: dict[str, pl.DataFrame], samples: pl.DataFrame) -> None:
        self._frames = frames
        self.samples = samples
        """The batch: id columns, and per field ``strata_cause__<field>`` (why it is recomputed)."""

    def __getitem__(self, key: Any) -> pl.DataFrame:
        return self._frames[str(feature_key_of(key))]

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


def call(cls: type, batch: pl.DataFrame, frames: dict[str, pl.DataFrame]) -> Any:
    """``compute`` on one batch: its result, or the exception it raised."""
    samples = batch.select([c for c in batch.columns if not c.startswith(("strata_in__", "strata_dv__"))])
    try:
        return cls().compute(Inputs(frames, samples))
    except Exception as exc:  # noqa: BLE001 - handed back and recorded with the batch
        return exc


_GRAPH: FeatureGraph | None = None


def init(root: str | None, environment: str | None, parent: int | None = None) -> None:  # pragma: no cover
    """Load the graph; a pool worker (``parent``: the build's pid) first arranges to die with the build.

    Killed alone, the build would otherwise leave its workers computing on. Ray workers belong to
    Ray, which ends them itself.
    """
    global _GRAPH  # noqa: PLW0603 - one graph per worker process
    from pathlib import Path

    from strata.features.project import load_graph
    from strata.processes import die_with_parent
    from strata.project.project import Project

    if parent is not None:
        die_with_parent(parent)

    if root is not None:
        _GRAPH = load_graph(Project(Path(root), environment=environment))


def compute(key: str, batch: pl.DataFrame, frames: dict[str, pl.DataFrame]) -> Any:  # pragma: no cover
    """``compute`` of feature ``key`` on one batch in a worker: its result as a native frame; errors raise."""
    if _GRAPH is None:
        raise DefinitionError("the worker has no feature graph", "run build from a project")
    outcome = call(_GRAPH.feature(key), batch, frames)
    if isinstance(outcome, BaseException):
        raise outcome
    import narwhals as nw

    native = nw.from_native(outcome)
    if isinstance(native, nw.LazyFrame):
        native = native.collect()
    return native.to_native() if hasattr(native, "to_native") else outcome
