"""The limits every HTTP server here enforces, whatever its concurrency model."""

from __future__ import annotations

from dataclasses import dataclass

from . import config
from .config import setting


@dataclass(frozen=True)
class HttpSettings(config.Settings):
    """The settings of any server, and the sizes and timeouts of HTTP requests."""

    idle_timeout: float = setting(
        10.0,
        "seconds a client has to send a request's head, then its body, or to take "
        "the response; also how long an idle keep-alive connection stays open",
        minimum=0.001,
        maximum=config.DAY_SECONDS,
    )
    max_header_bytes: int = setting(
        8192,
        "longest request line or header field, in bytes",
        minimum=1024,
        maximum=65536,
    )
    max_body_bytes: int = setting(
        1024**2, "largest request body, in bytes", minimum=0, maximum=2**31
    )
    access_log: bool = setting(True, "log one line per request")
    log_probes: bool = setting(False, "log health checks (GET /healthz) too")
