"""Thread per connection: Flask on werkzeug's WSGI handler, a thread each, capped.

Each connection gets a thread of its own, so a slow handler only holds up its own
client. Threads cost memory and scheduling, so connections at once are capped by
max_connections; beyond it, clients get a 503. werkzeug answers one request per
connection, so every request pays for a new connection and a new thread. For many
clients, switch to threadpool or asyncio. See threads.py and base.py for what the
thread models share.
"""

from __future__ import annotations

import socket
import socketserver
from dataclasses import dataclass

from .app import create_app
from .base import Handler, WsgiServer, create_server
from .config import setting
from .limits import HttpSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "http, threaded: Flask on werkzeug, a thread per connection"


@dataclass(frozen=True)
class Settings(HttpSettings):
    max_connections: int = setting(
        200, "connections served at once; more get a 503", minimum=1
    )


class Server(socketserver.ThreadingMixIn, WsgiServer):
    daemon_threads = True  # a stop after the drain timeout must not wait for them
    block_on_close = False  # threads.run waits for connections itself, with a deadline


def serve(
    settings: Settings, sock: socket.socket, handler: Handler = create_app
) -> None:
    """Serve each connection on a thread of its own until SIGTERM or SIGINT."""
    server = create_server(
        Server, settings, sock, handler, max_connections=settings.max_connections
    )
    run(server, MODEL, settings.shutdown_timeout)
