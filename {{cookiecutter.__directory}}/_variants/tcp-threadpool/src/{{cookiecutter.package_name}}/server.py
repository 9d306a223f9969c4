"""Thread pool: one thread reads and writes every client; a fixed pool runs the handler.

The I/O thread (pool.py) holds every connection, parked while it is idle, and
hands each complete request line to one of pool_size worker threads; a worker is
back in the pool as soon as the handler returns. Thousands of clients, idle or
slow, cost file descriptors and buffers, while the handlers running at once (and
the threads and memory they take) stay bounded by the pool. Requests wait for a
free worker in the order they came, for at most the idle timeout, and then get
``ERROR server busy``; clients beyond max_connections get it at once. See
conversation.py for the line protocol's state, threads.py for what the thread
models share.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

from .conversation import Handler, LineConversation, refusal
from .handler import handle
from .pool import PoolServer, PoolSettings
from .protocol import LineSettings
from .tls import ServerTLS

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, threadpool: one I/O thread, {} worker threads"


@dataclass(frozen=True)
class Settings(PoolSettings, LineSettings):
    pass


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Serve clients until SIGTERM or SIGINT, their requests on the pool."""
    server = PoolServer(
        sock,
        functools.partial(LineConversation, handler, settings),
        refusal,
        pool_size=settings.pool_size,
        max_connections=settings.max_connections,
        tls=tls,
        queue_timeout=settings.idle_timeout,
    )
    server.serve(MODEL.format(settings.pool_size), settings.shutdown_timeout)
