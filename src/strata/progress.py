"""Progress of long work, reported by the code that does it and shown by whoever asked.

Work code (the build runner, a store's ``copy_from`` and ``compact``, a migration apply, the
plugin installs) takes an optional :class:`Reporter` and calls it once per step — a batch, a
feature, an operation, a plugin — never per row, so reporting costs nothing measurable. Passing
none (the default of every Python API) reports nothing.

:class:`LogReporter` writes plain lines to the ``strata.progress`` logger: as steps end, at
most one every ``every`` seconds per task (the first ``every`` seconds after the task starts
included) and a task's first failure at once; when the task ends, one line with its totals if it
said anything before or took ``every`` seconds. Work that ends quickly and well says nothing,
so a command that fails at once still prints its one error line alone. The CLI uses it when
stderr is not a terminal and shows rich bars on one (``strata.cli.progress``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

LOGGER = "strata.progress"
EVERY_SECONDS = 5.0
"""The default pause between two plain lines of one running task."""


class Reporter(Protocol):
    """What work code calls; calls may come from several threads (installs run in parallel)."""

    def start(self, task: str, total: int | None, *, unit: str, items: str = "") -> None:
        """``task`` begins: ``total`` steps of ``unit`` (None: unknown); ``items`` names what steps count."""

    def advance(self, task: str, *, steps: int = 1, items: int = 0, failed: int = 0, note: str = "") -> None:
        """``steps`` more steps of ``task`` ended, covering ``items`` items; ``failed`` of those steps failed."""

    def finish(self, task: str, status: str = "done", note: str = "") -> None:
        """``task`` ended: ``status`` in a word or two (``done``, ``failed``), ``note`` what else to say."""


@dataclass
class Tally:
    """Where one task stands: steps and items done, failures, since when."""

    total: int | None
    unit: str
    item: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    items: int = 0
    failed: int = 0

    def add(self, steps: int, items: int, failed: int) -> bool:
        """Count steps that ended; whether they bring the task's first failure."""
        first = bool(failed) and not self.failed
        self.done, self.items, self.failed = self.done + steps, self.items + items, self.failed + failed
        return first

    def rate(self) -> float:
        """Items per second since the task started."""
        return self.items / max(time.monotonic() - self.started, 1e-6)

    def counted(self) -> bool:
        """Whether the task counts steps (a plugin install does not: it starts and ends)."""
        return self.total is not None or self.done > 0

    def describe(self) -> str:
        """``2/3 batches, 8 samples (1,234/s), 1 failed batch``: steps, items when counted, failures when any."""
        total = "?" if self.total is None else str(self.total)
        parts = [f"{self.done}/{total} {plural(self.unit, self.total or self.done)}"]
        if self.item and self.items:
            parts.append(f"{self.items} {plural(self.item, self.items)} ({self.rate():,.0f}/s)")
        if self.failed:
            parts.append(f"{self.failed} failed {plural(self.unit, self.failed)}")
        return ", ".join(parts)


def plural(noun: str, count: int) -> str:
    """``batch`` for 1, ``batches`` otherwise."""
    if count == 1:
        return noun
    return f"{noun}es" if noun.endswith(("ch", "sh", "s", "x")) else f"{noun}s"


class LogReporter:
    """Plain progress lines on the ``strata.progress`` logger (stderr, in the format of ``--log-format``)."""

    def __init__(self, prefix: str = "", *, every: float = EVERY_SECONDS) -> None:
        self.prefix = f"{prefix} " if prefix else ""
        self.every = every
        self._log = logging.getLogger(LOGGER)
        self._tasks: dict[str, Tally] = {}
        self._last: dict[str, float] = {}
        self._spoken: set[str] = set()
        self._lock = threading.Lock()

    def start(self, task: str, total: int | None, *, unit: str, items: str = "") -> None:
        with self._lock:
            tally = self._tasks[task] = Tally(total, unit, items)
            self._last[task] = tally.started

    def advance(self, task: str, *, steps: int = 1, items: int = 0, failed: int = 0, note: str = "") -> None:
        with self._lock:
            first_failure = self._tasks[task].add(steps, items, failed)
            now = time.monotonic()
            if first_failure or now - self._last[task] >= self.every:
                self._last[task] = now
                self._spoken.add(task)
                self._say(task, self._tasks[task].describe() + (f"; {note}" if note else ""))

    def finish(self, task: str, status: str = "done", note: str = "") -> None:
        with self._lock:
            tally = self._tasks.pop(task)
            self._last.pop(task)
            took = time.monotonic() - tally.started
            if task not in self._spoken and took < self.every:
                return  # quick and quiet: the command's result says the rest
            self._spoken.discard(task)
            text = f"{status} in {took:.1f} s"
            if tally.counted():
                text += f": {tally.describe()}"
            self._say(task, text + (f"; {note}" if note else ""))

    def _say(self, task: str, text: str) -> None:
        self._log.info("%s%s: %s", self.prefix, task, text)
