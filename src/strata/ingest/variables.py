"""The variables Meltano hands a plugin: its info, settings and extras (see :mod:`strata.ingest.pipeline_env`).

Every plugin gets them (``strata invoke`` too):

    MELTANO_EXTRACTOR_NAME, _NAMESPACE, _VARIANT    its info (MELTANO_LOADER_…, MELTANO_MAPPER_…, MELTANO_UTILITY_…)
    TAP_X_USER  <NAMESPACE>_USER  MELTANO_EXTRACT_USER    every setting set (MELTANO_LOAD_…, MELTANO_UTILIZE_…)
    TAP_X__SELECT  <NAMESPACE>__SELECT  MELTANO_EXTRACT__SELECT    every extra set
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.project.extras import resolve_extras
from strata.project.settings import SettingValue, exported, plugin_info_env

if TYPE_CHECKING:
    from collections.abc import Mapping

    from strata.project.project import PluginRef, Project
    from strata.project.settings import PluginSettings


def meltano_variables(
    project: Project, ref: PluginRef, settings: PluginSettings, context: Mapping[str, str]
) -> dict[str, str]:
    """The info, settings and extras of ``ref`` as variables (``context``: those of the plugins before it)."""
    extras = resolve_extras(project, ref, context)
    return {**plugin_info_env(project, ref), **settings.as_env(), **exported(project, ref, extras.values())}


def mapping_variables(project: Project, ref: PluginRef, mapping: str) -> dict[str, str]:
    """What Meltano adds for a mapper run as the mapping ``mapping``: ``_mapping`` and ``_mapping_name``."""
    values = [SettingValue("_mapping", value=True, source="mapping"), SettingValue("_mapping_name", mapping, "mapping")]
    return exported(project, ref, values)
