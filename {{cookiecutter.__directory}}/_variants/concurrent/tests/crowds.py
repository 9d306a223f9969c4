"""Crowds of clients for the tests: hundreds of connections from one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Awaitable, Callable

from .serverprocess import Address

TRICKLING_CLIENTS = 200  # slowloris
FLOOD = 1000  # silent connections
BATCH = 100  # connections opened at once
TRICKLE_SECONDS = 0.5  # between the bytes of a client that trickles


def assert_served_beside(
    crowd_size: int,
    address: Address,
    exchange: Callable[[], Awaitable[object]],
    expected: object,
    *,
    first: bytes = b"",
    trickle: bytes = b"",
) -> None:
    """A good client's `exchange` with the server gives `expected` while
    `crowd_size` others hold connections to it, having sent `first` and sending
    `trickle` again and again; and not one of them has been answered or closed
    by then, as their idle timeout would."""

    async def meanwhile() -> None:
        async with (
            crowd(address, crowd_size, first) as clients,
            trickling(clients, trickle),
        ):
            assert await exchange() == expected
            assert not any(client.answered or client.closed for client in clients)

    asyncio.run(meanwhile())


class Watched(asyncio.Protocol):
    """A client connection that notes whatever the server does to it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.answered = self.closed = False

    def data_received(self, data: bytes) -> None:
        self.answered = True

    def eof_received(self) -> None:
        self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


@contextlib.asynccontextmanager
async def crowd(
    address: Address, count: int, first: bytes
) -> AsyncIterator[list[Watched]]:
    """`count` connections to the server, each having sent `first`; closed after
    the block."""
    allow_open_files(count)
    loop = asyncio.get_running_loop()
    clients: list[Watched] = []
    try:
        while len(clients) < count:
            batch = min(BATCH, count - len(clients))
            opened = await asyncio.gather(
                *(loop.create_connection(Watched, *address) for _ in range(batch))
            )
            clients += [client for _, client in opened]
        for client in clients:
            client.transport.write(first)
        yield clients
    finally:
        for client in clients:
            client.transport.abort()


@contextlib.asynccontextmanager
async def trickling(clients: list[Watched], byte: bytes) -> AsyncIterator[None]:
    """The clients send `byte` now, then again and again, slowly, while the
    block runs."""

    async def trickle() -> None:
        while True:
            for client in clients:
                if not client.closed:
                    client.transport.write(byte)
            await asyncio.sleep(TRICKLE_SECONDS)

    if not byte:
        yield
        return
    task = asyncio.create_task(trickle())
    await asyncio.sleep(0)  # the first byte goes out
    try:
        yield
    finally:
        task.cancel()


def allow_open_files(count: int) -> None:
    """Let this process hold `count` more sockets than it may by default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 1024  # and some to spare
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
