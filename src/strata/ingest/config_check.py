"""``strata config test``: an extractor must start and emit a first record with its resolved config.

Meltano's meaning (``meltano config test``): the tap starts as a run starts it (its config, the
catalog with the project's selection; no state), its stdout is read until the first ``RECORD``
or ``BATCH`` message, and it is then stopped. A tap that exits before one, or fails, makes the
configuration invalid; the error carries its last stderr lines, secrets redacted.

The tap runs in a process group of its own, and the whole group is stopped (SIGTERM, then
SIGKILL after ``GRACE_SECONDS``): a wrapper script's helpers go with it, nothing is orphaned.
Ctrl-C, SIGTERM and SIGHUP stop the group the same way before strata exits.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections import deque
from typing import IO, TYPE_CHECKING

from strata.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    from strata.ingest.invoke import Invocation
    from strata.project.project import Project

GRACE_SECONDS = 5.0
"""How long the tap's group gets after SIGTERM before SIGKILL."""
_TAIL = 3
_FIRST = frozenset({"RECORD", "BATCH"})


def check_extractor(project: Project, name: str) -> None:
    """Return once extractor ``name`` has emitted its first record; raise why its configuration is invalid."""
    from strata.ingest.catalog import tap_args
    from strata.ingest.discovery import run_catalog
    from strata.ingest.invoke import exit_code, prepare
    from strata.ingest.pipeline import stopped_by_signals
    from strata.ingest.redaction import Redactor
    from strata.ingest.runfiles import config_file
    from strata.project.schema import singular

    ref = project.plugin(name)
    if ref.plugin_type != "extractors":
        raise UsageError(
            f"operation not supported for {singular(ref.plugin_type)} `{name}`: `config test` checks extractors",
            "run `strata config test` with an extractor",
        )
    review = f"review the settings (`strata config list {name}`)"
    try:
        catalog = run_catalog(project, ref, refresh=False)
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"`{name}` configuration is invalid: {exc.reason}", review) from None
    inv = prepare(project, name, [])
    with contextlib.ExitStack() as files, stopped_by_signals():
        config = files.enter_context(config_file(project, name, inv.config))
        catalog_path = None if catalog is None else files.enter_context(config_file(project, "catalog", catalog))
        argv = [inv.argv[0], "--config", str(config), *tap_args(project, ref, catalog_path, None)]
        found, returncode, tail = _first_record(project, inv, argv)
    if found:
        return
    lines = " / ".join(Redactor(inv.secrets)(line) for line in tail) or "no output"
    if returncode == 0:
        raise RuntimeFailure(
            f"`{name}` configuration is invalid: it emitted no RECORD or BATCH message (exit code 0)",
            f"check that at least one stream is selected (`strata select {name} --list`) and {review}",
        )
    raise RuntimeFailure(
        f"`{name}` configuration is invalid: it failed with exit code {exit_code(returncode)}: {lines}", review
    )


def _first_record(project: Project, inv: Invocation, argv: list[str]) -> tuple[bool, int, list[str]]:
    """Run the tap until its first record or its end: (record seen, exit code, last stderr lines)."""
    from strata.ingest.pipeline import deferred_signals
    from strata.processes import stop_group

    found = threading.Event()
    tail: deque[str] = deque(maxlen=_TAIL)
    proc: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = []
    try:
        with deferred_signals():  # a signal while the tap starts takes effect once it can be stopped
            proc = _start(project, inv, argv)
            readers = [
                threading.Thread(target=_watch, args=(proc.stdout, found), daemon=True),
                threading.Thread(target=_keep_tail, args=(proc.stderr, tail), daemon=True),
            ]
            for reader in readers:
                reader.start()
        while not found.wait(0.05) and proc.poll() is None:
            pass
    finally:
        if proc is not None:
            stop_group(proc, GRACE_SECONDS)
            for reader in readers:
                reader.join(GRACE_SECONDS)
    return found.is_set(), proc.returncode, [line for line in tail if line]


def _start(project: Project, inv: Invocation, argv: list[str]) -> subprocess.Popen[bytes]:
    """The tap, in a session (and process group) of its own, its stdout and stderr piped to strata."""
    from strata.ingest.invoke import cannot_start
    from strata.processes import die_with_parent

    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=inv.environ,
            cwd=project.root,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks or threads touched
        )
    except OSError as exc:
        raise cannot_start(inv.env.ref.name, argv[0], exc) from exc


def _watch(stream: IO[bytes], found: threading.Event) -> None:
    """Set ``found`` at the first RECORD or BATCH line; read on to the end (the pipe must not fill up)."""
    with stream:
        _find_record(stream, found)


def _find_record(stream: IO[bytes], found: threading.Event) -> None:
    for raw in stream:
        if found.is_set():
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") in _FIRST:
            found.set()


def _keep_tail(stream: IO[bytes], tail: deque[str]) -> None:
    with stream:
        for raw in stream:
            tail.append(raw.decode("utf-8", "replace").strip())
