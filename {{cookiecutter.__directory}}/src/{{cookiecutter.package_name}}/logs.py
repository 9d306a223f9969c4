"""Logging on stderr: plain text for people, one JSON object a line for collectors."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The process id tells worker processes apart (see workers.py); the request id,
# where there is one, the requests of one process.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]%(request)s: %(message)s"
# The request being served where a line is logged: set by the server around the
# user's code, so that its lines carry the id too.
current_request: ContextVar[str | None] = ContextVar("current_request", default=None)
# An X-Request-ID taken as it comes: a token that cannot forge a log line.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id(given: str | None) -> str:
    """The client's request id when it is a sane token, or else a new one."""
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def access(
    logger: logging.Logger,
    client: str,
    request_line: str,
    status: int,
    milliseconds: float,
    request_id: str | None,
) -> None:
    """The access log's line for one request, in every server that has one."""
    logger.info(
        '%s "%s" %s %.1f ms',
        client,
        request_line.encode("unicode_escape").decode(),  # no forged lines
        status,
        milliseconds,
        extra={"request_id": request_id},
    )


class RequestIds(logging.Filter):
    """Puts the id of the request being served on every record (``extra=`` may
    give it instead, for a line logged once the request is over)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request_id", None) or current_request.get()
        # As logging itself adds what `extra=` gives.
        record.__dict__.update(
            request_id=request, request=f" [{request}]" if request else ""
        )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the traceback as a field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            # RFC 3339, with the offset: what collectors parse without guessing.
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if request := getattr(record, "request_id", None):
            entry["request_id"] = request
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
    handler.addFilter(RequestIds())
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
