"""The WebSocket server's conversation, without I/O, in every thread model.

websockets' ServerProtocol is the WebSocket itself: the opening handshake and its
allowed origins, frames, the message size limit, pings answered, the closing
handshake. This adds what a server needs around it: plain HTTP requests answered
by pages.route; a deadline for the opening handshake; messages put together
from their frames and handed to the handler one at a time, in order, at most
max_queue of them held; pings that find dead clients; a closing handshake
bounded in time; and the graceful stop. The drivers that run it over sockets and
threads are in threads.py.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import BINARY, CONT, PONG, TEXT, CloseCode, Frame
from websockets.http11 import Request, Response
from websockets.protocol import CLOSING, CONNECTING, OPEN, SEND_EOF
from websockets.server import ServerProtocol
from websockets.typing import BytesLike

from . import logs, metrics, pages
from .handler import Message
from .limits import STOP_CLOSE_SECONDS, WebSocketSettings, count_close
from .threads import Address, Refusal

log = logging.getLogger(__name__)
# websockets logs every connection opened and closed: a flood would flood the log.
logging.getLogger("websockets.server").setLevel(logging.WARNING)

Handler = Callable[[Message], Message | None]
COMPRESSED_SLICE_BYTES = 1024


class HandlerFailed:
    """What a job returns when the handler raised (it has been logged)."""


def respond(
    handler: Handler, message: Message, address: Address, request_id: str | None
) -> object:
    """Run the handler on one message (a job), under the id of the connection's
    handshake: its reply, None for no reply, or HandlerFailed if it raised."""
    token = logs.current_request.set(request_id)
    meters = metrics.meters()
    started, outcome = meters.started(), "error"
    try:
        reply = handler(message)
        outcome = "ok"
        return reply
    except Exception:
        meters.errors["handler"].inc()
        log.exception("handler failed; %s is closed with 1011", logs.address(address))
        return HandlerFailed()
    finally:
        meters.finished(started, outcome)
        logs.current_request.reset(token)


def refusal(reason: str) -> Refusal:
    """How a client is turned away: a 503 to its handshake, then the end. A
    WebSocket client takes an answer before its request for a lost connection."""
    body = f"{reason}\n".encode()
    status = HTTPStatus.SERVICE_UNAVAILABLE
    headers = Headers(
        {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
    )
    response = Response(status.value, status.phrase, headers, body)
    return Refusal(response.serialize(), after_request=True)


class WebSocketConversation:
    """One client of the WebSocket server: messages out as jobs, replies in."""

    def __init__(
        self, handler: Handler, settings: WebSocketSettings, address: Address
    ) -> None:
        self.handler, self.address, self.settings = handler, address, settings
        self.request_id: str | None = None  # the handshake's, once it comes
        self.protocol = ServerProtocol(
            origins=settings.allowed_origins(),
            extensions=(
                enable_server_permessage_deflate(None) if settings.compression else None
            ),
            max_size=settings.max_message_bytes,
        )
        self.idle_timeout = settings.idle_timeout  # to open, and to close
        self.ping_interval = settings.ping_interval
        self.ping_timeout = self.send_timeout = settings.ping_timeout
        self.max_queue = settings.max_queue
        self.unparsed = b""  # held back while max_queue messages wait
        # Compressed, a few bytes can inflate to a whole message: they are fed to
        # websockets a slice at a time, so that max_queue bounds the memory.
        self.slice = COMPRESSED_SLICE_BYTES if settings.compression else 0
        self.messages: deque[Message] = deque()  # whole, not yet handled
        self.fragments: list[BytesLike] = []  # of a message still arriving
        self.text = False  # whether that message is text
        self.ping: bytes | None = None  # the payload of a ping not yet answered
        self.due = time.monotonic() + self.idle_timeout  # to open; then to ping
        self.working = False
        self.stopping = False
        self.finished = False
        self.out: list[bytes] = []

    @property
    def deadline(self) -> float:
        if self.finished or (self.stopping and self.protocol.state is OPEN):
            return math.inf  # its reply, or the end of the grace, closes it
        return self.due

    def respond(self, status: HTTPStatus, text: str) -> Response:
        """A plain HTTP response to the handshake request (see pages.py)."""
        return self.protocol.reject(status, text)

    def receive_data(self, data: bytes) -> None:
        if data:
            self.unparsed += data
            self._parse()
        else:
            self.protocol.receive_eof()
            self._take_events()
        self._collect()

    def data_to_send(self) -> bytes:
        out, self.out = b"".join(self.out), []
        return out

    def wants_data(self) -> bool:
        return not (self.finished or self.unparsed) and (
            len(self.messages) < self.max_queue
        )

    def next_job(self) -> Callable[[], object] | None:
        if self.working or not self.messages or self.protocol.state is not OPEN:
            return None
        self.working = True
        message = self.messages.popleft()
        return functools.partial(
            respond, self.handler, message, self.address, self.request_id
        )

    def finish(self, result: object) -> None:
        self.working = False
        if self.protocol.state is OPEN:  # else the reply has no one to go to
            if isinstance(result, HandlerFailed):
                self._close(CloseCode.INTERNAL_ERROR)
            elif isinstance(result, str):
                self.protocol.send_text(result.encode())
            elif isinstance(result, bytes):
                self.protocol.send_binary(result)
            if self.stopping and self.protocol.state is OPEN:
                self._close(CloseCode.GOING_AWAY, "server shutting down")
        self._parse()  # what was held back while the queue was full
        self._collect()

    def expire(self) -> None:
        state = self.protocol.state
        if state is CONNECTING or state is CLOSING:  # too slow to open or to close
            metrics.meters().errors["timeout"].inc()
            self._end()
        elif self.stopping:  # the grace is over
            self._close(CloseCode.GOING_AWAY, "server shutting down")
        elif self.ping is not None:  # no pong in time
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        else:
            self.ping = os.urandom(4)
            self.protocol.send_ping(self.ping)
            self.due = time.monotonic() + self.ping_timeout
        self._collect()

    def stop(self) -> None:
        self.stopping = True  # an idle client keeps its grace to send one more

    def refuse(self, reason: str) -> None:
        self.working = False
        if self.protocol.state is OPEN:
            self._close(CloseCode.TRY_AGAIN_LATER, reason)
        self._collect()

    def _parse(self) -> None:
        """Feed websockets what came in, as long as the queue has room: a slice
        at a time where compression lets a few bytes inflate to a whole message."""
        while self.unparsed and len(self.messages) < self.max_queue:
            size = self.slice or len(self.unparsed)
            data, self.unparsed = self.unparsed[:size], self.unparsed[size:]
            self.protocol.receive_data(data)
            self._take_events()

    def _take_events(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                self._open(event)
            elif isinstance(event, Frame):
                self._receive_frame(event)

    def _open(self, request: Request) -> None:
        """Answer the handshake: a plain HTTP response, or the WebSocket."""
        started = time.monotonic()
        self.request_id = logs.request_id(request.headers.get("X-Request-ID"))
        try:
            response = pages.route(self, request) or self.protocol.accept(request)
        except Exception:
            log.exception(
                "cannot answer the handshake of %s",
                logs.address(self.address),
                extra={"request_id": self.request_id},
            )
            response = self.protocol.reject(HTTPStatus.INTERNAL_SERVER_ERROR, "")
        pages.answered(
            self.settings, self.address[0], request, response, self.request_id, started
        )
        if self.protocol.eof_sent:  # what came after the request is no frame
            if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
                self.out.append(response.serialize())  # then the connection ends
            return
        self.protocol.send_response(response)
        self.due = time.monotonic() + self.ping_interval

    def _receive_frame(self, frame: Frame) -> None:
        if frame.opcode is PONG and frame.data == self.ping:
            self.ping = None
            self.due = time.monotonic() + self.ping_interval
        elif frame.opcode in (TEXT, BINARY, CONT):
            if frame.opcode is not CONT:
                self.text = frame.opcode is TEXT
            self.fragments.append(frame.data)
            if frame.fin:
                data, self.fragments = b"".join(self.fragments), []
                try:
                    self.messages.append(data.decode() if self.text else data)
                except UnicodeDecodeError as error:
                    self.protocol.fail(CloseCode.INVALID_DATA, str(error.reason))

    def _close(self, code: CloseCode, reason: str = "") -> None:
        """Start the closing handshake, which the client has the idle timeout to
        answer; at a stop, a moment."""
        self.messages.clear()
        self.protocol.send_close(code, reason)
        wait = STOP_CLOSE_SECONDS if self.stopping else self.idle_timeout
        self.due = time.monotonic() + min(wait, self.idle_timeout)

    def _collect(self) -> None:
        """Take what the protocol has to send; at its end, the conversation ends."""
        for data in self.protocol.data_to_send():
            if data == SEND_EOF:
                self._end()
            else:
                self.out.append(bytes(data))

    def _end(self) -> None:
        if not self.finished:
            count_close(self.protocol.close_sent)
        self.messages.clear()
        self.working, self.finished = False, True
