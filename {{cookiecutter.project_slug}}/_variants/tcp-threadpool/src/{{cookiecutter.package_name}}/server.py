"""Thread pool: socketserver.TCPServer whose connections are served by a fixed pool.

pool_size worker threads serve clients; up to max_connections - pool_size more wait
in the pool's queue for a free worker, and clients beyond that get
``ERROR server busy`` at once instead of hanging. Memory and thread count stay
bounded whatever the load. A worker is held for a client's whole connection, so
many idle clients starve the pool: for those, switch to asyncio. See base.py for
what every thread model shares.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import config
from .base import Handler, LineServer, run
from .config import ConfigError, env_var, setting
from .handler import handle
from .protocol import DEFAULT_MAX_LINE_BYTES

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, threadpool: {} worker threads"


@dataclass(frozen=True)
class Settings(config.Settings):
    pool_size: int = setting(16, "worker threads serving clients", minimum=1)
    max_connections: int = setting(
        64, "clients served or queued at once; more are refused", minimum=1
    )
    max_line_bytes: int = setting(
        DEFAULT_MAX_LINE_BYTES, "longest request line, in bytes", minimum=1
    )

    def __post_init__(self) -> None:
        if self.max_connections < self.pool_size:
            raise ConfigError(
                f"{env_var('max_connections')}={self.max_connections} is below "
                f"{env_var('pool_size')}={self.pool_size}: workers would sit unused"
            )


class ThreadPoolServer(LineServer):
    """A LineServer whose connections wait for a worker of a fixed pool."""

    def __init__(self, *args: Any, pool_size: int, **limits: Any) -> None:
        self.pool = ThreadPoolExecutor(pool_size, thread_name_prefix="worker")
        super().__init__(*args, **limits)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._serve_on_worker, request, client_address)

    def _serve_on_worker(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def serve(settings: Settings, handler: Handler = handle) -> None:
    """Serve clients on the pool until SIGTERM or SIGINT."""
    server = ThreadPoolServer(
        (settings.host, settings.port),
        handler,
        pool_size=settings.pool_size,
        max_line_bytes=settings.max_line_bytes,
        idle_timeout=settings.idle_timeout,
        max_connections=settings.max_connections,
    )
    run(server, MODEL.format(settings.pool_size), settings.shutdown_timeout)
