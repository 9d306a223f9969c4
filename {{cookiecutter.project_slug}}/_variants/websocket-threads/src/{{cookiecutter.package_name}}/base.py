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

import logging
import socketserver
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

Handler = Callable[[Message], Message | None]
STOP_CHECK_SECONDS = 0.25  # how often a connection waiting for a message checks


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
        address: tuple[str, int],
        handler: Handler,
        settings: WebSocketSettings,
        **limits: Any,
    ) -> None:
        self.handler = handler
        super().__init__(
            address,
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
            origins=settings.allowed_origins(),
            open_timeout=settings.idle_timeout,
            max_size=settings.max_message_bytes,
            max_queue=settings.max_queue,
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
        )

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.stopping:
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "server shutting down\n"
            )
        return pages.route(connection, request)

    def converse(self, connection: ServerConnection) -> None:
        """Answer each message with the handler's reply, until either side closes.

        A handler exception propagates: websockets logs it and closes with 1011.
        """
        try:
            while not self.stopping:
                try:
                    # Not a plain recv(): a stop must reach an idle connection.
                    message = connection.recv(timeout=STOP_CHECK_SECONDS)
                except TimeoutError:
                    continue
                if (reply := self.handler(message)) is not None:
                    connection.send(reply)
        except ConnectionClosed:
            return
        connection.close(CloseCode.GOING_AWAY, "server shutting down")


def create_server(
    cls: type[WebSocketServer],
    settings: WebSocketSettings,
    handler: Handler,
    **model: Any,
) -> WebSocketServer:
    """The server of a model: the settings every model shares, and `model`'s own."""
    return cls((settings.host, settings.port), handler, settings, **model)


class WebSocketConnection(socketserver.BaseRequestHandler):
    """One admitted client, run by websockets from handshake to close."""

    server: WebSocketServer

    def handle(self) -> None:
        self.server.websockets.handler(self.request, self.client_address)
