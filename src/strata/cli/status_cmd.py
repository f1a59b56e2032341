"""``strata status [FEATURE...] [--store NAME] [--assert-in-sync]``: what is stale, and why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from collections.abc import Sequence


@click.command()
@click.argument("feature_keys", metavar="[FEATURE]...", nargs=-1)
@click.option("--store", "store_name", metavar="NAME", help="Store to ask (default: features.store in strata.yml).")
@click.option("--assert-in-sync", is_flag=True, help="Exit 1 when any feature has samples to add, recompute or remove.")
@click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")
@pass_context
def status(
    ctx: Context, feature_keys: tuple[str, ...], store_name: str | None, assert_in_sync: bool, json_output: bool
) -> None:
    """What each feature must add, recompute (which fields, why) or remove.

    Features are listed upstreams first, with their live samples in the store. Root features
    resolve against the samples their caller supplies, so they show their sample count and,
    per field, the samples whose code_version is not the code's (stale, cause `code`).
    """
    from strata.errors import RuntimeFailure
    from strata.features.project import load_graph, make_store, opened, store_config
    from strata.views.graph import out_of_sync
    from strata.views.graph import status as feature_status

    ctx.json = ctx.json or json_output
    project = ctx.project()
    graph = load_graph(project)
    wanted = {graph.spec(k).key for k in feature_keys}
    keys = [k for k in graph.topological_order() if not wanted or k in wanted]
    config = store_config(project, store_name)
    rows: list[dict[str, Any]] = []
    if keys:
        store = make_store(project, store_name, graph=graph, read_only=True)
        with opened(store, config):
            rows = feature_status(store, keys)
    ctx.emit({"store": config.to_json(), "features": rows}, lambda: click.echo(_status_text(config.name, rows)))
    stale = out_of_sync(rows)
    if assert_in_sync and stale:
        raise RuntimeFailure(
            f"not in sync: {', '.join(stale)}", "compute and write what `strata status` lists, then check again"
        )


def _status_text(store: str, rows: Sequence[dict[str, Any]]) -> str:
    from strata.cli.tables import table

    if not rows:
        return "no features (name the modules that define them in features.entrypoints of strata.yml)"
    body = []
    for row in rows:
        if row["root"]:
            body.append(
                [row["feature"], row["samples"], None, None, None, "stale" if row["in_sync"] is False else "root"]
            )
            continue
        state = "in sync" if row["in_sync"] else "stale"
        body.append([row["feature"], row["samples"], row["added"], row["changed"], row["removed"], state])
    lines = [f"store: {store}", table(["feature", "samples", "added", "changed", "removed", "status"], body)]
    details = [
        f"  {row['feature']}.{field} <- " + ", ".join(f"{cause} ({count})" for cause, count in sorted(causes.items()))
        for row in rows
        for field, causes in row["fields"].items()
    ]
    if details:
        lines += ["changed fields:", *details]
    return "\n".join(lines)


COMMANDS = [status]
