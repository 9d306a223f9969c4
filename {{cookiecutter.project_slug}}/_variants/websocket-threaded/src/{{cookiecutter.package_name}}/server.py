"""Thread per connection: websockets' sync connections, a thread each, capped.

Each client gets a thread of its own for as long as it stays connected (and
websockets adds one more to read its messages), so a slow handler holds up only
its own client. Threads cost memory and scheduling, so clients at once are capped
by max_connections; a client beyond it gets a 503 instead of a handshake. For
thousands of mostly idle clients, switch to asyncio. See base.py and threads.py
for what every thread model shares.
"""

from __future__ import annotations

import socket
import socketserver
from dataclasses import dataclass

from .base import Handler, WebSocketServer, create_server
from .config import setting
from .handler import handle
from .limits import WebSocketSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "websocket, threaded: a thread per connection"


@dataclass(frozen=True)
class Settings(WebSocketSettings):
    max_connections: int = setting(
        200, "clients connected at once, a thread each; more get a 503", minimum=1
    )


class Server(socketserver.ThreadingMixIn, WebSocketServer):
    daemon_threads = True  # a stop after the drain timeout must not wait for them
    block_on_close = False  # threads.run waits for connections itself, with a deadline


def serve(settings: Settings, sock: socket.socket, handler: Handler = handle) -> None:
    """Serve each client on a thread of its own until SIGTERM or SIGINT."""
    server = create_server(
        Server, settings, sock, handler, max_connections=settings.max_connections
    )
    run(server, MODEL, settings.shutdown_timeout)
