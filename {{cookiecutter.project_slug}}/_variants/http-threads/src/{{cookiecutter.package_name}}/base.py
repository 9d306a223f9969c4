"""What the thread models of the HTTP server share: werkzeug's WSGI handler, hardened.

werkzeug turns each HTTP request into a WSGI call and answers one request per
connection. This module puts the limits a public server needs around it: deadlines
for the request head and for its body that trickling cannot stretch (a watchdog
ends the connection), size limits for the request line, each header field and the
body, the strict checks werkzeug leaves out (header names, Content-Length,
Transfer-Encoding and chunked framing, a head cut short), JSON error bodies and a
plain access log. The body is read whole before the application runs, so a slow
client never holds a thread inside it. Admission and the graceful stop come from
threads.py; server.py picks the model.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from .config import PROG
from .limits import HttpSettings
from .threads import ManagedServer, linger

log = logging.getLogger(__name__)
access_log = logging.getLogger(f"{__name__}.access")

WSGIApp = Callable[..., Any]
Handler = Callable[[HttpSettings], WSGIApp]
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
DIGITS = re.compile(r"[0-9]+")
# A chunk's size line (RFC 9112 7.1): hex digits, then an extension we ignore.
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?\r\n")
CHUNK_LINE_BYTES = 1024
WATCH_INTERVAL_SECONDS = 0.25


def refusal(reason: str) -> bytes:
    """A 503 for a client turned away, closing the connection."""
    body = json.dumps({"error": "Service Unavailable", "status": 503, "detail": reason})
    return (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()


class Watchdog:
    """Ends connections whose deadline has passed, from a thread of its own."""

    def __init__(self) -> None:
        self._deadlines: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._watching: threading.Thread | None = None

    @contextlib.contextmanager
    def deadline(
        self, sock: socket.socket, seconds: float
    ) -> Iterator[Callable[[], bool]]:
        """Within the block, `sock` is shut down once `seconds` pass; the block gets
        a function that says whether that happened."""
        with self._lock:
            if self._watching is None:
                # Started by a connection thread, not with the server: it inherits
                # the stop signals blocked (see threads.run), as every thread must.
                self._watching = threading.Thread(
                    target=self._watch, name="watchdog", daemon=True
                )
                self._watching.start()
            self._deadlines[sock] = time.monotonic() + seconds
        try:
            yield lambda: sock in self._expired
        finally:
            with self._lock:
                self._deadlines.pop(sock, None)
                self._expired.discard(sock)

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_SECONDS)
            now = time.monotonic()
            with self._lock:
                overdue = [sock for sock, due in self._deadlines.items() if due < now]
                for sock in overdue:
                    del self._deadlines[sock]
                    self._expired.add(sock)
            for sock in overdue:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class WsgiServer(ManagedServer):
    """Serves a WSGI application, one request per connection; refuses with a 503."""

    # What werkzeug's handler reads from its server.
    multithread = True
    passthrough_errors = False
    ssl_context = None

    def __init__(
        self,
        sock: socket.socket,
        app: WSGIApp,
        *,
        multiprocess: bool,
        max_header_bytes: int,
        max_body_bytes: int,
        access_log: bool,
        **limits: Any,
    ) -> None:
        self.app = app
        self.multiprocess = multiprocess
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.watchdog = Watchdog()
        super().__init__(sock, HardenedHandler, refusal=refusal, **limits)

    def log(self, level: str, message: str, *args: Any) -> None:
        getattr(log, level)(message, *args)


def create_server(
    cls: type[WsgiServer],
    settings: HttpSettings,
    sock: socket.socket,
    handler: Handler,
    **model: Any,
) -> WsgiServer:
    """The server of a model on `sock`: the settings every model shares, and
    `model`'s own."""
    return cls(
        sock,
        handler(settings),
        multiprocess=settings.workers > 1,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
        idle_timeout=settings.idle_timeout,
        **model,
    )


class BadBody(Exception):
    """A body whose framing is broken: the request gets a 400."""


def read_chunked(
    stream: io.BufferedIOBase, limit: int, max_trailer: int
) -> bytes | None:
    """A chunked body, parsed strictly; None if it is longer than `limit` bytes.

    Raises BadBody if the framing is broken, EOFError if the client stops early.
    """
    body = bytearray()
    while True:
        size = CHUNK_SIZE.fullmatch(read_line(stream, CHUNK_LINE_BYTES))
        if size is None:
            raise BadBody("malformed chunk size")
        if (length := int(size[1], 16)) == 0:
            break
        if len(body) + length > limit:
            return None
        body += read_exactly(stream, length)
        if read_exactly(stream, 2) != b"\r\n":
            raise BadBody("chunk longer than its size")
    while (line := read_line(stream, max_trailer)) != b"\r\n":  # trailer fields
        max_trailer -= len(line)
    return bytes(body)


def read_line(stream: io.BufferedIOBase, limit: int) -> bytes:
    line = stream.readline(limit + 1)
    if len(line) > limit:
        raise BadBody("line too long")
    if not line.endswith(b"\n"):
        raise EOFError
    return line


def read_exactly(stream: io.BufferedIOBase, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


class HeadReader:
    """Reads header lines for http.client, each within the limit, noting the end."""

    def __init__(self, stream: io.BufferedIOBase, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.ended = self.folded = False

    def readline(self, size: int = -1) -> bytes:
        line = self.stream.readline(self.limit + 1)
        if len(line) > self.limit:
            raise http.client.LineTooLong("header line")
        if line[:1] in (b" ", b"\t"):  # obsolete line folding (RFC 9112 5.2)
            self.folded = True
        self.ended = line in (b"\r\n", b"\n")
        return line


class HardenedHandler(WSGIRequestHandler):
    """werkzeug's handler with a head deadline, size limits and strict checks."""

    server: WsgiServer  # type: ignore[assignment]  # werkzeug types its own server
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so that errors have a status line
    error_content_type = "application/json"
    error_message_format = '{"error": "%(message)s", "status": %(code)d}'
    body = b""  # the request body, read before the application runs

    def send_error(
        self, code: int, message: str | None = None, explain: Any = None
    ) -> None:
        # Only the standard phrase goes into the JSON body: no client text in it.
        super().send_error(code, HTTPStatus(code).phrase)

    def handle_one_request(self) -> None:
        self.close_connection = True  # werkzeug answers one request per connection
        server, connection = self.server, self.connection
        if not server.wait_for_input(connection, server.idle_timeout):
            return  # idle past the timeout, or the server is stopping
        with server.watchdog.deadline(connection, server.idle_timeout) as expired:
            if not self._read_head() or expired():
                return
        with server.watchdog.deadline(connection, server.idle_timeout) as expired:
            body = self._read_body()
            if body is None or expired():
                return
        self.body = body
        connection.settimeout(server.idle_timeout)  # for sending the answer
        self.run_wsgi()
        self.wfile.flush()

    def _read_head(self) -> bool:
        """Read and check the request line and headers; answer an error if they fail."""
        limit = self.server.max_header_bytes
        self.raw_requestline = self.rfile.readline(limit + 1)
        if len(self.raw_requestline) > limit:
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
            self.send_error(414)
            return False
        if not self.raw_requestline:
            return False
        stream, head = self.rfile, HeadReader(self.rfile, limit)
        self.rfile = head  # type: ignore[assignment]
        try:
            if not self.parse_request():
                return False  # parse_request has answered
        finally:
            self.rfile = stream
        if not head.ended:
            return False  # the client stopped mid-head: nothing to answer
        if problem := "folded header line" if head.folded else self._framing_problem():
            log.debug("bad request from %s: %s", self.client_address[0], problem)
            self.send_error(400)
            return False
        return True

    def _read_body(self) -> bytes | None:
        """Read the whole body; None if the client stopped early or got an error."""
        limit = self.server.max_body_bytes
        length = int(self.headers.get("Content-Length", 0))
        if length > limit:
            self.send_error(413)  # at once: no "100 Continue" for it
            return None
        expect = self.headers.get("Expect", "").lower()
        if expect == "100-continue" and self.request_version == "HTTP/1.1":
            del self.headers["Expect"]  # werkzeug would send it again
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        try:
            if "Transfer-Encoding" not in self.headers:
                return read_exactly(self.rfile, length)
            body = read_chunked(self.rfile, limit, self.server.max_header_bytes)
        except BadBody as problem:
            log.debug("bad request from %s: %s", self.client_address[0], problem)
            self.send_error(400)
            return None
        except (EOFError, OSError):
            return None  # the client stopped sending, or took too long
        if body is None:
            self.send_error(413)
        return body

    def _framing_problem(self) -> str | None:
        """What makes the head unsafe to act on, if anything (RFC 9112)."""
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            return "unsupported HTTP version"
        headers = self.headers
        if headers.defects or headers.get_payload():
            return "malformed header line"
        if not all(TOKEN.fullmatch(name) for name in headers):
            return "invalid header name"
        lengths = headers.get_all("Content-Length", [])
        encodings = headers.get_all("Transfer-Encoding", [])
        if lengths and encodings:
            return "both Content-Length and Transfer-Encoding"
        if len(lengths) > 1 or not all(
            DIGITS.fullmatch(v.strip(" \t")) for v in lengths
        ):
            return "invalid Content-Length"
        if encodings and [e.strip(" \t").lower() for e in encodings] != ["chunked"]:
            return "unsupported Transfer-Encoding"
        if any("\0" in value or "\r" in value for value in headers.values()):
            return "control character in a header"
        if self.request_version == "HTTP/1.1" and len(headers.get_all("Host", [])) != 1:
            return "HTTP/1.1 needs exactly one Host header"
        return None

    def version_string(self) -> str:
        return PROG

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        # The application reads the body that _read_body has read already.
        environ["wsgi.input"] = io.BytesIO(self.body)
        environ["CONTENT_LENGTH"] = str(len(self.body))
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return environ

    def handle_expect_100(self) -> bool:
        return True  # _read_body answers it, once it knows the body is welcome

    def finish(self) -> None:
        super().finish()
        # Input left unread (a refused body, say) would turn the close into a reset
        # that can destroy the answer: drain it first.
        unread = select.poll()
        unread.register(self.connection, select.POLLIN)
        if unread.poll(0):
            linger(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.access_log:
            request_line = self.requestline.encode("unicode_escape").decode()
            access_log.info('%s "%s" %s', self.client_address[0], request_line, code)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)
