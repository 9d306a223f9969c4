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
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import eventloop, logs, metrics, protocol
from .config import setting
from .eventloop import (
    LOOP_NAME,
    STOP_GRACE_SECONDS,
    Handshakes,
    stop_accepting,
    stop_signal,
)
from .handler import handle
from .protocol import Event, LineProtocol, LineSettings, Request
from .tls import ServerTLS, on_hangup

__all__ = ["Handler", "Settings", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[str]]
RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # how long a closing connection drains what the client sends
MODEL = "tcp, asyncio with {}"


@dataclass(frozen=True)
class Settings(LineSettings):
    max_connections: int = setting(
        10_000, "clients connected at once; more are refused", minimum=1
    )


class IdleDeadline:
    """The idle timeout of one connection, cheap to restart for every request.

    ``asyncio.timeout()`` around each wait sets a timer and cancels it again, which
    costs a third of a fast request; this keeps one timer per connection and moves
    it only when it fires while the client has been idle for less than the timeout.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expired = False
        self._since: float | None = None  # when the wait began; None while busy
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """The connection waits for a request from now."""
        loop = asyncio.get_running_loop()
        self._since, self._task = loop.time(), asyncio.current_task()
        if self._timer is None:
            self._timer = loop.call_at(self._since + self.seconds, self._check)

    def stop(self) -> None:
        """A request has arrived."""
        self._since = None

    def expire(self) -> None:
        """Interrupt the wait at once, if the connection is waiting."""
        if self._since is not None and self._task is not None:
            self._expired = True
            self._task.cancel()

    def interrupted(self) -> bool:
        """Whether the wait was cancelled by this deadline (the cancellation is
        then spent), not from outside."""
        if self._expired and self._task is not None:
            self._task.uncancel()
            return True
        return False

    def close(self) -> None:
        """The connection is over: drop the timer, which would keep it alive."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._task = self._since = None

    def _check(self) -> None:
        self._timer = None
        if self._since is None:
            return  # busy: the next wait sets the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < (due := self._since + self.seconds):
            self._timer = loop.call_at(due, self._check)
        else:
            self.expire()


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
        self.stopping = False
        self.deadline = IdleDeadline(settings.idle_timeout)
        self.meters = metrics.meters()
        # Taken now: a TLS transport forgets it once closed, and a client that
        # reset its connection before it was accepted never had one.
        peer = writer.get_extra_info("peername")
        self.peer = logs.address(peer) if peer else "a client already gone"

    async def serve(self) -> None:
        framing = LineProtocol(self.settings.max_line_bytes)
        # The connection's task: every line logged for it carries this id.
        logs.current_request.set(logs.request_id(None))
        opened = time.monotonic()
        log.debug("%s connected", self.peer)
        try:
            while (events := await self._receive(framing)) is not None:
                for event in events:
                    if isinstance(event, Request):
                        await self._send(await self._respond(event.text))
                        continue
                    self.meters.errors[event.kind].inc()
                    await self._send(protocol.error(event.reason))
                    if event.close:
                        await self._linger()
                        return
                # A stop ends the connection after the requests in hand.
                if self.stopping:
                    await self._linger()
                    return
        except OSError as error:  # reset, broken pipe
            log.debug("%s: %s", self.peer, error)
        finally:
            self.deadline.close()
            await self._close()
            milliseconds = (time.monotonic() - opened) * 1000
            log.debug("%s closed after %.1f ms", self.peer, milliseconds)

    def stop(self) -> None:
        """Close after the request in hand; an idle client has a moment to send
        one already on its way."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        loop.call_later(STOP_GRACE_SECONDS, self.deadline.expire)

    async def refuse(self, reason: str, refusals: logs.Throttled) -> None:
        """Turn the client away with an error line."""
        refusals.warning(f"refused {self.peer}: {reason}")
        with contextlib.suppress(OSError):
            await self._send(protocol.error(reason))
            await self._linger()
        await self._close()

    async def _receive(self, framing: LineProtocol) -> list[Event] | None:
        """The next events; None once the connection is over."""
        self.deadline.start()
        try:
            while data := await self.reader.read(RECV_BYTES):
                self.meters.received_bytes.inc(len(data))
                if events := framing.receive_data(data):
                    return events
            return framing.receive_eof() or None
        except asyncio.CancelledError:
            if not self.deadline.interrupted():
                raise  # cancelled from outside: a forced stop
            if not self.stopping:
                self.meters.errors["timeout"].inc()
                await self._send(protocol.error("idle timeout"))
            await self._linger()
            return None
        finally:
            self.deadline.stop()

    async def _respond(self, text: str) -> bytes:
        started, outcome = self.meters.started(), "error"
        try:
            reply = protocol.reply(await self.handler(text))
            outcome = "ok"
            return reply
        except Exception:
            self.meters.errors["handler"].inc()
            log.exception("handler failed; the client gets an error line")
            return protocol.error("internal error")
        finally:
            self.meters.finished(started, outcome)

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        self.meters.sent_bytes.inc(len(data))  # taken by the transport, to be sent
        if not self.writer.transport.get_write_buffer_size():
            return  # all sent at once, as usual: no timer to set for waiting
        try:
            async with asyncio.timeout(self.settings.idle_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise ConnectionError("client stopped reading") from None

    async def _linger(self) -> None:
        """End the connection from this side without losing the replies already sent.

        Closing a socket with unread input sends a reset, which can destroy replies
        the client has not read yet: stop sending, then drain the client a while.
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


class LineServer:
    """Admits `max_connections` clients at once and stops them gracefully."""

    def __init__(
        self, settings: Settings, handler: Handler, tls: ServerTLS | None
    ) -> None:
        self.settings, self.handler = settings, handler
        self.connections: dict[Connection, asyncio.Task[None]] = {}
        self.refusing: set[asyncio.Task[None]] = set()
        self.refusals = logs.Throttled(log)
        self.handshakes = Handshakes(
            tls, settings.max_connections, lambda: len(self.connections), self.refusals
        )
        self.stopping = False

    def protocol(self) -> asyncio.BaseProtocol:
        """asyncio's streams for one client, as ``asyncio.start_server`` makes them."""
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self.accept)

    def accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Take in a client as asyncio connects it: a stop waits for it from here,
        even before its task first runs."""
        connection = Connection(reader, writer, self.settings, self.handler)
        meters = connection.meters
        if self.handshakes.full():
            meters.refused["cap"].inc()
            refusal = asyncio.ensure_future(
                connection.refuse("server busy", self.refusals)
            )
            self.refusing.add(refusal)  # a task must be held until it is done
            refusal.add_done_callback(self.refusing.discard)
            return
        if self.stopping:  # taken in from the backlog as the stop began
            connection.stop()
        # One task per client: the one asyncio would start for a coroutine.
        task = asyncio.ensure_future(connection.serve())
        self.connections[connection] = task
        meters.connections_accepted.inc()
        meters.connections_open.inc()

        def closed(_: object) -> None:
            self.connections.pop(connection)
            meters.connections_open.dec()

        task.add_done_callback(closed)

    def begin_stop(self, signum: signal.Signals) -> None:
        """Let each connection finish the request in hand, or idle a moment."""
        self.stopping = True
        log.info(
            "stopping on %s: %d connections open", signum.name, len(self.connections)
        )
        for connection in self.connections:
            connection.stop()

    async def wait_closed(self) -> None:
        """Wait until every connection is closed, up to the shutdown timeout."""
        if self.connections:
            await eventloop.drain(
                asyncio.wait(self.connections.values()),
                self.settings.shutdown_timeout,
                busy=lambda: len(self.connections),
            )


async def serve_until_stopped(
    settings: Settings, sock: socket.socket, handler: Handler, tls: ServerTLS | None
) -> None:
    """Serve `sock` until SIGTERM or SIGINT, then let in-flight requests finish."""
    stop = stop_signal(on_hangup(tls))
    lines = LineServer(settings, handler, tls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lines.handshakes.serving(lines.protocol), sock=sock
    )
    address = logs.address(server.sockets[0].getsockname())
    log.info("listening on %s (%s)", address, MODEL.format(LOOP_NAME))
    signum = await stop
    lines.begin_stop(signum)
    await stop_accepting(sock, server.close, lines.handshakes)
    await lines.wait_closed()
    log.info("stopped")


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Run the event loop (uvloop's when installed) until the server stops."""
    eventloop.run(serve_until_stopped(settings, sock, handler, tls))
