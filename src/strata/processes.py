"""Child processes that die with strata.

Plugins (``ingest/pipeline.py``) and build workers (``build.py``) ask the kernel to kill them
when their parent dies (``PR_SET_PDEATHSIG``), so a strata killed by an OOM killer or a
supervisor leaves nothing computing or loading behind. Where ``prctl`` does not exist (not
Linux) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

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
