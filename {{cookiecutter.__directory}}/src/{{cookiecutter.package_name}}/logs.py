"""Logging on stderr: plain text for people, one JSON object a line for collectors."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

# The process id tells worker processes apart (see workers.py).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the traceback as a field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, log_format: str) -> None:
    """Send every record at `level` or above to stderr in `log_format`."""
    handler = logging.StreamHandler()
    formatter = (
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)


def address(sockname: Any) -> str:
    """host:port as people write it, with brackets around an IPv6 host."""
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Throttled:
    """Logs a warning that may repeat at most once per interval, with its count.

    A flood of clients must not become a flood of log lines.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._unreported = 0
        self._last = -interval

    def warning(self, message: str) -> None:
        with self._lock:
            self._unreported += 1
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            count, self._unreported, self._last = self._unreported, 0, now
        if count == 1:
            self.logger.warning("%s", message)
        else:
            self.logger.warning("%s (and %d more like it)", message, count - 1)
