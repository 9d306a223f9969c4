"""What the server answers to plain HTTP requests, before any WebSocket opens.

``GET /`` serves the demo page (demo.html), which opens a WebSocket back to this
server; ``GET /healthz`` answers 200 for probes; an upgrade to a WebSocket on
``/`` goes on to the handler; any other path gets a 404. Every model uses this
one function as websockets' ``process_request``.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from importlib import resources
from typing import Protocol

from websockets.http11 import Request, Response

from . import logs
from .limits import WebSocketSettings

DEMO_PAGE = resources.files(__package__).joinpath("demo.html").read_text("utf-8")
PROBE = "/healthz"  # the health check's path: load balancers ask it every few seconds
access_log = logging.getLogger(f"{__name__}.access")


class Responder(Protocol):
    """A connection that can answer its handshake with a plain HTTP response."""

    def respond(self, status: HTTPStatus, text: str) -> Response: ...


def route(connection: Responder, request: Request) -> Response | None:
    """Answer a plain HTTP request; None lets a WebSocket upgrade go on."""
    path = request.path.partition("?")[0]
    if path == PROBE:
        return connection.respond(HTTPStatus.OK, "ok\n")
    if path != "/":
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
    upgrades = ",".join(request.headers.get_all("Upgrade")).lower()
    if "websocket" in upgrades:
        return None  # websockets checks the handshake itself
    response = connection.respond(HTTPStatus.OK, DEMO_PAGE)
    del response.headers["Content-Type"]  # respond() says text/plain
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


def answered(
    settings: WebSocketSettings,
    client: str,
    request: Request,
    response: Response,
    request_id: str,
    started: float,
) -> None:
    """Log the answer to a handshake or a page as the HTTP servers log theirs,
    and give the response the request's id (logs.request_id)."""
    response.headers["X-Request-ID"] = request_id
    if settings.access_log and (
        settings.log_probes or request.path.partition("?")[0] != PROBE
    ):
        logs.access(
            access_log,
            client,
            f"GET {request.path} HTTP/1.1",
            response.status_code,
            (time.monotonic() - started) * 1000,
            request_id,
        )
