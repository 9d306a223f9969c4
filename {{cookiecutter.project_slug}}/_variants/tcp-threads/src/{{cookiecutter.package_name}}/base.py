"""What the thread models of the line server share: the connection loop.

Admission and the graceful stop come from threads.py; server.py picks the model.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import time
from collections.abc import Callable
from typing import Any

from . import logs, protocol
from .protocol import Event, LineProtocol, LineSettings, Request
from .threads import RECV_BYTES, ManagedServer, linger

log = logging.getLogger(__name__)

Handler = Callable[[str], str]


class LineServer(ManagedServer):
    """Serves line connections with the handler; refuses with an error line."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        *,
        max_line_bytes: int,
        **limits: Any,
    ) -> None:
        self.handler = handler
        self.max_line_bytes = max_line_bytes
        super().__init__(sock, LineConnection, refusal=protocol.error, **limits)

    def respond(self, text: str) -> bytes:
        """The reply line to one request, or an error line if the handler fails."""
        try:
            return protocol.reply(self.handler(text))
        except Exception:
            log.exception("handler failed; the client gets an error line")
            return protocol.error("internal error")


def create_server(
    cls: type[LineServer],
    settings: LineSettings,
    sock: socket.socket,
    handler: Handler,
    **model: Any,
) -> LineServer:
    """The server of a model on `sock`: the settings every model shares, and
    `model`'s own."""
    return cls(
        sock,
        handler,
        max_line_bytes=settings.max_line_bytes,
        idle_timeout=settings.idle_timeout,
        **model,
    )


class LineConnection(socketserver.BaseRequestHandler):
    """One client: read lines and answer each, until EOF, an error or a timeout."""

    server: LineServer

    def handle(self) -> None:
        try:
            self._serve()
        except OSError as error:  # reset, broken pipe, a send that timed out
            log.debug("%s: %s", logs.address(self.client_address), error)

    def _serve(self) -> None:
        framing = LineProtocol(self.server.max_line_bytes)
        while (events := self._receive(framing)) is not None:
            for event in events:
                if isinstance(event, Request):
                    self._send(self.server.respond(event.text))
                    continue
                self._send(protocol.error(event.reason))
                if event.close:
                    linger(self.request)
                    return
            # A stop ends the connection after the requests in hand.
            if self.server.stopping:
                linger(self.request)
                return

    def _receive(self, framing: LineProtocol) -> list[Event] | None:
        """The next events; None once the connection is over."""
        deadline = time.monotonic() + self.server.idle_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not self.server.wait_for_input(self.request, remaining):
                if self.server.grace_over:  # a stop, and nothing came in time
                    linger(self.request)
                    return None
                continue
            data = self.request.recv(RECV_BYTES)
            if not data:
                return framing.receive_eof() or None
            if events := framing.receive_data(data):
                return events
        self._send(protocol.error("idle timeout"))
        linger(self.request)
        return None

    def _send(self, data: bytes) -> None:
        self.request.settimeout(self.server.idle_timeout)
        self.request.sendall(data)
