"""The load generator: asyncio clients for each protocol, over loopback.

Each client opens a connection, makes requests back to back (or one per
connection) until the deadline, and records each request's latency. The client
for a protocol is the least that protocol needs, so that the client costs little
beside the server it measures.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Address = tuple[str, int]
TIMEOUT_SECONDS = 10.0
IDLE_CONNECT_SECONDS = 1.0


@dataclass
class Tally:
    """What the clients of one run saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0


class Connection:
    """One client connection that makes requests of one protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.open = True  # False once the server said it closes

    @classmethod
    async def connect(cls, protocol: str, address: Address, path: str) -> Connection:
        reader, writer = await asyncio.open_connection(*address)
        connection = cls(reader, writer)
        if protocol == "websocket":
            await connection.websocket_handshake()
        return connection

    async def request(self, protocol: str, path: str) -> None:
        await REQUESTS[protocol](self, path)

    async def tcp(self, path: str) -> None:
        self.writer.write(path.encode() + b"\n")
        answer = await self.reader.readline()
        if not answer.endswith(b"\n") or answer.startswith(b"ERROR "):
            raise ConnectionError(f"answered {answer!r}")

    async def http(self, path: str) -> None:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status = await self.reader.readline()
        if not status.startswith(b"HTTP/1.1 200 "):
            raise ConnectionError(f"answered {status!r}")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                self.open = False
        await self.reader.readexactly(length)

    async def websocket_handshake(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        if not (await self.reader.readline()).startswith(b"HTTP/1.1 101 "):
            raise ConnectionError("handshake refused")
        while await self.reader.readline() not in (b"\r\n", b""):
            pass

    async def websocket(self, path: str) -> None:
        payload = path.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        header = await self.reader.readexactly(2)
        await self.reader.readexactly(header[1] & 0x7F)

    async def silent(self) -> bool:
        """Whether the server has neither said anything (a refusal) nor closed."""
        try:
            async with asyncio.timeout(0.01):
                await self.reader.read(1)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT_SECONDS)


REQUESTS: dict[str, Callable[[Connection, str], Awaitable[None]]] = {
    "tcp": Connection.tcp,
    "http": Connection.http,
    "websocket": Connection.websocket,
}


async def client(
    protocol: str,
    address: Address,
    path: str,
    deadline: float,
    tally: Tally,
    per_request: bool,
) -> None:
    """Requests back to back until the deadline; a new connection when the server
    closes one, or for every request when `per_request`."""
    connection: Connection | None = None
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                if connection is None:
                    connection = await Connection.connect(protocol, address, path)
                await connection.request(protocol, path)
            tally.latencies.append(time.perf_counter() - started)
            if per_request or not connection.open:
                await connection.close()
                connection = None
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            tally.errors += 1
            if connection is not None:
                await connection.close()
                connection = None
            await asyncio.sleep(0.01)  # a refused client does not spin
    if connection is not None:
        await connection.close()


async def drive(
    protocol: str,
    address: Address,
    *,
    clients: int,
    seconds: float,
    path: str,
    per_request: bool = False,
) -> Tally:
    """Run `clients` clients for `seconds`; return what they saw."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(
            client(protocol, address, path, deadline, tally, per_request)
            for _ in range(clients)
        )
    )
    return tally


async def hold_idle(protocol: str, address: Address, count: int) -> list[Connection]:
    """Open up to `count` connections and leave them idle (handshake done for
    WebSocket); return those the server holds (it refuses none of them)."""
    opened: list[Connection] = []
    if not count:
        return opened
    for _ in range(count):
        try:
            async with asyncio.timeout(IDLE_CONNECT_SECONDS):
                opened.append(await Connection.connect(protocol, address, "/"))
        except (OSError, TimeoutError):
            break  # the server holds no more (its backlog may take a few more)
    await asyncio.sleep(0.5)  # refusals arrive
    still = await asyncio.gather(*(connection.silent() for connection in opened))
    return [connection for connection, held in zip(opened, still, strict=True) if held]
