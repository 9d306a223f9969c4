"""Thread per connection: each client is served by a thread of its own, capped.

Each client gets a thread for as long as it stays connected, which reads its
lines, runs the handler on each and sends the replies (connection.py), so a slow
handler and an idle client hold up no one else. Threads cost memory (a stack
each) and scheduling, so the clients at once are capped by max_connections; more
get ``ERROR server busy``. For many thousands of mostly idle clients, switch to
threadpool or asyncio. See conversation.py for the line protocol's state,
threads.py for what the thread models share.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

from .config import setting
from .connection import ThreadedServer
from .conversation import Handler, LineConversation, refusal
from .handler import handle
from .protocol import LineSettings
from .tls import ServerTLS

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, threaded: a thread per connection"


@dataclass(frozen=True)
class Settings(LineSettings):
    max_connections: int = setting(
        2000, "clients connected at once, a thread each; more are refused", minimum=1
    )


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Serve each client on a thread of its own until SIGTERM or SIGINT."""
    server = ThreadedServer(
        sock,
        functools.partial(LineConversation, handler, settings),
        refusal,
        max_connections=settings.max_connections,
        tls=tls,
        own_threads=True,
    )
    server.serve(MODEL, settings.shutdown_timeout)
