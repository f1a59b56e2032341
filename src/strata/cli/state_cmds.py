"""``strata state list | get | set | merge | clear | copy | move``: read and edit incremental state.

Every command checks its state ids and its JSON before it touches the backend, and every edit
runs under the state id's lock, so it is refused while a run holds it (``--force`` takes it).
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import Context, pass_context

if TYPE_CHECKING:
    from strata.state import StateBackend, StateRecord

json_option = click.option("--json", "json_output", is_flag=True, help="Print JSON (same as the global --json).")
force_option = click.option(
    "--force", is_flag=True, help="Store it without the singer_state check, and even while a run holds the lock."
)

EDIT_TTL = 60.0
"""Seconds the lock taken by an edit lasts if the editing process dies."""


def _backend(ctx: Context) -> StateBackend:
    from strata.state import state_backend_for

    return state_backend_for(ctx.project())


def _record_json(state_id: str, record: StateRecord) -> dict[str, Any]:
    return {
        "state_id": state_id,
        "completed": record.completed,
        "partial": record.partial,
        "effective": record.effective(),
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
    }


def _not_found(state_id: str, backend: StateBackend) -> Exception:
    from strata.errors import StateNotFoundError

    return StateNotFoundError(f"no state is stored for `{state_id}` in {backend.describe()}", "see `strata state list`")


def _read_json_argument(text: str) -> str:
    """The JSON argument, or standard input for ``-``."""
    return sys.stdin.read() if text == "-" else text


def _interactive() -> bool:
    return sys.stdin.isatty()


@click.group()
def state() -> None:
    """Incremental state per state id (`<environment>:<extractor>-to-<loader>[:<suffix>]`)."""


@state.command("list")
@click.argument("pattern", required=False)
@json_option
@pass_context
def list_(ctx: Context, pattern: str | None, json_output: bool) -> None:
    """State ids with stored state, matching the glob PATTERN (e.g. 'dev:*')."""
    ctx.json = ctx.json or json_output
    with _backend(ctx) as backend:
        found = backend.ids(pattern)

    def human() -> None:
        for state_id in found:
            click.echo(state_id)
        if not found:
            click.echo("no state stored" + (f" matching `{pattern}`" if pattern else ""), err=True)

    ctx.emit(found, human)


@state.command()
@click.argument("state_id")
@json_option
@pass_context
def get(ctx: Context, state_id: str, json_output: bool) -> None:
    """The state a run of STATE_ID would start from (partial merged onto completed).

    With --json: the completed and partial states apart, and when they were written.
    """
    from strata.state import check_state_id

    ctx.json = ctx.json or json_output
    check_state_id(state_id)
    with _backend(ctx) as backend:
        record = backend.get(state_id)
        if record is None:
            raise _not_found(state_id, backend)
    ctx.emit(_record_json(state_id, record), lambda: click.echo(json.dumps(record.effective() or {}, indent=2)))


@state.command("set")
@click.argument("state_id")
@click.argument("state_json", metavar="JSON")
@force_option
@json_option
@pass_context
def set_(ctx: Context, state_id: str, state_json: str, force: bool, json_output: bool) -> None:
    """Replace STATE_ID's state with JSON ('-' reads it from stdin); it becomes the completed state.

    JSON is Meltano's shape: '{"singer_state": {"bookmarks": {...}}}'.
    """
    from strata.state import check_state_id, complete, parse_state

    ctx.json = ctx.json or json_output
    check_state_id(state_id)
    value = parse_state(_read_json_argument(state_json), require_singer_state=not force)
    with _backend(ctx) as backend, backend.lock(state_id, ttl=EDIT_TTL, force=force):
        backend.put(state_id, complete(None, value))
        record = backend.get(state_id)
    assert record is not None
    ctx.emit(_record_json(state_id, record), lambda: click.echo(f"state of `{state_id}` set"))


@state.command()
@click.argument("state_id")
@click.argument("state_json", metavar="JSON")
@force_option
@json_option
@pass_context
def merge(ctx: Context, state_id: str, state_json: str, force: bool, json_output: bool) -> None:
    """Merge JSON into STATE_ID's partial state ('-' reads it from stdin), as a run's bookmarks are.

    Mappings merge key by key; other values replace. 'get' shows the result.
    """
    from strata.state import check_state_id, merge_partial, parse_state

    ctx.json = ctx.json or json_output
    check_state_id(state_id)
    value = parse_state(_read_json_argument(state_json), require_singer_state=not force)
    with _backend(ctx) as backend, backend.lock(state_id, ttl=EDIT_TTL, force=force):
        backend.put(state_id, merge_partial(backend.get(state_id), value))
        record = backend.get(state_id)
    assert record is not None
    ctx.emit(_record_json(state_id, record), lambda: click.echo(f"state of `{state_id}` merged"))


@state.command()
@click.argument("state_id", required=False)
@click.option("--all", "all_ids", is_flag=True, help="Clear every stored state.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Clear even while a run holds the lock.")
@json_option
@pass_context
def clear(ctx: Context, state_id: str | None, all_ids: bool, yes: bool, force: bool, json_output: bool) -> None:
    """Delete STATE_ID's state (or every state with --all); the next run starts from scratch."""
    from strata.errors import UsageError
    from strata.state import check_state_id

    ctx.json = ctx.json or json_output
    if bool(state_id) == all_ids:
        raise UsageError("name one state id or pass --all", "e.g. `strata state clear dev:tap-x-to-target-y`")
    if state_id is not None:
        check_state_id(state_id)
    with _backend(ctx) as backend:
        targets = backend.ids() if all_ids else [state_id] if state_id else []
        if state_id is not None and backend.get(state_id) is None:
            raise _not_found(state_id, backend)
        if targets and not yes:
            if not _interactive():
                raise UsageError(
                    f"clearing {_count(targets)} needs confirmation", "pass --yes to clear without a prompt"
                )
            click.confirm(f"Clear the state of {_count(targets)}?", abort=True, err=True)
        for target in targets:
            with backend.lock(target, ttl=EDIT_TTL, force=force):
                backend.delete(target)

    def human() -> None:
        click.echo(f"cleared {_count(targets)}" if targets else "no state stored")

    ctx.emit({"cleared": targets}, human)


def _count(ids: list[str]) -> str:
    return f"`{ids[0]}`" if len(ids) == 1 else f"{len(ids)} state ids"


def _copy(ctx: Context, source: str, target: str, *, force: bool, move: bool) -> None:
    from strata.errors import UsageError
    from strata.state import check_state_id

    check_state_id(source)
    check_state_id(target)
    if source == target:
        raise UsageError(f"source and destination are both `{source}`", "name two different state ids")
    with _backend(ctx) as backend, ExitStack() as locks:
        if backend.get(source) is None:
            raise _not_found(source, backend)
        for state_id in sorted({source, target} if move else {target}):
            locks.enter_context(backend.lock(state_id, ttl=EDIT_TTL, force=force))
        record = backend.get(source)
        if record is None:
            raise _not_found(source, backend)
        backend.put(target, record)
        if move:
            backend.delete(source)
    verb = "moved" if move else "copied"
    ctx.emit({"from": source, "to": target, verb: True}, lambda: click.echo(f"state {verb}: `{source}` -> `{target}`"))


@state.command()
@click.argument("source")
@click.argument("destination")
@click.option("--force", is_flag=True, help="Write even while a run holds the destination's lock.")
@json_option
@pass_context
def copy(ctx: Context, source: str, destination: str, force: bool, json_output: bool) -> None:
    """Copy SOURCE's state (completed and partial) to DESTINATION, replacing what is there."""
    ctx.json = ctx.json or json_output
    _copy(ctx, source, destination, force=force, move=False)


@state.command()
@click.argument("source")
@click.argument("destination")
@click.option("--force", is_flag=True, help="Move even while a run holds either lock.")
@json_option
@pass_context
def move(ctx: Context, source: str, destination: str, force: bool, json_output: bool) -> None:
    """Move SOURCE's state to DESTINATION (replacing what is there) and clear SOURCE."""
    ctx.json = ctx.json or json_output
    _copy(ctx, source, destination, force=force, move=True)


COMMANDS: list[click.Command] = [state]
