"""socketserver's missing mix-in: serve connections on a fixed pool of threads.

Admission (threads.ManagedServer) bounds how many connections wait for a worker;
a connection that waits longer than the idle timeout is turned away.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .config import ConfigError, env_var, flag, setting
from .threads import ManagedServer


@dataclass(frozen=True)
class PoolSettings:
    """The pool's own settings, added to those of the protocol."""

    pool_size: int = setting(16, "worker threads serving clients", minimum=1)
    max_connections: int = setting(
        64, "clients served or queued at once; more are refused", minimum=1
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]  # the protocol's settings
        if self.max_connections < self.pool_size:
            raise ConfigError(
                f"max connections ({self.max_connections}) is below the pool size "
                f"({self.pool_size}): raise {flag('max_connections')} "
                f"({env_var('max_connections')}) or lower {flag('pool_size')} "
                f"({env_var('pool_size')})"
            )


class ThreadPoolMixIn(ManagedServer):
    """Serves each admitted connection on a worker of a fixed pool."""

    def __init__(self, *args: Any, pool_size: int, **kwargs: Any) -> None:
        self.pool = ThreadPoolExecutor(pool_size, thread_name_prefix="worker")
        # (queued at, future, request, client address), oldest first
        self.queue: deque[tuple[float, Future[None], Any, Any]] = deque()
        super().__init__(*args, **kwargs)

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
