"""From an HTTP request to a WSGI application and back (PEP 3333), as a job.

A job runs on a worker with the request whole, head and body: it builds the
application's environ, calls the application, and returns the response whole,
status, headers and body, for the conversation to send. The body is gathered
before it is sent, so a streamed response reaches the client once it is done.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

import h11

from . import logs, metrics
from .limits import HttpSettings

log = logging.getLogger(__name__)
access_log = logging.getLogger(f"{__name__}.access")

WSGIApp = Callable[..., Iterable[bytes]]
Handler = Callable[[HttpSettings], WSGIApp]  # builds the application: create_app
ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
# What a status may be: three digits and a reason with no control characters,
# which could end the status line and start headers of the application's own.
STATUS = re.compile(r"(?P<code>[1-5][0-9][0-9]) (?P<reason>[^\x00-\x1f\x7f]*)")
# Set by the server, not by the client: a header of the same name is dropped.
NOT_HEADERS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
# The health check's path: load balancers ask it every few seconds.
PROBE = b"/healthz"


@dataclass(frozen=True)
class Response:
    """What the application answered, whole."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Application:
    """A WSGI application, and what its environ says of the server."""

    app: WSGIApp
    server_address: tuple[str, int]
    multiprocess: bool
    access_log: bool
    log_probes: bool


def call(
    application: Application, request: h11.Request, body: bytes, client: Any
) -> Response:
    """Run the application on one request (a job), under the request's id: every
    line it logs carries the id, and so does the response. An application that
    fails gets its traceback logged and the client a 500."""
    started = time.monotonic()
    request_id = logs.request_id(header(request, b"x-request-id"))
    token = logs.current_request.set(request_id)
    meters = metrics.meters()
    timer, status = meters.started(), 500
    try:
        response = respond(application, request, body, client)
        status = response.status
    finally:
        logs.current_request.reset(token)
        meters.finished(timer, f"{status // 100}xx")
    if header(response, b"x-request-id") is None:
        response.headers.append((b"X-Request-ID", request_id.encode()))
    if application.access_log and (
        application.log_probes or request.target.partition(b"?")[0] != PROBE
    ):
        milliseconds = (time.monotonic() - started) * 1000
        logs.access(
            access_log,
            client[0],
            request_line(request),
            response.status,
            milliseconds,
            request_id,
        )
    return response


def header(message: h11.Request | Response, name: bytes) -> str | None:
    """The first value of a header (`name` in lowercase), if the message has it."""
    for key, value in message.headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def respond(
    application: Application, request: h11.Request, body: bytes, client: Any
) -> Response:
    status, headers = "500 Internal Server Error", []

    def start_response(
        new_status: str,
        new_headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        nonlocal status, headers
        status, headers = new_status, new_headers
        return chunks.append  # the legacy write(), into the same body

    chunks: list[bytes] = []
    try:
        result = application.app(
            environ(application, request, body, client), start_response
        )
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if (valid := STATUS.fullmatch(status)) is None:
            raise ValueError(f"the application answered the status {status!r}")
        response = Response(
            int(valid["code"]),
            valid["reason"].encode("latin-1"),
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            b"".join(chunks),
        )
    except Exception:
        metrics.meters().errors["handler"].inc()
        log.exception("the application failed; %s gets a 500", logs.address(client))
        response = Response(500, b"Internal Server Error", [], b"")
    return response


def request_line(request: h11.Request) -> str:
    return "{} {} HTTP/{}".format(
        request.method.decode(),
        request.target.decode("latin-1"),
        request.http_version.decode(),
    )


def origin_form(target: bytes) -> bytes:
    """The path and query of a request target, without the scheme and the host
    of an absolute form (``http://host/path?query``, as a proxy is sent)."""
    if not target.startswith((b"http://", b"https://")):
        return target
    authority_and_rest = target.partition(b"://")[2]
    end = min(
        (i for i in map(authority_and_rest.find, (b"/", b"?")) if i >= 0),
        default=len(authority_and_rest),
    )
    rest = authority_and_rest[end:]
    return rest if rest.startswith(b"/") else b"/" + rest


def environ(
    application: Application, request: h11.Request, body: bytes, client: Any
) -> dict[str, Any]:
    """The WSGI environ of one request."""
    path, _, query = origin_form(request.target).partition(b"?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "REQUEST_URI": request.target.decode("latin-1"),
        "RAW_URI": request.target.decode("latin-1"),
        "SERVER_NAME": application.server_address[0],
        "SERVER_PORT": str(application.server_address[1]),
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": application.multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for name, value in request.headers:
        if name in NOT_HEADERS:
            if name == b"content-type":
                env["CONTENT_TYPE"] = value.decode("latin-1")
            continue
        if b"_" in name or name == b"transfer-encoding":
            continue  # a header that could pass for another; a framing read already
        key = "HTTP_" + name.decode("ascii").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key in env:  # repeated: one value, as RFC 9110 5.3 joins them
            text = env[key] + ("; " if key == "HTTP_COOKIE" else ", ") + text
        env[key] = text
    return env
