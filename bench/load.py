"""The load generator: asyncio clients for each protocol over loopback, and wrk
for HTTP where it is installed.

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
import re
import ssl
import statistics
import time
from asyncio.subprocess import PIPE
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

Address = tuple[str, int]
TIMEOUT_SECONDS = 10.0
CLOSE_SECONDS = 1.0
IDLE_CONNECT_SECONDS = 1.5
IDLE_BATCH = 100  # below every server's listen backlog (128)
SETTLE_SECONDS = 0.5
T = TypeVar("T")


@dataclass
class Tally:
    """What the clients of one run saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def figures(self, seconds: float) -> Figures:
        latencies = sorted(self.latencies)
        if not latencies:
            return Figures(0, 0, None, None, self.errors, "asyncio")
        return Figures(
            requests=len(latencies),
            per_second=round(len(latencies) / seconds),
            p50_ms=round(statistics.median(latencies) * 1000, 2),
            p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            errors=self.errors,
            client="asyncio",
        )


@dataclass(frozen=True)
class Figures:
    """One run's figures, whichever client measured them."""

    requests: int
    per_second: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    client: str


class Connection:
    """One client connection that makes requests of one protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.open = True  # False once the server said it closes

    @classmethod
    async def connect(
        cls, protocol: str, address: Address, tls: ssl.SSLContext | None = None
    ) -> Connection:
        reader, writer = await asyncio.open_connection(*address, ssl=tls)
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
        if not status.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
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
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_SECONDS)


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
    tls: ssl.SSLContext | None,
) -> None:
    """Requests back to back until the deadline; a new connection when the server
    closes one, or for every request when `per_request`."""
    connection: Connection | None = None
    # A short run waits no longer than it runs for an answer (a full server's
    # backlog can hold a connection until the kernel gives up).
    timeout = min(TIMEOUT_SECONDS, max(1.0, deadline - time.monotonic()))
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                if connection is None:
                    connection = await Connection.connect(protocol, address, tls)
                await connection.request(protocol, path)
            tally.latencies.append(time.perf_counter() - started)
            if per_request or not connection.open:
                await connection.close()
                connection = None
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            tally.errors += 1
            if connection is not None:
                connection.writer.transport.abort()
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
    use_wrk: bool = False,
    tls: ssl.SSLContext | None = None,
) -> Figures:
    """Run `clients` clients for `seconds`, over TLS with a `tls` context; return
    what they saw."""
    if use_wrk and protocol == "http":
        scheme = "https" if tls else "http"
        return await wrk(
            f"{scheme}://{address[0]}:{address[1]}{path}", clients, seconds, per_request
        )
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            client(protocol, address, path, deadline, tally, per_request, tls)
            for _ in range(clients)
        )
    )
    return tally.figures(time.monotonic() - started)


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop where it is installed: the client should cost little."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def client_context() -> ssl.SSLContext:
    """The TLS clients': they check nothing, so that what is measured is the
    server's side of TLS (Python's defaults otherwise: TLS 1.3, its ciphers)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def wrk(url: str, clients: int, seconds: float, per_request: bool) -> Figures:
    """The same run by wrk (one thread: the load generator has one CPU)."""
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s"]
    command += ["--latency", f"--timeout={TIMEOUT_SECONDS:.0f}s"]
    if per_request:
        command += ["-H", "Connection: close"]
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=PIPE, stderr=PIPE
    )
    out, err = await process.communicate()
    report = out.decode()
    if b"unable to connect" in err:  # wrk gives up at once: nothing served
        return Figures(0, 0, None, None, clients, "wrk")
    if process.returncode or "requests in" not in report:
        raise RuntimeError(f"wrk failed: {report}{err.decode()}")

    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, report, re.MULTILINE)
        if match is None and default is None:
            raise RuntimeError(f"no {pattern!r} in wrk's report: {report}")
        return match[1] if match else default  # type: ignore[return-value]

    def latency_ms(percent: int) -> float:
        figure = find(rf"^\s+{percent}%\s+(\S+)\s*$")  # e.g. 2.46s, 57.57ms
        value, unit = re.fullmatch(r"([\d.]+)(\w+)", figure).groups()  # type: ignore[union-attr]
        return round(float(value) * WRK_UNITS[unit], 2)

    # wrk counts every answer; a refusal (503) is an error here, as for our clients.
    refused = int(find(r"Non-2xx or 3xx responses: (\d+)", "0"))
    answered = int(find(r"(\d+) requests in"))
    elapsed = float(find(r"requests in ([\d.]+)s"))
    socket_errors = re.findall(r"(?:connect|read|write|timeout) (\d+)", report)
    return Figures(
        requests=answered - refused,
        per_second=round((answered - refused) / elapsed),
        p50_ms=latency_ms(50),
        p99_ms=latency_ms(99),
        errors=sum(map(int, socket_errors)) + refused,
        client="wrk",
    )


async def hold_idle(
    protocol: str, address: Address, count: int, descriptors: Callable[[], int]
) -> list[Connection]:
    """Open up to `count` connections, a batch at a time, and leave them idle
    (handshake done for WebSocket); return those the server did not refuse.

    `descriptors()` counts the server's open files: each batch waits until the
    server has taken it (the count stops moving), so that the listen backlog never
    overflows. It stops when the server takes none of a batch (it is full and
    leaves them in the backlog) or refuses most of one.
    """

    async def connect() -> Connection | None:
        try:
            async with asyncio.timeout(IDLE_CONNECT_SECONDS):
                return await Connection.connect(protocol, address)
        except (OSError, TimeoutError):
            return None

    opened: list[Connection] = []
    while len(opened) < count:
        size = min(IDLE_BATCH, count - len(opened))
        before = descriptors()
        connected = await asyncio.gather(*(connect() for _ in range(size)))
        batch = [connection for connection in connected if connection is not None]
        taken = await settle(descriptors, before) > before
        silent = await asyncio.gather(*(connection.silent() for connection in batch))
        for connection, quiet in zip(batch, silent, strict=True):
            if quiet:
                opened.append(connection)
            else:  # refused
                connection.writer.transport.abort()
        if not taken or sum(silent) < size / 2:
            break
    return opened


async def settle(count: Callable[[], int], start: int) -> int:
    """Wait until `count()` has moved from `start` and then kept still a moment,
    or SETTLE_SECONDS have passed; its last value."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last, still = count(), 0
    while time.monotonic() < deadline and still < 3:
        await asyncio.sleep(0.02)
        now = count()
        still = still + 1 if now == last and now != start else 0
        last = now
    return last
