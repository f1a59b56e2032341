"""How a command shows the progress of its long work: rich bars on a terminal, plain lines elsewhere.

A command wraps its work in :func:`reporting` and hands the reporter to the work code (see
:mod:`strata.progress`). Nothing is shown with ``--json`` or a log level above ``info``; stderr
on a terminal (and ``--log-format console``) gets live bars, anything else plain log lines, so
stdout carries the command's result alone. ``rich.progress`` is imported only to show bars.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Self

from strata.progress import EVERY_SECONDS, LOGGER, LogReporter, Reporter, Tally

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from strata.cli.context import Context

EVERY_VARIABLE = "STRATA_PROGRESS_EVERY"
"""Seconds between two plain lines of one running task (default 5; 0: a line per step)."""


@contextlib.contextmanager
def reporting(ctx: Context, prefix: str) -> Iterator[Reporter | None]:
    """The reporter for this command's work (None: show nothing); bars are taken down on the way out."""
    if ctx.json or not logging.getLogger(LOGGER).isEnabledFor(logging.INFO):
        yield None
    elif ctx.log_format == "console" and sys.stderr.isatty():
        with RichReporter() as bars:
            yield bars
    else:
        yield LogReporter(prefix, every=_every())


def build_reporting(
    ctx: Context, before: Callable[[], None] | None = None
) -> Callable[[], contextlib.AbstractContextManager[Reporter | None]]:
    """What a ``features:build`` block of ``run`` reports its batches to, as ``strata build`` does.

    ``before`` runs as each block starts (``run`` ends its line of records there).
    """

    @contextlib.contextmanager
    def block() -> Iterator[Reporter | None]:
        if before is not None:
            before()
        with reporting(ctx, "build") as report:
            yield report

    return block


def _every() -> float:
    from strata.errors import UsageError

    text = os.environ.get(EVERY_VARIABLE, "").strip()
    if not text:
        return EVERY_SECONDS
    try:
        every = float(text)
    except ValueError:
        every = -1.0
    if not every >= 0:  # also refuses nan
        raise UsageError(f"{EVERY_VARIABLE}={text} is not a number of seconds", "set it to 0 or more, or unset it")
    return every


class RichReporter:
    """One live bar per task on stderr: steps of total, items and their rate, failures, time taken."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            refresh_per_second=4,  # rich redraws 10 times a second by default; a bar needs fewer (bench/progress.py)
        )
        self._tasks: dict[str, tuple[Any, Tally]] = {}
        self._lock = threading.Lock()
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> Self:
        self._progress.start()
        self._log_above_the_bars()
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._progress.stop()

    def _log_above_the_bars(self) -> None:
        """Point strata's log handler at the live display's stderr, so a log line prints above the bars."""
        for handler in logging.getLogger("strata").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stderr__:
                self._streams.append((handler, handler.setStream(sys.stderr)))

    def start(self, task: str, total: int | None, *, unit: str, items: str = "") -> None:
        tally = Tally(total, unit, items)
        counts = "…" if total is None else tally.describe()
        with self._lock:
            self._tasks[task] = (self._progress.add_task(task, total=total, counts=counts), tally)

    def advance(self, task: str, *, steps: int = 1, items: int = 0, failed: int = 0, note: str = "") -> None:
        del note  # the bar says where it stands; notes are for the plain lines
        with self._lock:
            ident, tally = self._tasks[task]
            tally.add(steps, items, failed)
            self._progress.update(ident, completed=tally.done, counts=tally.describe())

    def finish(self, task: str, status: str = "done", note: str = "") -> None:
        with self._lock:
            ident, tally = self._tasks.pop(task)
        counts = tally.describe() if tally.counted() else ""
        text = ", ".join(part for part in (status, counts) if part) + (f"; {note}" if note else "")
        done = max(tally.done, 1) if tally.total is None else tally.done
        self._progress.update(ident, total=max(done, tally.total or 0), completed=done, counts=text)
