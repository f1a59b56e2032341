"""Which catalog a tap gets: its ``catalog:`` file, the cache, or a fresh ``--discover``; and ``invoke --dump``.

The catalog rules themselves (select, metadata, schema, the cache) are :mod:`strata.ingest.catalog`;
this module runs the tap to discover, so it sits above :mod:`strata.ingest.invoke`, which only
builds a tap's arguments from a catalog it is given.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import TYPE_CHECKING, Any

from strata.errors import RuntimeFailure, UsageError
from strata.ingest import commands
from strata.ingest.catalog import (
    Catalog,
    apply_rules,
    cache_key,
    filter_streams,
    has_capability,
    load_cached,
    rules_of,
    store_cached,
    streams,
)
from strata.ingest.invoke import TAKES_CONFIG, extractor, prepare, run_captured
from strata.project.settings import resolve

if TYPE_CHECKING:
    from strata.project.project import PluginRef, Project

_log = logging.getLogger("strata.ingest.catalog")
"""The catalog module's logger: its warnings read as they did before discovery moved here."""


def run_catalog(
    project: Project,
    ref: PluginRef,
    *,
    refresh: bool,
    given: Catalog | None = None,
    select_filter: tuple[str, ...] = (),
) -> Catalog | None:
    """The catalog a run hands the tap, or None when it takes none (Meltano's rules).

    A catalog ``given`` on the command line (``--catalog FILE``) is used as it is; so is a
    ``catalog:`` file (``_catalog``), but for ``_select_filter``, and but a tap without the
    ``catalog`` or ``properties`` capability gets none (its ``catalog:`` is ignored with a
    warning); a tap without the ``discover`` capability is not discovered and gets none; otherwise
    the discovered catalog (discovered again when ``refresh`` or ``_use_cached_catalog`` is false)
    with the project's rules applied. ``select_filter`` (``el --select/--exclude``) applies to all.
    """
    catalog = given if given is not None else _project_catalog(project, ref, refresh=refresh)
    if catalog is None or not select_filter:
        return catalog
    return filter_streams(copy.deepcopy(catalog), list(select_filter))


def _project_catalog(project: Project, ref: PluginRef, *, refresh: bool) -> Catalog | None:
    """The catalog the project's file and rules give the tap (``run_catalog`` without the command line)."""
    rules = rules_of(project, ref)
    if not (has_capability(project, ref, "catalog") or has_capability(project, ref, "properties")):
        if rules.catalog:
            _log.warning(
                "%s is ignored: `%s` does not advertise the `catalog` or `properties` capability",
                rules.catalog,
                ref.name,
            )
        return None
    if rules.catalog:
        return filter_streams(discover(project, ref), rules.select_filter)
    if not has_capability(project, ref, "discover"):
        return None
    catalog = discover(project, ref, refresh=refresh or not rules.use_cached_catalog)
    return apply_rules(catalog, rules.select, rules.metadata, rules.schema, rules.select_filter)


def discover(project: Project, ref: PluginRef, *, refresh: bool = False) -> Catalog:
    """The extractor's catalog: its ``catalog:`` file, the cache, or a fresh ``--discover``."""
    catalog_file = rules_of(project, ref).catalog
    if catalog_file:
        path = (project.root / catalog_file).resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"`{ref.name}` catalog file {path} cannot be read as JSON: {exc}", "fix `catalog:`"
            ) from exc
        return data  # type: ignore[no-any-return]
    if not has_capability(project, ref, "discover"):
        raise UsageError(
            f"`{ref.name}` does not advertise the `discover` capability, so it cannot be discovered",
            "give it a `catalog:` file, or add `discover` to its `capabilities:` if it has it",
        )
    inv = prepare(project, ref.name, [])
    key = cache_key(inv.config, f"{inv.env.pip_url}|{inv.argv[0]}")
    if not refresh:
        cached = load_cached(project, ref, key)
        if cached is not None:
            return cached
    done = run_captured(project, ref.name, ["--discover"], stdin="")
    if done.returncode != 0:
        tail = " / ".join(line.strip() for line in (done.stderr or "").strip().splitlines()[-3:])
        raise RuntimeFailure(f"discovery failed: `{ref.name}` exited {done.returncode}: {tail}", "check its config")
    try:
        catalog = json.loads(done.stdout)
    except ValueError:
        raise RuntimeFailure(
            f"`{ref.name} --discover` printed no JSON catalog", "check that it is a Singer tap"
        ) from None
    streams(catalog)
    store_cached(project, ref, key, catalog)
    return catalog  # type: ignore[no-any-return]


def dump(
    project: Project,
    name: str,
    what: str,
    *,
    catalog: dict[str, Any] | None,
    state: dict[str, Any] | None,
    refresh: bool,
) -> dict[str, Any]:
    """What ``invoke --dump=WHAT`` prints, starting nothing but a discovery: no plugin run.

    ``config``: the resolved config, secrets redacted (Meltano prints them; strata prints no
    secret). ``catalog``: the ``--catalog`` file, else the catalog a run gives the extractor.
    ``state``: the ``--state`` file (invoke has no state id, so no stored state is given).
    """
    if what == "config":
        if commands.is_command_block(name) or project.plugin(name).plugin_type not in TAKES_CONFIG:
            raise UsageError(f"`{name}` is given no config file", "dump the config of an extractor, loader or mapper")
        return resolve(project, name).config(redacted=True)
    extractor(project, name, f"--dump={what}")
    if what == "state":
        if state is None:
            raise UsageError(
                "`strata invoke` gives an extractor no stored state, only a --state FILE",
                "pass --state FILE, or see a run's state with `strata state get ID`",
            )
        return state
    if catalog is not None:
        return catalog
    found = run_catalog(project, project.plugin(name), refresh=refresh)
    if found is None:
        raise UsageError(f"`{name}` is given no catalog (see its `capabilities:`)", "dump its config or state instead")
    return found
