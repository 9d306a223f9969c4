"""Thread pool: socketserver.TCPServer whose connections are served by a fixed pool.

pool_size worker threads serve clients; up to max_connections - pool_size more wait
in the pool's queue for a free worker (for at most the idle timeout), and clients
beyond that get ``ERROR server busy`` at once instead of hanging. Memory and
thread count stay bounded whatever the load. A worker is held for a client's whole
connection, so many idle clients starve the pool: for those, switch to asyncio.
See base.py for what every thread model shares.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .base import Handler, LineServer, create_server
from .handler import handle
from .pool import PoolSettings, ThreadPoolMixIn
from .protocol import LineSettings
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, threadpool: {} worker threads"


@dataclass(frozen=True)
class Settings(PoolSettings, LineSettings):
    pass


class ThreadPoolServer(ThreadPoolMixIn, LineServer):
    pass


def serve(settings: Settings, sock: socket.socket, handler: Handler = handle) -> None:
    """Serve clients on the pool until SIGTERM or SIGINT."""
    server = create_server(
        ThreadPoolServer,
        settings,
        sock,
        handler,
        pool_size=settings.pool_size,
        max_connections=settings.max_connections,
    )
    run(server, MODEL.format(settings.pool_size), settings.shutdown_timeout)
