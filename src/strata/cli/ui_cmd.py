"""``strata ui [--port N] [--host H] [--store NAME]``: a read-only web page of the graph, runs, builds and state."""

from __future__ import annotations

import click

from strata.cli.context import Context, pass_context

DEFAULT_PORT = 8765


@click.command()
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to serve on (0 picks a free one; the address is printed).",
)
@click.option(
    "--host",
    metavar="H",
    help="Address to serve on (default: 127.0.0.1, this machine only; any other is reachable by others and warns).",
)
@click.option("--store", "store_name", metavar="NAME", help="Store to show (default: features.store in strata.yml).")
@pass_context
def ui(ctx: Context, port: int, host: str | None, store_name: str | None) -> None:
    """Serve a read-only page: the graph with live staleness, runs and their logs, build errors, state ids.

    The page refreshes itself while a run or a build goes on. It changes nothing; it never
    shows a secret. Ctrl-C stops it.
    """
    from strata.features.project import store_config
    from strata.ui.data import Source
    from strata.ui.serve import LOOPBACK, READY, bind, is_loopback, serve, url, where

    project = ctx.project()
    store_config(project, store_name)  # an unknown store is one line now, not an error on every page
    source = Source(project.root, ctx.environment, ctx.no_environment, store_name)
    address = host or LOOPBACK
    exposed = not is_loopback(address)
    sock = bind(address, port)
    if exposed:
        click.echo(
            f"strata: warning: serving on {address}: anyone who can reach this machine can read the page "
            "(there is no login); leave out --host to serve on 127.0.0.1 only",
            err=True,
        )

    def ready() -> None:
        click.echo(f"{READY}{url(sock)} ({where(sock)}read-only; Ctrl-C stops)")

    try:
        serve(source, sock, ready=ready)
    finally:
        sock.close()


COMMANDS = [ui]
