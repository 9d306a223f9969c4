"""Thread pool: one thread reads and writes every WebSocket; a pool runs the handler.

The I/O thread (pool.py) holds every connection: it runs the opening handshake,
answers pings, puts messages together from their frames and closes connections,
and hands each whole message to one of pool_size worker threads; the worker is
back in the pool as soon as the handler returns. Thousands of open, mostly quiet
WebSockets cost file descriptors and buffers, while the handlers running at once
(and the threads and memory they take) stay bounded by the pool. Messages wait
for a free worker in the order they came, for at most the idle timeout, then the
client is closed with 1013 (try again later); clients beyond max_connections get
a 503 to their handshake. See conversation.py for the WebSocket's state,
threads.py for what the thread models share.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

from .conversation import Handler, WebSocketConversation, refusal
from .handler import handle
from .limits import WebSocketSettings
from .pool import PoolServer, PoolSettings
from .tls import ServerTLS

__all__ = ["Handler", "Settings", "serve"]

MODEL = "websocket, threadpool: one I/O thread, {} worker threads"


@dataclass(frozen=True)
class Settings(PoolSettings, WebSocketSettings):
    pass


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Serve clients until SIGTERM or SIGINT, their messages on the pool."""
    server = PoolServer(
        sock,
        functools.partial(WebSocketConversation, handler, settings),
        refusal,
        pool_size=settings.pool_size,
        max_connections=settings.max_connections,
        tls=tls,
        queue_timeout=settings.idle_timeout,
    )
    server.serve(MODEL.format(settings.pool_size), settings.shutdown_timeout)
