"""One run as people see it: its record and its log, with the run's plugin secrets redacted.

``strata runs show`` and the page of ``strata ui`` both read runs through here, so what one
shows the other shows too (logs are written redacted; this also covers logs written before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime, timedelta
    from pathlib import Path

    from strata.history.model import Run
    from strata.project.project import Project


def run_with_log(project: Project, run_id: str, tail: int | None = None) -> tuple[Run, Path | None, str | None]:
    """The run (any unique prefix of its id), its log file and the log's text (its last ``tail`` lines).

    The log is None when the run has none or its file is gone.
    """
    from strata.history import RunHistory
    from strata.ingest.redaction import redactor_for

    with RunHistory.open(project) as history:
        run = history.get(run_id)
        path = history.log_file(run)
    redact = redactor_for(project, run.blocks)
    run.error = None if run.error is None else redact(run.error)
    log: str | None = None
    if path is not None and path.is_file():
        log = redact(path.read_text(encoding="utf-8", errors="replace"))
        if tail is not None:
            log = "".join(log.splitlines(keepends=True)[-tail:] if tail else [])
    return run, path, log


def local_time(stamp: datetime) -> str:
    """``2026-01-31 14:05:09`` in the machine's time zone."""
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration_text(run: Run) -> str:
    """``4.2s``, ``3m05s``, ``1h02m``; ``… so far`` while it runs; ``-`` when unknown."""
    duration = run.duration
    if duration is None:
        return "-"
    text = span(duration)
    return f"{text} so far" if str(run.status) == "running" else text


def span(duration: timedelta) -> str:
    """A duration as ``4.2s``, ``3m05s`` or ``1h02m``."""
    seconds = duration.total_seconds()
    if seconds < 60:  # noqa: PLR2004 - a minute
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
