"""Blocking: Flask on werkzeug's WSGI handler, one connection at a time.

The baseline, and honest about it: while one request is served, the next client
waits in the listen backlog. Each request has its own connection, so a client
holds the server only for its request, and a client that trickles its request head
only until the idle timeout. The right model only when requests are few and quick
and clients can wait; otherwise switch to threadpool or asyncio. See threads.py
and base.py for what the thread models share.
"""

from __future__ import annotations

import socket

from .app import create_app
from .base import Handler, WsgiServer, create_server
from .limits import HttpSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "http, blocking: Flask on werkzeug, one connection at a time"

# One connection at a time needs no connection limit: the HTTP settings suffice.
Settings = HttpSettings


def serve(
    settings: Settings, sock: socket.socket, handler: Handler = create_app
) -> None:
    """Serve one connection at a time until SIGTERM or SIGINT."""
    server = create_server(WsgiServer, settings, sock, handler, max_connections=1)
    run(server, MODEL, settings.shutdown_timeout)
