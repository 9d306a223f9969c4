"""Thread pool: socketserver.TCPServer whose connections are served by a fixed pool.

pool_size worker threads serve clients; up to max_connections - pool_size more wait
in the pool's queue for a free worker (for at most the idle timeout), and clients
beyond that get ``ERROR server busy`` at once instead of hanging. Memory and
thread count stay bounded whatever the load. A worker is held for a client's whole
connection, so many idle clients starve the pool: for those, switch to asyncio.
See base.py for what every thread model shares.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .base import Handler, LineServer, run
from .config import ConfigError, env_var, flag, setting
from .handler import handle
from .protocol import LineSettings

__all__ = ["Handler", "Settings", "serve"]

MODEL = "tcp, threadpool: {} worker threads"


@dataclass(frozen=True)
class Settings(LineSettings):
    pool_size: int = setting(16, "worker threads serving clients", minimum=1)
    max_connections: int = setting(
        64, "clients served or queued at once; more are refused", minimum=1
    )

    def __post_init__(self) -> None:
        if self.max_connections < self.pool_size:
            raise ConfigError(
                f"max connections ({self.max_connections}) is below the pool size "
                f"({self.pool_size}): raise {flag('max_connections')} "
                f"({env_var('max_connections')}) or lower {flag('pool_size')} "
                f"({env_var('pool_size')})"
            )


class ThreadPoolServer(LineServer):
    """A LineServer whose connections wait for a worker of a fixed pool."""

    def __init__(self, *args: Any, pool_size: int, **limits: Any) -> None:
        self.pool = ThreadPoolExecutor(pool_size, thread_name_prefix="worker")
        # (queued at, future, request, client address), oldest first
        self.queue: deque[tuple[float, Future[None], Any, Any]] = deque()
        super().__init__(*args, **limits)

    def process_request(self, request: Any, client_address: Any) -> None:
        future = self.pool.submit(self._serve_on_worker, request, client_address)
        self.queue.append((time.monotonic(), future, request, client_address))

    def _serve_on_worker(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def service_actions(self) -> None:
        """Turn away clients that waited for a worker longer than the idle timeout.

        The accept loop calls this between accepts, several times a second.
        """
        too_old = time.monotonic() - self.idle_timeout
        while self.queue:
            queued_at, future, request, client_address = self.queue[0]
            if queued_at > too_old and not (future.running() or future.done()):
                return
            self.queue.popleft()
            if future.cancel():  # it never started: the connection is ours to close
                self.refuse(request, client_address, "server busy")
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
