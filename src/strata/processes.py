"""Child processes that die with strata.

Plugins (``ingest/pipeline.py``) and build workers (``build.py``) ask the kernel to kill them
when their parent dies (``PR_SET_PDEATHSIG``), so a strata killed by an OOM killer or a
supervisor leaves nothing computing or loading behind. Where ``prctl`` does not exist (not
Linux) this does nothing.

A plugin that starts helpers of its own (a wrapper script) runs in a session of its own where
strata reads its output to the end; ``stop_group`` then stops the whole group, so no helper
outlives it or keeps its pipes open.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:  # pragma: no cover - runs in children
    """Have this process killed when its parent dies.

    ``parent`` is the pid it was started by: when it is already gone (it died before the
    request was made), this process exits at once instead of living on.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def stop_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """Stop ``proc``'s process group (``proc`` leads it): SIGTERM, ``grace`` seconds for ``proc``, then SIGKILL.

    What is left of the group after ``proc`` exits (helpers it started) is killed as well.
    """
    import subprocess

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
