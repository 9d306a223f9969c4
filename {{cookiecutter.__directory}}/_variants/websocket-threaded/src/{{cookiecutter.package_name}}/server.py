"""Thread per connection: each WebSocket is served by a thread of its own, capped.

Each client gets a thread for as long as it stays connected, which runs its
handshake, reads its messages, runs the handler on each and sends the replies
(connection.py), so a slow handler holds up only its own client. Threads cost
memory (a stack each) and scheduling, so the clients at once are capped by
max_connections; a client beyond it gets a 503 instead of a handshake. For many
thousands of mostly quiet clients, switch to threadpool or asyncio. See
conversation.py for the WebSocket's state, threads.py for what the thread
models share.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

from .config import setting
from .connection import ThreadedServer
from .conversation import Handler, WebSocketConversation, refusal
from .handler import handle
from .limits import WebSocketSettings
from .tls import ServerTLS

__all__ = ["Handler", "Settings", "serve"]

MODEL = "websocket, threaded: a thread per connection"


@dataclass(frozen=True)
class Settings(WebSocketSettings):
    max_connections: int = setting(
        2000, "clients connected at once, a thread each; more get a 503", minimum=1
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
        functools.partial(WebSocketConversation, handler, settings),
        refusal,
        max_connections=settings.max_connections,
        tls=tls,
        own_threads=True,
        refuse_after_grace=True,
    )
    server.serve(MODEL, settings.shutdown_timeout)
