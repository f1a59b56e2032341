"""The Ray executor: ``features: {executor: ray}`` runs the batches of ``strata build`` as Ray tasks.

The payloads are the process pool's: per batch, the batch frame (ids, causes, version columns)
and each upstream's rows for it. A task gets them with the project root, the environment name
and the feature key; the worker process loads the project's graph the first time (the process
pool's :func:`strata.build.worker.init`) and keeps it while root and environment stay the
same, then runs :func:`strata.build.worker.compute`, the very call the pool's workers make.
An exception ``compute`` raises is the task's *value*, so it comes back as it was raised and is
recorded by the builder like any failing batch; the result frame is checked and written by the
builder, as for the other executors.

Where the tasks run:

- no ``ray_address`` (and no ``RAY_ADDRESS``): ``ray.init`` starts a local instance with
  ``--workers`` CPUs and no dashboard; strata shuts it down at the end of the build;
- ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``: the tasks go to that cluster; at the end strata
  disconnects (``ray.shutdown`` in a connected driver leaves the cluster running);
- Ray already initialised in this process (a notebook calling :func:`strata.build.build`): it is
  used as it is, and left as it is.

Workers find the project at the same path as the driver (a cluster needs the project directory
and strata on every node); the runtime environment puts the root first on ``PYTHONPATH``.
Ray itself is imported only here, when a build uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strata.errors import RuntimeFailure, StrataError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl

    Payload = tuple[pl.DataFrame, dict[str, pl.DataFrame]]

log = logging.getLogger("strata.build")

_IN_FLIGHT_PER_CPU = 2
"""Batches submitted ahead of the one being written, per CPU of the cluster."""

_SETUP_ERRORS = ("RuntimeEnvSetupError", "AuthenticationError")
"""Ray errors that no batch caused: the build stops instead of recording them."""


@dataclass(frozen=True)
class _NoGraph:
    """What a task returns when its worker could not load the project."""

    message: str


class RayExecutor:
    """Ray for one build: started or connected on first use, shut down by :meth:`close` if it did so."""

    def __init__(self, root: str, environment: str | None, *, address: str | None = None, workers: int = 1) -> None:
        self.root = root
        self.environment = environment
        self.address = address
        self.workers = max(1, workers)
        self._ray: Any = None
        self._remote: Any = None
        self._owned = False
        self._window = self.workers * _IN_FLIGHT_PER_CPU

    def map(self, key: str, payloads: list[Payload]) -> Iterator[Any]:
        """Each payload's result frame, or the exception its batch raised; in order."""
        ray = self._connect()
        remote = self._remote.options(name=f"strata build {key}")
        todo = iter(payloads)
        running: deque[Any] = deque()

        def submit() -> None:
            payload = next(todo, None)
            if payload is not None:
                running.append(remote.remote(self.root, self.environment, key, *payload))

        for _ in range(self._window):
            submit()
        try:
            while running:
                outcome = self._result(ray, running.popleft())
                submit()  # keep the cluster busy while the builder writes this batch
                yield outcome
        finally:
            for ref in running:  # the builder stopped early: nothing more is wanted
                with contextlib.suppress(Exception):  # Ray may be shut down already
                    ray.cancel(ref)

    def close(self) -> None:
        """Shut Ray down if this executor initialised it (a local instance stops; a cluster stays)."""
        if self._ray is not None and self._owned:
            self._ray.shutdown()
            log.info("ray shut down" if self.address is None else "disconnected from the Ray cluster")
        self._ray = None
        self._owned = False

    # -- inside ------------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            self.address = self.address or os.environ.get("RAY_ADDRESS") or None
            self._init(ray)
            self._owned = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._window = max(2, cpus * _IN_FLIGHT_PER_CPU)
        self._remote = ray.remote(_run_batch)
        self._ray = ray
        return ray

    def _init(self, ray: Any) -> None:
        paths = [self.root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
        options: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
        }
        if self.address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a build does not report usage to Ray
            options.update(num_cpus=self.workers, include_dashboard=False)
            where = "cannot start a local Ray instance"
            hint = "see the Ray logs under /tmp/ray/session_latest/logs, or set features.ray_address"
        else:
            options["address"] = self.address
            where = f"cannot connect to the Ray cluster at {self.address}"
            hint = f"check features.ray_address, and that the cluster runs Ray {ray.__version__}"
        try:
            ray.init(**options)
        except Exception as exc:
            raise RuntimeFailure(f"{where}: {_one_line(exc)}", hint) from exc
        if self.address is None:
            log.info("started a local Ray instance", extra={"fields": {"cpus": self.workers}})
        else:
            log.info("connected to the Ray cluster", extra={"fields": {"address": self.address}})

    def _result(self, ray: Any, ref: Any) -> Any:
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task itself raised (not compute: that is a value)
            outcome = exc.cause if isinstance(exc.cause, Exception) else exc
        except ray.exceptions.RayError as exc:  # a worker or node died, an object was lost
            if type(exc).__name__ in _SETUP_ERRORS:
                raise RuntimeFailure(
                    f"Ray could not run the build's tasks: {_one_line(exc)}", "check the cluster and its runtime env"
                ) from exc
            outcome = exc  # recorded with the batch, as a dead process-pool worker is
        if isinstance(outcome, _NoGraph):
            raise RuntimeFailure(
                f"a Ray worker could not load the project: {outcome.message}",
                "every node needs the project directory at the same path and strata with the feature modules' "
                "packages installed",
            )
        return outcome


def _import_ray() -> Any:
    # Ray re-runs its workers under `uv run` (and uploads the working directory) when an ancestor
    # process is `uv run`; strata's workers need this interpreter and the project at its own path.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    from strata.extras import needs

    with needs("ray", "the Ray executor (features.executor `ray`)", otherwise="use --executor local"):
        import ray
    return ray


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, StrataError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- inside Ray workers --------------------------------------------------------------------

_LOADED: tuple[str, str | None] | None = None
"""The project (root, environment) whose graph this worker process holds."""


def _run_batch(  # pragma: no cover - runs in Ray workers
    root: str, environment: str | None, key: str, batch: pl.DataFrame, frames: dict[str, pl.DataFrame]
) -> Any:
    """One batch in a Ray worker: the process pool's worker calls, with the exception as the value."""
    global _LOADED  # noqa: PLW0603 - one graph per worker process
    from strata.build.worker import compute, init

    if (root, environment) != _LOADED:
        try:
            init(root, environment)
        except Exception as exc:  # noqa: BLE001 - handed back: no batch is at fault
            return _NoGraph(_one_line(exc))
        _LOADED = (root, environment)
    try:
        return compute(key, batch, frames)
    except Exception as exc:  # noqa: BLE001 - handed back and recorded with the batch
        return exc
