"""What the thread models of the WebSocket server share: websockets' sync layer.

websockets runs each connection: the opening handshake (with its timeout, the
allowed origins and pages.route for plain HTTP), the message size limit, the
receive queue, pings that find dead clients, and the closing handshake. threads.py
admits connections (a 503 beyond the cap) and stops gracefully; server.py picks
which thread serves a connection. websockets' own accept loop starts a thread for
every connection with no cap, so this server accepts them itself and hands each to
the function that websockets builds for one connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from . import pages
from .handler import Message
from .limits import WebSocketSettings
from .threads import ManagedServer

log = logging.getLogger(__name__)
# websockets logs every connection opened and closed: a flood would flood the log.
logging.getLogger("websockets.server").setLevel(logging.WARNING)

Handler = Callable[[Message], Message | None]
CLOSERS = 16  # threads that close idle connections at a stop, a closing handshake each


def refusal(reason: str) -> bytes:
    """A 503 for a client turned away before its handshake, closing the connection."""
    body = f"{reason}\n".encode()
    headers = Headers(
        {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
    )
    status = HTTPStatus.SERVICE_UNAVAILABLE
    return Response(status.value, status.phrase, headers, body).serialize()


class WebSocketServer(ManagedServer):
    """Serves WebSocket connections with the handler, within the limits."""

    # A WebSocket client treats an answer before its handshake request as a lost
    # connection, not as the 503 it is.
    refuse_after_request = True

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        settings: WebSocketSettings,
        **limits: Any,
    ) -> None:
        self.handler = handler
        self.lock = threading.Lock()
        super().__init__(
            sock,
            WebSocketConnection,
            refusal=refusal,
            idle_timeout=settings.idle_timeout,
            **limits,
        )
        # Built around this server's socket, never started: only its function
        # that runs one accepted connection is used.
        self.websockets = serve(
            self.converse,
            sock=self.socket,
            process_request=self.route,
            **settings.serve_options(),
        )
        # A client that stops reading would block a send, and the pings with it,
        # for ever: a send that makes no progress this long fails the connection.
        seconds, fraction = divmod(settings.ping_timeout, 1)
        self.send_timeout = struct.pack("ll", int(seconds), int(fraction * 1e6))
        self.awaiting_request: set[socket.socket] = set()  # accepted, no handshake yet
        self.idle: set[ServerConnection] = set()  # waiting for a message

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        with self.lock:  # its request is in: the handshake ends without waiting
            self.awaiting_request.discard(connection.socket)
        # A stop answers a handshake on its way, as it does a message, until its
        # grace is over: a WebSocket opened then would be closed at once.
        if self.grace_over:
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "server shutting down\n"
            )
        return pages.route(connection, request)

    def end_grace(self) -> None:
        with self.lock:
            super().end_grace()
            waiting, self.awaiting_request = self.awaiting_request, set()
            idle, self.idle = list(self.idle), set()
        for sock in waiting:  # still waiting for a handshake request: end it now
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # close() waits for the client's side of the closing handshake: not here.
        for share in (idle[i::CLOSERS] for i in range(min(CLOSERS, len(idle)))):
            threading.Thread(target=close_all, args=(share,), daemon=True).start()

    def converse(self, connection: ServerConnection) -> None:
        """Answer each message with the handler's reply, until either side closes.

        A handler exception propagates: websockets logs it and closes with 1011.
        """
        try:
            while True:
                with self.lock:  # idle from here: the end of a stop's grace closes it
                    if self.grace_over:
                        break
                    self.idle.add(connection)
                try:
                    message = connection.recv()
                finally:
                    with self.lock:
                        self.idle.discard(connection)
                if (reply := self.handler(message)) is not None:
                    connection.send(reply)
                if self.stopping:  # a stop ends the conversation after the reply
                    break
        except ConnectionClosed:
            return
        connection.close(CloseCode.GOING_AWAY, "server shutting down")


def close_all(connections: list[ServerConnection]) -> None:
    for connection in connections:
        connection.close(CloseCode.GOING_AWAY, "server shutting down")


def create_server(
    cls: type[WebSocketServer],
    settings: WebSocketSettings,
    sock: socket.socket,
    handler: Handler,
    **model: Any,
) -> WebSocketServer:
    """The server of a model on `sock`: the settings every model shares, and
    `model`'s own."""
    return cls(sock, handler, settings, **model)


class WebSocketConnection(socketserver.BaseRequestHandler):
    """One admitted client, run by websockets from handshake to close."""

    server: WebSocketServer

    def handle(self) -> None:
        server = self.server
        self.request.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDTIMEO, server.send_timeout
        )
        with server.lock:
            server.awaiting_request.add(self.request)
        try:
            server.websockets.handler(self.request, self.client_address)
        finally:
            with server.lock:
                server.awaiting_request.discard(self.request)
