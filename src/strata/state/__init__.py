"""Incremental state, Meltano-compatible: records, merge rules, ids, locks and backends.

```python
from strata.state import complete, make_state_id, merge_partial, state_backend_for

state_id = make_state_id("dev", "tap-x", "target-y")          # "dev:tap-x-to-target-y"
with state_backend_for(project) as backend, backend.lock(state_id) as lock:
    start = backend.get(state_id)                              # StateRecord | None
    backend.put(state_id, merge_partial(start, {"singer_state": {...}}))   # while running
    lock.check()                                               # raises if the lock was taken over
    record = backend.get(state_id)
    backend.put(state_id, complete(record, record.effective()))            # at success
```

Importing this package loads no client library; each backend module imports its own when chosen.
"""

from strata.state.backends import DEFAULT_URI, open_backend, state_backend_for
from strata.state.base import (
    SINGER_STATE_KEY,
    STATE_STRATEGIES,
    StateBackend,
    StateRecord,
    complete,
    confirm,
    finish,
    merge_dicts,
    merge_partial,
    merges,
    parse_state,
    replace_partial,
)
from strata.state.ids import check_state_id, make_state_id
from strata.state.lock import StateLock

__all__ = [
    "DEFAULT_URI",
    "SINGER_STATE_KEY",
    "STATE_STRATEGIES",
    "StateBackend",
    "StateLock",
    "StateRecord",
    "check_state_id",
    "complete",
    "confirm",
    "finish",
    "make_state_id",
    "merge_dicts",
    "merge_partial",
    "merges",
    "open_backend",
    "parse_state",
    "replace_partial",
    "state_backend_for",
]
