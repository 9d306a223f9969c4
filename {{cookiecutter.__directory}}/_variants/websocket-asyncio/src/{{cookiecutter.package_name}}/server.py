"""asyncio: websockets' asyncio server, every connection a task on one event loop.

An idle client costs a few kilobytes rather than a thread, so thousands of mostly
idle clients are cheap, and a handler that awaits I/O lets the others run. A
handler that blocks stalls every client; move such work off the loop. websockets
runs each connection: the opening handshake (with its timeout, the allowed origins
and pages.route for plain HTTP), the message size limit, the receive queue, pings
that find dead clients, and the closing handshake. This module adds the connection
cap and the graceful stop. Uses uvloop when it is installed
(``pip install '.[uvloop]'``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import websockets.asyncio.server
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from . import eventloop, logs, metrics, pages
from .config import setting
from .eventloop import (
    LOOP_NAME,
    STOP_GRACE_SECONDS,
    Handshakes,
    stop_accepting,
    stop_signal,
)
from .handler import Message, handle
from .limits import STOP_CLOSE_SECONDS, WebSocketSettings, count_close
from .tls import ServerTLS, on_hangup

__all__ = ["Handler", "Settings", "serve"]

log = logging.getLogger(__name__)
# websockets logs every connection opened and closed: a flood would flood the log.
logging.getLogger("websockets.server").setLevel(logging.WARNING)

Handler = Callable[[Message], Awaitable[Message | None]]
MODEL = "websocket, asyncio with {}"
GOING_AWAY = (CloseCode.GOING_AWAY, "server shutting down")
SEND_CHECK_SECONDS = 1.0  # how often stalled sends are looked for


@dataclass(frozen=True)
class Settings(WebSocketSettings):
    max_connections: int = setting(
        10_000, "clients connected at once; more get a 503", minimum=1
    )


class Conversations:
    """Runs each client's conversation with the handler; knows which are idle."""

    def __init__(
        self, settings: Settings, handler: Handler, tls: ServerTLS | None
    ) -> None:
        self.settings, self.handler = settings, handler
        self.busy: set[ServerConnection] = set()  # in the handler right now
        self.sending: dict[ServerConnection, float] = {}  # sending a reply since
        self.opened: set[ServerConnection] = set()  # from accept, handshake or not
        self.started: dict[ServerConnection, float] = {}  # handshakes, since
        self.closing: list[asyncio.Task[None]] = []
        self.refusals = logs.Throttled(log)
        self.handshakes = Handshakes(
            tls, settings.max_connections, lambda: len(self.opened), self.refusals
        )
        self.stopping = False
        self.meters = metrics.meters()

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' process_request: pages.route, unless the server is full.

        The connection's task runs the handler next: the request id set here
        marks every line logged for the connection.
        """
        self.started[connection] = time.monotonic()
        logs.current_request.set(logs.request_id(request.headers.get("X-Request-ID")))
        # Itself included: the connections accepted so far, handshakes or not.
        admitted = len(self.opened) + len(self.handshakes)
        if admitted <= self.settings.max_connections:
            return pages.route(connection, request)
        self.meters.refused["cap"].inc()
        self.refusals.warning(
            f"refused {logs.address(connection.remote_address)}: server busy"
        )
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "server busy\n")

    def answered(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        """websockets' process_response: the access log line, the request id."""
        started = self.started.pop(connection, time.monotonic())
        request_id = logs.current_request.get() or logs.request_id(None)
        client = str(connection.remote_address[0])
        pages.answered(self.settings, client, request, response, request_id, started)

    def opening(self) -> bool:
        """Whether a client is still in its opening handshake: websockets answers
        503 to those that end once the listening socket is closed."""
        return any(c.protocol.state is State.CONNECTING for c in self.opened)

    def connection_class(self) -> type[ServerConnection]:
        """websockets' connection, known to these conversations from the moment it
        is accepted (its TLS handshake over): the cap counts it, and a stop can end
        its opening handshake."""
        opened, started, meters = self.opened, self.started, self.meters

        class Connection(ServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                opened.add(self)
                meters.connections_accepted.inc()
                meters.connections_open.inc()

            def data_received(self, data: bytes) -> None:
                meters.received_bytes.inc(len(data))
                super().data_received(data)

            def send_data(self) -> None:
                # What websockets is about to write, counted as it goes.
                meters.sent_bytes.inc(sum(map(len, self.protocol.writes)))
                super().send_data()

            def connection_lost(self, exc: Exception | None) -> None:
                opened.discard(self)
                started.pop(self, None)  # a handshake that never got its answer
                meters.connections_open.dec()
                count_close(self.protocol.close_sent)
                super().connection_lost(exc)

        if self.handshakes.tls is None:
            return Connection

        def after_handshake(*args: Any, **kwargs: Any) -> Connection:
            factory = functools.partial(Connection, *args, **kwargs)
            return cast(Connection, self.handshakes.serving(factory)())

        # What websockets calls is all it needs of a class.
        return cast(type[ServerConnection], after_handshake)

    async def converse(self, connection: ServerConnection) -> None:
        """Answer each message with the handler's reply, until either side closes.

        A handler exception propagates: websockets logs it and closes with 1011.
        """
        try:
            async for message in connection:
                self.busy.add(connection)
                try:
                    if (reply := await self.respond(message)) is not None:
                        await self.send(connection, reply)
                finally:
                    self.busy.discard(connection)
                if self.stopping:  # the stop waited for this reply
                    await self.go_away(connection)
                    return
        except ConnectionClosed:
            pass

    async def respond(self, message: Message) -> Message | None:
        """The handler's reply to one message, counted and timed."""
        started, outcome = self.meters.started(), "error"
        try:
            reply = await self.handler(message)
            outcome = "ok"
            return reply
        except Exception:
            self.meters.errors["handler"].inc()
            raise
        finally:
            self.meters.finished(started, outcome)

    async def send(self, connection: ServerConnection, reply: Message) -> None:
        """Send a reply, watched by drop_stalled."""
        self.sending[connection] = asyncio.get_running_loop().time()
        try:
            await connection.send(reply)
        finally:
            del self.sending[connection]

    async def drop_stalled(self) -> None:
        """Drop the clients that have not taken a reply within the ping timeout:
        their pings would wait behind it for ever. One look a second costs less
        than a timer around every send."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SEND_CHECK_SECONDS)
            too_old = loop.time() - self.settings.ping_timeout
            for connection, since in list(self.sending.items()):
                if since < too_old:
                    connection.transport.abort()

    def stop(self, server: Server) -> None:
        """Busy connections close after their reply; idle ones, and those opened
        by a handshake on its way, after a moment to send a message."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        loop.call_later(STOP_GRACE_SECONDS, self.end_grace, server)

    def end_grace(self, server: Server) -> None:
        """End handshakes still in progress, and close idle connections."""
        for connection in list(self.opened):
            if connection.request is None:  # no handshake request yet: may never come
                connection.transport.abort()
        self.closing = [
            asyncio.ensure_future(self.go_away(connection))
            for connection in server.connections - self.busy
        ]

    async def go_away(self, connection: ServerConnection) -> None:
        """Close for the stop: the client has a moment to answer the close frame,
        not the idle timeout."""
        connection.close_timeout = min(STOP_CLOSE_SECONDS, self.settings.idle_timeout)
        await connection.close(*GOING_AWAY)


async def serve_until_stopped(
    settings: Settings, sock: socket.socket, handler: Handler, tls: ServerTLS | None
) -> None:
    """Serve `sock` until SIGTERM or SIGINT, then let in-flight messages finish."""
    stop = stop_signal(on_hangup(tls))
    conversations = Conversations(settings, handler, tls)
    server = await websockets.asyncio.server.serve(
        conversations.converse,
        sock=sock,
        process_request=conversations.route,
        process_response=conversations.answered,
        create_connection=conversations.connection_class(),
        **settings.serve_options(),
    )
    address = logs.address(server.sockets[0].getsockname())
    log.info("listening on %s (%s)", address, MODEL.format(LOOP_NAME))
    watchdog = asyncio.ensure_future(conversations.drop_stalled())
    signum = await stop
    log.info(
        "stopping on %s: %d connections open", signum.name, len(server.connections)
    )
    conversations.stop(server)
    close = functools.partial(server.close, close_connections=False)
    await stop_accepting(
        sock, close, conversations.handshakes, opening=conversations.opening
    )
    await eventloop.drain(
        server.wait_closed(),
        settings.shutdown_timeout,
        busy=lambda: len(server.connections),
    )
    watchdog.cancel()
    log.info("stopped")


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = handle,
    tls: ServerTLS | None = None,
) -> None:
    """Run the event loop (uvloop's when installed) until the server stops."""
    eventloop.run(serve_until_stopped(settings, sock, handler, tls))
