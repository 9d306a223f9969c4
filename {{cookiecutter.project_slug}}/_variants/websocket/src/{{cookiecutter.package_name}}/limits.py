"""The limits every WebSocket server here enforces, whatever its concurrency model."""

from __future__ import annotations

from dataclasses import dataclass

from websockets.typing import Origin

from . import config
from .config import setting


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
        16,
        "messages received but not yet handled, per client, before the server "
        "stops reading from it",
        minimum=1,
        maximum=1024,
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

    def allowed_origins(self) -> list[Origin | None] | None:
        """What websockets' `origins` takes: None for any; else the list, plus None
        for clients that send no Origin (they are not browsers)."""
        if self.origins == "*":
            return None
        return [Origin(origin.strip()) for origin in self.origins.split(",")] + [None]
