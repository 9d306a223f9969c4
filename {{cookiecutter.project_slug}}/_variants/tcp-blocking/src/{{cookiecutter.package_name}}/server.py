"""Blocking: one client at a time, served by the thread that accepts it.

The baseline, and honest about it: while one client is connected, the next waits in
the listen backlog until the first leaves or hits the idle timeout. It is the
simplest model to reason about (no shared state, no locks) and the right one only
when clients are few, short-lived and can wait; otherwise switch to threadpool or
asyncio. Built on socketserver.TCPServer; see base.py for what every thread model
shares.
"""

from __future__ import annotations

import socket

from .base import Handler, LineServer, create_server
from .handler import handle
from .protocol import LineSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, blocking: one client at a time"


# One client at a time needs no connection limit: the line server's settings suffice.
Settings = LineSettings


def serve(settings: Settings, sock: socket.socket, handler: Handler = handle) -> None:
    """Serve one client at a time until SIGTERM or SIGINT."""
    server = create_server(LineServer, settings, sock, handler, max_connections=1)
    run(server, MODEL, settings.shutdown_timeout)
