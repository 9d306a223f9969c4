"""Thread pool: one thread reads and writes every connection; a fixed pool runs Flask.

The I/O thread (pool.py) holds every connection, parked while it is idle between
requests, and reads each request whole, head and body, within the limits and the
deadlines, before one of pool_size worker threads runs the application on it; the
worker is back in the pool as soon as the response is made. Thousands of
keep-alive, slow or idle connections cost file descriptors and buffers, while the
requests served at once (and the threads and memory they take) stay bounded by
the pool. Requests wait for a free worker in the order they came, for at most the
idle timeout, then get a 503; connections beyond max_connections get one at once.
See conversation.py for HTTP, wsgi.py for the application, threads.py for what
the thread models share.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .app import create_app
from .conversation import conversations, refusal
from .limits import HttpSettings
from .pool import PoolServer, PoolSettings
from .tls import ServerTLS
from .wsgi import Handler

__all__ = ["Handler", "Settings", "serve"]

MODEL = "http, threadpool: Flask, one I/O thread, {} worker threads"


@dataclass(frozen=True)
class Settings(PoolSettings, HttpSettings):
    pass


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = create_app,
    tls: ServerTLS | None = None,
) -> None:
    """Serve connections until SIGTERM or SIGINT, their requests on the pool."""
    server = PoolServer(
        sock,
        conversations(handler, settings, sock),
        refusal,
        pool_size=settings.pool_size,
        max_connections=settings.max_connections,
        tls=tls,
        queue_timeout=settings.idle_timeout,
    )
    server.serve(MODEL.format(settings.pool_size), settings.shutdown_timeout)
