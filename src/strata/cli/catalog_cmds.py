"""``strata discover`` and ``strata select``."""

from __future__ import annotations

import click

from strata.cli.context import Context, pass_context


@click.command()
@click.argument("extractor")
@pass_context
def discover(ctx: Context, extractor: str) -> None:
    """Run EXTRACTOR's discovery and cache its catalog (always refreshes)."""
    from strata.cli.tables import counted
    from strata.ingest.catalog import cache_path, streams
    from strata.ingest.discovery import discover as run_discover

    project = ctx.project()
    ref = project.plugin(extractor)
    catalog = run_discover(project, ref, refresh=True)
    found = streams(catalog)
    ctx.emit(
        {"extractor": extractor, "streams": len(found), "cache": str(cache_path(project, ref))},
        lambda: click.echo(
            f"{extractor}: {counted(len(found), 'stream')} discovered, catalog cached in {cache_path(project, ref)}"
        ),
    )


@click.command()
@click.argument("extractor")
@click.argument("stream", required=False)
@click.argument("prop", metavar="[PROPERTY]", required=False)
@click.option("--list", "list_", is_flag=True, help="Show streams and properties and whether they are selected.")
@click.option("--all", "all_", is_flag=True, help="With --list: also show what is not selected.")
@click.option("--exclude", is_flag=True, help="Add an exclusion (`!stream.property`) instead.")
@pass_context
def select(
    ctx: Context, extractor: str, stream: str | None, prop: str | None, list_: bool, all_: bool, exclude: bool
) -> None:
    """Show (--list) or add the select rules of EXTRACTOR: STREAM [PROPERTY] with globs."""
    from strata.errors import UsageError

    project = ctx.project()
    ref = project.plugin(extractor)
    if list_ or stream is None:
        from strata.ingest.catalog import rules_of, selection
        from strata.ingest.discovery import discover as run_discover

        rules = rules_of(project, ref).select
        chosen = selection(run_discover(project, ref), rules if rules is not None else ["*.*"])

        def human() -> None:
            click.echo(f"{extractor} select rules: {', '.join(rules) if rules is not None else '*.* (default)'}")
            for sid, props in chosen.items():
                if not all_ and not any(props.values()):
                    continue
                mark = "selected" if any(props.values()) else "excluded"
                click.echo(f"  {sid} ({mark})")
                for name, value in props.items():
                    if value or all_:
                        click.echo(f"    {'[x]' if value else '[ ]'} {name}")

        ctx.emit({"rules": rules, "streams": chosen}, human)
        return
    for part in (stream, prop or "*"):
        if not part or any(c.isspace() for c in part) or part.startswith("!") or "." in part:
            raise UsageError(
                f"`{part}` is not a stream or property name", "use a name or a glob such as `users` or `*_at`"
            )
    from strata.project.edit import add_select_rule

    rule = f"{'!' if exclude else ''}{stream}.{prop or '*'}"
    add_select_rule(project, ref.name, rule)
    ctx.emit({"added": rule}, lambda: click.echo(f"{extractor}: added select rule `{rule}`"))


COMMANDS = [discover, select]
