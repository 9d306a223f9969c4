"""Baselines: each cell's engine with none of the template's hardening, and the
naive patterns of tutorials, so that every figure of a cell has context.

Each server answers as a cell does (a ``wait`` request first waits 50 ms), binds
a free port on 127.0.0.1, says where on stderr as the cells do, and has no size
limit, timeout, connection cap or graceful stop: SIGTERM ends it at once.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

WAIT_SECONDS = 0.05
POOL_SIZE = 16  # as the threadpool cells' default


def listening(address: tuple[str, int], what: str) -> None:
    print(f"listening on {address[0]}:{address[1]} ({what})", file=sys.stderr)


def free_address() -> tuple[str, int]:
    """A free port on 127.0.0.1, for a server that wants a port number, not 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address: tuple[str, int] = probe.getsockname()
        return address


def run_asyncio(main: Callable[[], Awaitable[None]]) -> None:
    """Run on uvloop where it is installed, as the asyncio cells do."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


class PoolMixIn:
    """socketserver's process_request on a fixed pool of threads, unbounded queue."""

    pool = ThreadPoolExecutor(POOL_SIZE)

    def process_request(self, request: socket.socket, client_address: object) -> None:
        self.pool.submit(self.serve_one, request, client_address)

    def serve_one(self, request: socket.socket, client_address: object) -> None:
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
        finally:
            self.shutdown_request(request)  # type: ignore[attr-defined]
