"""Blocking: Flask, one connection at a time.

The baseline, and honest about it: while one connection is served, the next
client waits in the listen backlog. A connection is answered the requests it has
sent (pipelined ones too), then closed, so a client holds the server only for
its requests, and a client that trickles its request only until the idle
timeout. The right model only when requests are few and quick and clients can
wait; otherwise switch to threadpool or asyncio. See conversation.py for HTTP,
wsgi.py for the application, connection.py for how a connection is served.
"""

from __future__ import annotations

import socket

from .app import create_app
from .connection import ThreadedServer
from .conversation import conversations, refusal
from .limits import HttpSettings
from .tls import ServerTLS
from .wsgi import Handler

__all__ = ["Handler", "Settings", "serve"]

MODEL = "http, blocking: Flask, one connection at a time"

# One connection at a time needs no connection limit: the HTTP settings suffice.
Settings = HttpSettings


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = create_app,
    tls: ServerTLS | None = None,
) -> None:
    """Serve one connection at a time until SIGTERM or SIGINT."""
    server = ThreadedServer(
        sock,
        conversations(handler, settings, sock, keep_alive=False),
        refusal,
        max_connections=1,
        tls=tls,
        own_threads=False,
    )
    server.serve(MODEL, settings.shutdown_timeout)
