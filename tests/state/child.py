"""A second process for the state tests: ``python -m tests.state.child KIND ACTION STATE_ID [TTL]``.

The backend comes from ``STRATA_TEST_BACKEND`` (uri, root, options as JSON). Actions print one
line when they reach the point the test waits for, then block until the test kills them:

- ``hold STATE_ID TTL``: take the lock (renewed in the background) and print ``locked``;
- ``hold-elsewhere STATE_ID TTL``: the same, as if from another machine (its death cannot be seen
  here, only its lease running out);
- ``put STATE_ID``: start writing a state holding ``INTERRUPTED_MARKER`` and print ``writing``
  halfway: before the rename (file), before the commit (SQL), after half the request body (S3,
  Azure).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from strata.state import StateBackend, complete, lock, open_backend

INTERRUPTED_MARKER = "__written_by_a_killed_process__"


def _say(line: str) -> None:
    """Tell the test where this process is (one line on stdout)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stop_here() -> None:
    _say("writing")
    threading.Event().wait()


def _interrupt_writes(kind: str) -> None:
    """Make the next state write stop halfway, the way a kill would catch it."""
    if kind == "file":
        os.fsync = lambda fd: _stop_here()
    elif kind in {"sqlite", "postgres"}:
        from sqlalchemy.engine import Connection

        Connection._commit_impl = lambda self: _stop_here()  # type: ignore[method-assign]  # noqa: SLF001
    else:
        send = http.client.HTTPConnection.send

        def half_then_stop(self: http.client.HTTPConnection, data: Any) -> None:
            if isinstance(data, bytes) and INTERRUPTED_MARKER.encode() in data:
                send(self, data[: len(data) // 2])
                _stop_here()
            send(self, data)

        http.client.HTTPConnection.send = half_then_stop  # type: ignore[method-assign]


def main(kind: str, action: str, state_id: str, *args: str) -> None:
    spec = json.loads(os.environ["STRATA_TEST_BACKEND"])
    backend: StateBackend = open_backend(spec["uri"], root=Path(spec["root"]), options=spec["options"], environ={})
    if action in {"hold", "hold-elsewhere"}:
        if action == "hold-elsewhere":  # a holder whose liveness this machine cannot see
            lock.process_key = lambda pid=None: "another-machine/1/1/1"
        backend.lock(state_id, ttl=float(args[0]))
        _say("locked")
        threading.Event().wait()
    elif action == "put":
        backend.get(state_id)  # tables, connections and clients are ready before the hook goes in
        _interrupt_writes(kind)
        backend.put(state_id, complete(None, {"singer_state": {"marker": INTERRUPTED_MARKER * 20}}))
        _say("not interrupted")
    else:
        sys.exit(f"unknown action {action}")


if __name__ == "__main__":
    main(*sys.argv[1:])
