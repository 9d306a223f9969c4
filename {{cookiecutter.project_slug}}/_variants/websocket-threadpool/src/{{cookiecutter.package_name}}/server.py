"""Thread pool: websockets' sync connections, served by a fixed pool of threads.

pool_size worker threads serve clients, a client per worker for as long as it
stays connected; up to max_connections - pool_size more wait in the pool's queue
for a free worker (for at most the idle timeout), and clients beyond that get a
503 at once instead of hanging. Memory and thread count stay bounded whatever the
load. WebSocket clients tend to stay connected, so size the pool for the clients
you expect at once; for many idle clients, switch to asyncio. See base.py,
threads.py and pool.py for what the thread models share.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .base import Handler, WebSocketServer, create_server
from .handler import handle
from .limits import WebSocketSettings
from .pool import PoolSettings, ThreadPoolMixIn
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "websocket, threadpool: {} worker threads"


@dataclass(frozen=True)
class Settings(PoolSettings, WebSocketSettings):
    pass


class Server(ThreadPoolMixIn, WebSocketServer):
    pass


def serve(settings: Settings, sock: socket.socket, handler: Handler = handle) -> None:
    """Serve clients on the pool until SIGTERM or SIGINT."""
    server = create_server(
        Server,
        settings,
        sock,
        handler,
        pool_size=settings.pool_size,
        max_connections=settings.max_connections,
    )
    run(server, MODEL.format(settings.pool_size), settings.shutdown_timeout)
