"""Thread pool: Flask on werkzeug's WSGI handler, served by a fixed pool of threads.

pool_size worker threads serve connections; up to max_connections - pool_size
more wait in the pool's queue (for at most the idle timeout), and clients beyond
that get a 503 at once. Memory and thread count stay bounded whatever the load, and
a blocking view (a database driver, a file) holds up only its own worker. See
threads.py, pool.py and base.py for what the thread models share.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .app import create_app
from .base import Handler, WsgiServer, create_server
from .limits import HttpSettings
from .pool import PoolSettings, ThreadPoolMixIn
from .threads import run

__all__ = ["Handler", "Settings", "serve"]

MODEL = "http, threadpool: Flask on werkzeug, {} worker threads"


@dataclass(frozen=True)
class Settings(PoolSettings, HttpSettings):
    pass


class Server(ThreadPoolMixIn, WsgiServer):
    pass


def serve(
    settings: Settings, sock: socket.socket, handler: Handler = create_app
) -> None:
    """Serve connections on the pool until SIGTERM or SIGINT."""
    server = create_server(
        Server,
        settings,
        sock,
        handler,
        pool_size=settings.pool_size,
        max_connections=settings.max_connections,
    )
    run(server, MODEL.format(settings.pool_size), settings.shutdown_timeout)
