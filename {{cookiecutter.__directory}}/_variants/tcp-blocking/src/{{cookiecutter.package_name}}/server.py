"""Blocking: one client at a time, served by the thread that accepts it.

The baseline, and honest about it: while one client is connected, the next waits
in the listen backlog until the first leaves or hits the idle timeout. It is the
simplest model to reason about (no shared state, no locks) and the right one only
when clients are few, short-lived and can wait; otherwise switch to threadpool or
asyncio. See conversation.py for the line protocol's state, connection.py for how
a connection is served, threads.py for what the thread models share.
"""

from __future__ import annotations

import functools
import socket

from .connection import ThreadedServer
from .conversation import Handler, LineConversation, refusal
from .handler import handle
from .protocol import LineSettings
from .tls import ServerTLS

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, blocking: one client at a time"

# One client at a time needs no connection limit: the line server's settings suffice.
Settings = LineSettings


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Serve one client at a time until SIGTERM or SIGINT."""
    server = ThreadedServer(
        sock,
        functools.partial(LineConversation, handler, settings),
        refusal,
        max_connections=1,
        tls=tls,
        own_threads=False,
    )
    server.serve(MODEL, settings.shutdown_timeout)
