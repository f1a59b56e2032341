"""Logging for people (console) and machines (JSON lines), on stderr.

stdlib ``logging`` only: it is already imported by everything and costs nothing at start-up.
Library code logs to ``logging.getLogger("strata.<area>")`` with ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error", "critical")


class ConsoleFormatter(logging.Formatter):
    """``12:00:01 warning  message  key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields: dict[str, Any] = getattr(record, "fields", {})
        extra = "".join(f"  {k}={v}" for k, v in fields.items())
        text = f"{stamp} {record.levelname.lower():<8} {record.getMessage()}{extra}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``event`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str = "info", fmt: str = "console") -> None:
    """Send ``strata.*`` logs to stderr at ``level`` in ``fmt`` (``console`` or ``json``)."""
    logger = logging.getLogger("strata")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
