"""What a run is made of: extract-load pipelines (blocks) and named mapper configurations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.project.project import PluginRef


@dataclass(frozen=True)
class Block:
    """One extract-load pipeline: an extractor, mappers, a loader."""

    extractor: PluginRef
    mappers: tuple[PluginRef, ...]
    loader: PluginRef
    mappings: tuple[Mapping | None, ...] = ()
    """Per mapper: the Meltano ``mappings:`` entry it was named by, if any."""

    @property
    def names(self) -> list[str]:
        mappers = [m.name if m is not None else r.name for r, m in zip(self.mappers, self._mappings, strict=True)]
        return [self.extractor.name, *mappers, self.loader.name]

    @property
    def _mappings(self) -> tuple[Mapping | None, ...]:
        return self.mappings or tuple(None for _ in self.mappers)

    def overrides(self, index: int) -> dict[str, Any] | None:
        """Config of the mapping the ``index``-th mapper was named by (applied over the mapper's own)."""
        mapping = self._mappings[index]
        return None if mapping is None else mapping.config


@dataclass(frozen=True)
class Mapping:
    """A named configuration of a mapper (Meltano's ``mappings:``), usable as a block."""

    name: str
    config: dict[str, Any]
