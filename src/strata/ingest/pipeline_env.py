"""The variables Meltano hands the plugins of a pipeline, and the order they become visible in.

Every plugin gets its own info and values as variables (``strata invoke`` too):

    MELTANO_EXTRACTOR_NAME, _NAMESPACE, _VARIANT    its info (MELTANO_LOADER_…, MELTANO_MAPPER_…, MELTANO_UTILITY_…)
    TAP_X_USER  <NAMESPACE>_USER  MELTANO_EXTRACT_USER    every setting set (MELTANO_LOAD_…, MELTANO_UTILIZE_…)
    TAP_X__SELECT  <NAMESPACE>__SELECT  MELTANO_EXTRACT__SELECT    every extra set

In a pipeline (``run``, ``el``, jobs) each plugin also gets those of the plugins before it: a
mapper the extractor's, the loader the extractor's and the mappers'. Its settings and extras
may use them in ``${VAR}`` (``destination_path: out/$MELTANO_EXTRACT__LOAD_SCHEMA``), as Meltano
4.4.1 expands a loader's config with the extractor's variables. A mapper named by a mapping also
says so (``MELTANO_MAP__MAPPING=true``, ``MELTANO_MAP__MAPPING_NAME``). Command blocks and other
pipelines of the same run get none of them, as in Meltano.

These variables go to the plugin processes only; secret values among them are redacted from
the run log with the secrets of the plugin they come from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.ingest.variables import mapping_variables, meltano_variables
from strata.project.settings import resolve

if TYPE_CHECKING:
    from collections.abc import Mapping

    from strata.ingest.blocks import Block
    from strata.ingest.blocks import Mapping as NamedMapping
    from strata.ingest.invoke import Invocation
    from strata.project.project import PluginRef, Project
    from strata.project.settings import PluginSettings


def _steps(block: Block) -> list[tuple[PluginRef, Mapping[str, Any] | None, NamedMapping | None]]:
    """The plugins of a pipeline in order, each with its config overrides and the mapping it runs as."""
    mappings = block.mappings or tuple(None for _ in block.mappers)
    return [
        (block.extractor, None, None),
        *((ref, block.overrides(i), mappings[i]) for i, ref in enumerate(block.mappers)),
        (block.loader, None, None),
    ]


def prepare_block(project: Project, block: Block) -> list[Invocation]:
    """The invocations of a pipeline's plugins, in order, each resolved with the variables of those before it."""
    from strata.ingest.invoke import prepare

    context: dict[str, str] = {}
    invocations = []
    for ref, overrides, mapping in _steps(block):
        inv = prepare(project, ref.name, [], overrides, context=context)
        if mapping is not None:
            added = mapping_variables(project, ref, mapping.name)
            inv.exported.update(added)
            inv.environ.update(added)
        context = {**context, **inv.exported}
        invocations.append(inv)
    return invocations


def settings_in_block(project: Project, block: Block, position: int) -> PluginSettings:
    """The settings of the pipeline's plugin at ``position`` (``-1``: the loader) as ``prepare_block`` resolves them.

    Nothing is started or looked up in a venv: ``el --dump=loader-config`` prints these.
    """
    steps = _steps(block)
    ref, overrides, _ = steps[position]
    context: dict[str, str] = {}
    for before, before_overrides, mapping in steps[: position % len(steps)]:
        settings = resolve(project, before.name, before_overrides, context=context)
        added = mapping_variables(project, before, mapping.name) if mapping is not None else {}
        context = {**context, **meltano_variables(project, before, settings, context), **added}
    return resolve(project, ref.name, overrides, context=context)
