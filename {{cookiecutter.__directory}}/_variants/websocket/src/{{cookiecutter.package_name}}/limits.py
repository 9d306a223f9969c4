"""The limits every WebSocket server here enforces, whatever its concurrency model."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from websockets.frames import Close
from websockets.typing import Origin

from . import config, metrics
from .config import setting

# What a browser sends as Origin: a scheme, a host and maybe a port; no path.
ORIGIN = re.compile(r"https?://[^/\s,*]+")
# The close codes the server sends a client that broke the protocol, by the kind
# of protocol error its metrics count (see metrics.ERRORS).
CLOSE_ERRORS = {1009: "oversize", 1002: "malformed", 1007: "malformed"}
PING_TIMEOUT = (1011, "keepalive ping timeout")  # websockets' words for it
# At a stop, how long a client has to answer the server's close frame: one that
# never does must not hold the process past its shutdown timeout.
STOP_CLOSE_SECONDS = 2.0


@functools.cache  # once per process
def closes() -> metrics.ByLabel:
    return metrics.meters().counter_by(
        "websocket_closes",
        "WebSockets closed, by the close code the server sent",
        "code",
    )


def count_close(close: Close | None) -> None:
    """A connection has ended with the server's close frame, if it sent one:
    count its code, and the protocol error it told the client of, if any."""
    if close is None:
        return
    closes().labels(str(close.code)).inc()
    errors = metrics.meters().errors
    if (close.code, close.reason) == PING_TIMEOUT:
        errors["timeout"].inc()
    elif (kind := CLOSE_ERRORS.get(close.code)) is not None:
        errors[kind].inc()


@dataclass(frozen=True)
class WebSocketSettings(config.Settings):
    """The settings of any server, and the sizes and timeouts of WebSocket clients."""

    idle_timeout: float = setting(
        10.0,
        "seconds a client has to complete the opening handshake",
        minimum=0.001,
        maximum=config.DAY_SECONDS,
    )
    max_message_bytes: int = setting(
        1024**2,
        "largest message a client may send, in bytes; more closes with 1009",
        minimum=1,
        maximum=2**31,
    )
    max_queue: int = setting(
        4,
        "messages received but not yet handled, per client, before the server "
        "stops reading from it; a client can hold this many, plus one, times the "
        "largest message in memory",
        minimum=1,
        maximum=1024,
    )
    compression: bool = setting(
        False,
        "permessage-deflate: less bandwidth for text, but a client can then send a "
        "message of the largest size in a thousandth of it",
    )
    ping_interval: float = setting(
        20.0,
        "seconds between the pings that find dead clients",
        minimum=0.001,
        maximum=config.DAY_SECONDS,
    )
    ping_timeout: float = setting(
        20.0,
        "seconds a client has to answer a ping before it is closed",
        minimum=0.001,
        maximum=config.DAY_SECONDS,
    )
    origins: str = setting(
        "*",
        "comma-separated origins a browser may connect from, such as "
        "https://example.com; * for any",
    )
    access_log: bool = setting(True, "log one line per handshake and per page")
    log_probes: bool = setting(False, "log health checks (GET /healthz) too")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.origins != "*":
            for origin in self.origins.split(","):
                if not ORIGIN.fullmatch(origin.strip()):
                    raise config.ConfigError(
                        f"{config.env_var('origins')}={self.origins!r}: expected * or "
                        f"origins such as https://example.com:8443, comma-separated, "
                        f"not {origin.strip()!r}"
                    )

    def serve_options(self) -> dict[str, Any]:
        """These settings as websockets' serve() takes them, in every model."""
        return {
            "origins": self.allowed_origins(),
            "compression": "deflate" if self.compression else None,
            "open_timeout": self.idle_timeout,
            "close_timeout": self.idle_timeout,
            "max_size": self.max_message_bytes,
            "max_queue": self.max_queue,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
        }

    def allowed_origins(self) -> list[Origin | None] | None:
        """What websockets' `origins` takes: None for any; else the list, plus None
        for clients that send no Origin (they are not browsers)."""
        if self.origins == "*":
            return None
        return [Origin(origin.strip()) for origin in self.origins.split(",")] + [None]
