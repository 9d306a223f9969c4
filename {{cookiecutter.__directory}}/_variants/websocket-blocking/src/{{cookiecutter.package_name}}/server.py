"""Blocking: one client at a time, served by the thread that accepts it.

The baseline, and honest about it: a WebSocket stays open, so while one client
is connected the next waits in the listen backlog until the first leaves (or its
pings go unanswered). The simplest model to reason about (no shared state, no
locks), and the right one only for a single client at a time, such as a device
talking to its controller; otherwise switch to threadpool or asyncio. See
conversation.py for the WebSocket's state, connection.py for how a connection is
served, threads.py for what the thread models share.
"""

from __future__ import annotations

import functools
import socket

from .connection import ThreadedServer
from .conversation import Handler, WebSocketConversation, refusal
from .handler import handle
from .limits import WebSocketSettings
from .tls import ServerTLS

__all__ = ["Handler", "Settings", "serve"]

MODEL = "websocket, blocking: one client at a time"

# One client at a time needs no connection limit: the WebSocket settings suffice.
Settings = WebSocketSettings


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Serve one client at a time until SIGTERM or SIGINT."""
    server = ThreadedServer(
        sock,
        functools.partial(WebSocketConversation, handler, settings),
        refusal,
        max_connections=1,
        tls=tls,
        own_threads=False,
        refuse_after_grace=True,
    )
    server.serve(MODEL, settings.shutdown_timeout)
