"""asyncio: one event loop serves every client, each connection a task.

An idle client costs a few kilobytes instead of a thread, so thousands of mostly
idle clients are cheap, and a handler that awaits I/O lets the others run. The price:
a handler that blocks (CPU work, a blocking library call) stalls every client, so
move such work off the loop with ``asyncio.to_thread``. Uses uvloop when it is
installed (``pip install '.[uvloop]'``), the standard loop otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import config, logs, protocol
from .config import setting
from .handler import handle
from .protocol import DEFAULT_MAX_LINE_BYTES, Event, LineProtocol, Request

try:
    import uvloop
except ImportError:  # optional: the standard event loop serves the same
    uvloop = None

__all__ = ["Handler", "Settings", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[str]]
RECV_BYTES = 64 * 1024
LINGER_SECONDS = 1.0  # how long a closing connection waits on the client
MODEL = "tcp, asyncio with {}"


@dataclass(frozen=True)
class Settings(config.Settings):
    max_connections: int = setting(
        1000, "clients served at once; more are refused", minimum=1
    )
    max_line_bytes: int = setting(
        DEFAULT_MAX_LINE_BYTES, "longest request line, in bytes", minimum=1
    )


class Connection:
    """One client: read lines and answer each, until EOF, an error or a timeout."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: Settings,
        handler: Handler,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.settings, self.handler = settings, handler
        self.busy = False  # answering a request: a stop lets it finish
        self.stopping = False

    async def serve(self) -> None:
        framing = LineProtocol(self.settings.max_line_bytes)
        try:
            while not self.stopping and (events := await self._receive(framing)):
                self.busy = True
                for event in events:
                    if isinstance(event, Request):
                        await self._send(await self._respond(event.text))
                        continue
                    await self._send(protocol.error(event.reason))
                    if event.close:
                        await self._linger()
                        return
                self.busy = False
        except OSError as error:  # reset, broken pipe
            log.debug("%s: %s", self.peer, error)
        finally:
            await self._close()

    @property
    def peer(self) -> str:
        return logs.address(self.writer.get_extra_info("peername"))

    async def _receive(self, framing: LineProtocol) -> list[Event]:
        """The next events; none once the client is gone or too slow."""
        try:
            async with asyncio.timeout(self.settings.idle_timeout):
                while data := await self.reader.read(RECV_BYTES):
                    if events := framing.receive_data(data):
                        return events
        except TimeoutError:
            await self._send(protocol.error("idle timeout"))
        return []

    async def _respond(self, text: str) -> bytes:
        try:
            return protocol.reply(await self.handler(text))
        except Exception:
            log.exception("handler failed; the client gets an error line")
            return protocol.error("internal error")

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        try:
            async with asyncio.timeout(self.settings.idle_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise ConnectionError("client stopped reading") from None

    async def refuse(self, reason: str) -> None:
        """Turn the client away with an error line."""
        log.warning("refused %s: %s", self.peer, reason)
        with contextlib.suppress(OSError):
            await self._send(protocol.error(reason))
        await self._close()

    async def _linger(self) -> None:
        """Stop sending and drain the client a while before the close.

        Closing a socket with unread input sends a reset, which can destroy the error
        line before the client reads it.
        """
        if self.writer.can_write_eof():
            self.writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_SECONDS):
                while await self.reader.read(RECV_BYTES):
                    pass

    async def _close(self) -> None:
        """Close once the last bytes are out, or drop the connection if they cannot."""
        self.writer.close()
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                await self.writer.wait_closed()
        except (TimeoutError, OSError):
            self.writer.transport.abort()


async def serve_until_stopped(settings: Settings, handler: Handler) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight requests finish."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.done():  # a second signal changes nothing: the drain is bounded
            stop.set_result(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    connections: dict[asyncio.Task[None], Connection] = {}

    async def accept(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connection = Connection(reader, writer, settings, handler)
        if len(connections) >= settings.max_connections:
            await connection.refuse("server busy")
            return
        task = asyncio.current_task()
        assert task is not None
        connections[task] = connection
        try:
            await connection.serve()
        finally:
            del connections[task]

    server = await asyncio.start_server(
        accept, settings.host, settings.port, backlog=128
    )
    address = logs.address(server.sockets[0].getsockname())
    loop_name = "uvloop" if uvloop is not None else "the standard event loop"
    log.info("listening on %s (%s)", address, MODEL.format(loop_name))
    signum = await stop

    server.close()
    log.info("stopping on %s: %d connections open", signum.name, len(connections))
    for task, connection in connections.items():
        connection.stopping = True
        if not connection.busy:
            task.cancel()
    if connections:
        _, busy = await asyncio.wait(connections, timeout=settings.shutdown_timeout)
        if busy:
            log.warning(
                "%d connections still busy after %gs; closing them",
                len(busy),
                settings.shutdown_timeout,
            )
            for task in busy:
                task.cancel()
            await asyncio.wait(busy)
    log.info("stopped")


def serve(settings: Settings, handler: Handler = handle) -> None:
    """Run the event loop (uvloop's when installed) until the server stops."""
    loop_factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve_until_stopped(settings, handler))
