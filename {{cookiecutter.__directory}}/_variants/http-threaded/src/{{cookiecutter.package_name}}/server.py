"""Thread per connection: Flask, each connection served by a thread of its own, capped.

Each connection gets a thread for as long as it stays open, which reads its
requests, runs the application on each and sends the responses, keep-alive and
pipelined (connection.py), so a slow view holds up only its own client. Threads
cost memory (a stack each) and scheduling, so the connections at once are capped
by max_connections; more get a 503. For many thousands of keep-alive or idle
connections, switch to threadpool or asyncio. See conversation.py for HTTP,
wsgi.py for the application, threads.py for what the thread models share.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .app import create_app
from .config import setting
from .connection import ThreadedServer
from .conversation import conversations, refusal
from .limits import HttpSettings
from .tls import ServerTLS
from .wsgi import Handler

__all__ = ["Handler", "Settings", "serve"]

MODEL = "http, threaded: Flask, a thread per connection"


@dataclass(frozen=True)
class Settings(HttpSettings):
    max_connections: int = setting(
        2000, "connections open at once, a thread each; more get a 503", minimum=1
    )


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = create_app,
    tls: ServerTLS | None = None,
) -> None:
    """Serve each connection on a thread of its own until SIGTERM or SIGINT."""
    server = ThreadedServer(
        sock,
        conversations(handler, settings, sock),
        refusal,
        max_connections=settings.max_connections,
        tls=tls,
        own_threads=True,
    )
    server.serve(MODEL, settings.shutdown_timeout)
