"""``strata test``: run plugins' tests (their ``test``-prefixed commands), printed as ``meltano test`` prints them."""

from __future__ import annotations

import shutil

import click

from strata.cli.context import Context, pass_context

_RESULT_WIDTH = 60
"""Meltano pads the bold test name (its escape codes included) to this width with dots."""


@click.command("test")
@click.argument("plugin_tests", metavar="[PLUGIN[:TEST]]...", nargs=-1)
@click.option("--all", "all_tests", is_flag=True, help="Run every test of every plugin.")
@pass_context
def test(ctx: Context, plugin_tests: tuple[str, ...], all_tests: bool) -> None:
    """Run plugins' tests: their commands whose names start with `test`, as `meltano test` does.

    PLUGIN runs all of its tests, PLUGIN:TEST one of its commands (any command, as in Meltano),
    --all every plugin's tests; with none of them nothing runs. Each test runs as `strata invoke
    PLUGIN:TEST` would, attached to the terminal. Exit 1 if a test fails.
    """
    from strata.errors import RuntimeFailure
    from strata.ingest.invoke import invoke
    from strata.ingest.plugin_tests import select

    project = ctx.project()
    results: list[tuple[str, int]] = []
    for command in select(project, list(plugin_tests), all_tests=all_tests):
        if not ctx.json:
            _separator(command.block, bold=True)
        results.append((command.block, invoke(project, command.block, [], stdout_to_stderr=ctx.json)))
    failed = [(block, code) for block, code in results if code != 0]
    rows = [
        {"plugin": b.partition(":")[0], "test": b.partition(":")[2], "outcome": _outcome(c), "exit_code": c}
        for b, c in results
    ]
    ctx.emit(rows, lambda: _report(results, failed))
    if failed:
        named = ", ".join(f"{block} (exit code {code})" for block, code in failed)
        raise RuntimeFailure(
            f"{len(failed)} of {len(results)} tests failed: {named}",
            f"run `strata invoke {failed[0][0]}` to see it fail alone",
        )


def _outcome(code: int) -> str:
    return "success" if code == 0 else "failure"


def _report(results: list[tuple[str, int]], failed: list[tuple[str, int]]) -> None:
    """Meltano's summary: one line per test, then the counts between separators."""
    click.echo()
    for block, code in results:
        outcome = click.style(_outcome(code), fg="green" if code == 0 else "red")
        click.echo(f"{click.style(block, bold=True).ljust(_RESULT_WIDTH, '.')} {outcome}")
    status = "with failures" if failed else "successfully"
    passed = len(results) - len(failed)
    message = f"Testing completed {status}. {passed} test(s) successful. {len(failed)} test(s) failed."
    _separator(message, fg="red" if failed else "green")


def _separator(title: str, *, bold: bool | None = None, fg: str | None = None) -> None:
    """``=== title ===`` across the terminal, after an empty line (Meltano's ``write_sep_line``)."""
    width = shutil.get_terminal_size().columns
    fill = "=" * max((width - len(title) - 2) // 2, 1)
    line = f"\n{fill} {title} {fill}"
    if len(line) + 1 <= width:
        line += "="
    click.secho(line, bold=bold, fg=fg)


COMMANDS = [test]
