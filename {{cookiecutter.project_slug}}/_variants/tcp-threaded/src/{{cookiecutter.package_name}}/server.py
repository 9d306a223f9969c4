"""Thread per connection: socketserver.ThreadingTCPServer, capped.

Each client gets a thread of its own for as long as it stays connected, so slow
handlers and idle clients do not hold up others. Threads cost memory (a stack each)
and scheduling, so the number of clients at once is capped by max_connections;
clients beyond it get ``ERROR server busy``. For thousands of mostly idle clients,
switch to asyncio. See base.py for what every thread model shares.
"""

from __future__ import annotations

import socket
import socketserver
from dataclasses import dataclass

from .base import Handler, LineServer, create_server
from .config import setting
from .handler import handle
from .protocol import LineSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, threaded: a thread per connection"


@dataclass(frozen=True)
class Settings(LineSettings):
    max_connections: int = setting(
        200, "clients served at once; more are refused", minimum=1
    )


class Server(socketserver.ThreadingMixIn, LineServer):
    daemon_threads = True  # a stop after the drain timeout must not wait for them
    block_on_close = False  # base.run waits for connections itself, with a deadline


def serve(settings: Settings, sock: socket.socket, handler: Handler = handle) -> None:
    """Serve each client on a thread of its own until SIGTERM or SIGINT."""
    server = create_server(
        Server, settings, sock, handler, max_connections=settings.max_connections
    )
    run(server, MODEL, settings.shutdown_timeout)
