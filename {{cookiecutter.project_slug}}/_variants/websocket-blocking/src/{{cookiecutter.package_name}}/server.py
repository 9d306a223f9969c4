"""Blocking: one client at a time, served by the thread that accepts it.

The baseline, and honest about it: a WebSocket stays open, so while one client
is connected the next waits in the listen backlog until the first leaves (or its
pings go unanswered). The simplest model to reason about (no shared state, no
locks), and the right one only for a single client at a time, such as a device
talking to its controller; otherwise switch to threadpool or asyncio. See base.py
and threads.py for what the thread models share.
"""

from __future__ import annotations

import socket

from .base import Handler, WebSocketServer, create_server
from .handler import handle
from .limits import WebSocketSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "websocket, blocking: one client at a time"

# One client at a time needs no connection limit: the WebSocket settings suffice.
Settings = WebSocketSettings


def serve(settings: Settings, sock: socket.socket, handler: Handler = handle) -> None:
    """Serve one client at a time until SIGTERM or SIGINT."""
    server = create_server(WebSocketServer, settings, sock, handler, max_connections=1)
    run(server, MODEL, settings.shutdown_timeout)
