"""The HTTP server's conversation, without I/O, in every thread model.

h11 parses and frames HTTP/1.1 (bytes in, events out; events in, bytes out).
This adds what a public server needs around it: the limits of the request line,
header fields and body, and the framing checks h11 leaves to its user; the
deadlines for a request's head and then its body, which trickling bytes do not
push back; requests to the application one at a time, in order, with
keep-alive and pipelining; JSON error responses; and the graceful stop. The
drivers that run it over sockets and threads are in threads.py; wsgi.py runs the
application.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import socket
import time
from collections.abc import Callable
from http import HTTPStatus

import h11

from . import metrics
from .config import PROG
from .limits import HttpSettings
from .threads import Address, Refusal
from .wsgi import Application, Handler, Response, call

log = logging.getLogger(__name__)

# The protocol errors (see metrics.ERRORS) that these answers count as.
ERRORS = {
    HTTPStatus.REQUEST_TIMEOUT: "timeout",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "oversize",
    HTTPStatus.REQUEST_URI_TOO_LONG: "oversize",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "oversize",
    HTTPStatus.INTERNAL_SERVER_ERROR: "handler",  # a response h11 cannot send
}
HEAD_FIELDS = 4  # a whole head may be this many times the longest field


@functools.lru_cache(maxsize=1)
def http_date(second: int) -> bytes:
    """The Date header's value: made once a second, not for every response."""
    return email.utils.formatdate(second, usegmt=True).encode()


def error_response(status: HTTPStatus, detail: str | None = None) -> bytes:
    """A response with a JSON body that ends the connection: for what goes wrong
    before the application sees a request."""
    fields: dict[str, object] = {"error": status.phrase, "status": status.value}
    if detail:
        fields["detail"] = detail
    body = json.dumps(fields, separators=(",", ":")) + "\n"  # as Flask writes it
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Server: {PROG}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()


def refusal(reason: str) -> Refusal:
    """How a client is turned away: a 503, then the end."""
    return Refusal(error_response(HTTPStatus.SERVICE_UNAVAILABLE, reason))


def conversations(
    handler: Handler, settings: HttpSettings, sock: socket.socket, **options: bool
) -> Callable[[Address], HttpConversation]:
    """A new conversation for each client of `sock`, all with one application."""
    application = Application(
        handler(settings),
        sock.getsockname()[:2],
        multiprocess=settings.workers > 1,
        access_log=settings.access_log,
        log_probes=settings.log_probes,
    )
    return functools.partial(HttpConversation, application, settings, **options)


class HttpConversation:
    """One client of the HTTP server: requests out as jobs, responses in."""

    def __init__(
        self,
        application: Application,
        settings: HttpSettings,
        address: Address,
        *,
        keep_alive: bool = True,
    ) -> None:
        self.application, self.address = application, address
        self.idle_timeout = self.send_timeout = settings.idle_timeout
        self.max_field_bytes = settings.max_header_bytes
        self.max_body_bytes = settings.max_body_bytes
        self.keep_alive = keep_alive  # False: close once the requests sent are answered
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=HEAD_FIELDS * self.max_field_bytes
        )
        self.request: h11.Request | None = None  # the one being received or served
        self.body = bytearray()
        self.ready = False  # the request is whole, for next_job
        self.working = False
        self.stopping = False
        self.finished = False
        self.out: list[bytes] = []
        self.deadline = time.monotonic() + self.idle_timeout

    def receive_data(self, data: bytes) -> None:
        self.h11.receive_data(data)  # b"" is the end, for h11 too
        self._receive_events()

    def data_to_send(self) -> bytes:
        out, self.out = b"".join(self.out), []
        return out

    def wants_data(self) -> bool:
        return not (self.ready or self.working or self.finished)

    def next_job(self) -> Callable[[], Response] | None:
        if not self.ready:
            return None
        assert self.request is not None
        self.ready, self.working, self.deadline = False, True, math.inf
        return functools.partial(
            call, self.application, self.request, bytes(self.body), self.address
        )

    def finish(self, result: Response) -> None:
        self.working = False
        assert self.request is not None
        close = self.stopping or not (
            self.keep_alive or self.h11.trailing_data[0]  # pipelined: answer them
        )
        try:
            self.out.append(self._serialize(result, close))
        except h11.LocalProtocolError as error:  # what the application returned
            log.error("cannot send the application's response: %s", error)
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        if h11.MUST_CLOSE in (self.h11.our_state, self.h11.their_state):
            self._end()
            return
        self.h11.start_next_cycle()
        self.request, self.body = None, bytearray()
        self.deadline = time.monotonic() + self.idle_timeout  # for the next head
        self._receive_events()  # a request pipelined behind this one

    def expire(self) -> None:
        if self.stopping and self.request is not None:
            if time.monotonic() < self.deadline:
                return  # the end of a stop's grace: its body is on its way
        elif self.stopping or not self._receiving():
            self._end()  # idle, or not yet a request: nothing to answer
            return
        self._fail(HTTPStatus.REQUEST_TIMEOUT)

    def stop(self) -> None:
        self.stopping = True  # an idle client keeps its grace to send one more

    def refuse(self, reason: str) -> None:
        self.working = False
        self.out.append(error_response(HTTPStatus.SERVICE_UNAVAILABLE, reason))
        self._end()

    def _receive_events(self) -> None:
        """Take in what h11 has parsed, up to a whole request or a problem."""
        while not (self.ready or self.working or self.finished):
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                log.debug("bad request from %s: %s", self.address[0], error)
                self._fail(HTTPStatus(error.error_status_hint))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if (problem := self._check(event)) is not None:
                    self._fail(problem)
                    return
                self.request = event
                self.deadline = time.monotonic() + self.idle_timeout  # for the body
                if self.h11.they_are_waiting_for_100_continue:
                    self.out.append(
                        self.h11.send(
                            h11.InformationalResponse(status_code=100, headers=[])
                        )
                    )
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > self.max_body_bytes:
                    self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            elif isinstance(event, h11.EndOfMessage):
                self.ready = True
            else:  # ConnectionClosed: the client has gone, between requests
                self._end()

    def _check(self, request: h11.Request) -> HTTPStatus | None:
        """What makes a request unfit to serve, beyond what h11 checks."""
        if request.http_version not in (b"1.0", b"1.1"):
            return HTTPStatus.HTTP_VERSION_NOT_SUPPORTED
        if len(request.target) > self.max_field_bytes:
            return HTTPStatus.REQUEST_URI_TOO_LONG
        head = len(request.target)
        for name, value in request.headers:
            if len(name) + len(value) + 2 > self.max_field_bytes:
                return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            head += len(name) + len(value) + 4
        if head > HEAD_FIELDS * self.max_field_bytes:  # a whole head in one read
            return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        names = {name for name, _ in request.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            return HTTPStatus.BAD_REQUEST  # RFC 9112 6.1: a smuggling attempt
        for name, value in request.headers:
            if name == b"content-length" and int(value) > self.max_body_bytes:
                return HTTPStatus.REQUEST_ENTITY_TOO_LARGE  # at once: no 100 Continue
        return None

    def _serialize(self, response: Response, close: bool) -> bytes:
        assert self.request is not None
        headers = [
            (name, value)
            for name, value in response.headers
            if name.lower() != b"connection"
        ]
        names = {name.lower() for name, _ in headers}
        framed = b"content-length" in names or b"transfer-encoding" in names
        bodied = response.status not in (204, 304)  # those have none, whatever
        if not framed and bodied:  # the application says
            headers.append((b"Content-Length", str(len(response.body)).encode()))
        headers.append((b"Server", PROG.encode()))
        headers.append((b"Date", http_date(int(time.time()))))
        if close:
            headers.append((b"Connection", b"close"))
        out = self.h11.send(
            h11.Response(
                status_code=response.status, headers=headers, reason=response.reason
            )
        )
        if response.body and self.request.method != b"HEAD" and bodied:
            out += self.h11.send(h11.Data(data=response.body))
        return out + self.h11.send(h11.EndOfMessage())

    def _receiving(self) -> bool:
        """Whether part of a request has come in."""
        return self.request is not None or bool(self.h11.trailing_data[0])

    def _fail(self, status: HTTPStatus) -> None:
        metrics.meters().errors[ERRORS.get(status, "malformed")].inc()
        self.out.append(error_response(status))
        self._end()

    def _end(self) -> None:
        self.ready = self.working = False
        self.finished, self.deadline = True, math.inf
