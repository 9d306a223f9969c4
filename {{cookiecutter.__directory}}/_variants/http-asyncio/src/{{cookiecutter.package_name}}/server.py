"""asyncio: aiohttp's server, every connection on one event loop.

An idle keep-alive connection costs a few kilobytes rather than a thread, and a
handler that awaits I/O lets every other request go on: the model for many
connections and I/O-bound work. A handler that blocks stalls every client; move
such work off the loop. aiohttp parses strictly and enforces the header and body
limits and the idle timeout (which also bounds a slow request head); this module
adds a deadline for the request body, the connection cap and the graceful stop.
Uses uvloop when it is installed (``pip install '.[uvloop]'``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler as RequestHandler
from aiohttp.typedefs import Middleware

from . import eventloop, logs, metrics
from .app import create_app, to_json
from .config import setting
from .eventloop import (
    LOOP_NAME,
    STOP_GRACE_SECONDS,
    Handshakes,
    stop_accepting,
    stop_signal,
)
from .limits import HttpSettings
from .tls import ServerTLS, on_hangup

__all__ = ["Handler", "Settings", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[HttpSettings], web.Application]
MODEL = "http, asyncio: aiohttp with {}"
LINGER_SECONDS = 2.0  # how long a closing connection drains what the client sends
# The protocol errors (see metrics.ERRORS) of answers raised while reading a body.
ERRORS: dict[int, str] = {
    HTTPStatus.REQUEST_TIMEOUT: "timeout",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "oversize",
}
# What aiohttp calls a request it could not parse, and what it answers one too big.
UNPARSED = "UNKNOWN"
OVERSIZE = {413, 414, 431}
PROBE = "/healthz"  # the health check's path: load balancers ask it every few seconds
BUSY_BODY = to_json({"error": "Service Unavailable", "status": 503})
BUSY = (
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(BUSY_BODY)}\r\nConnection: close\r\n\r\n{BUSY_BODY}"
).encode()


@dataclass(frozen=True)
class Settings(HttpSettings):
    max_connections: int = setting(
        10_000, "connections open at once; more get a 503", minimum=1
    )


class Refusal(asyncio.Protocol):
    """Answers a connection beyond the cap with a 503 and closes it.

    It half-closes and drops what the client still sends until the client closes
    too (or a moment passes): closing with unread input sends a reset, which can
    destroy the 503 before the client reads it.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        transport = cast(asyncio.Transport, transport)
        self.deadline = asyncio.get_running_loop().call_later(
            LINGER_SECONDS, transport.close
        )
        try:
            transport.write(BUSY)
            if transport.can_write_eof():
                transport.write_eof()
        except OSError:  # the client is already gone
            transport.abort()

    def data_received(self, data: bytes) -> None:
        pass  # the request of a client turned away

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline.cancel()


class Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the bytes it receives and its
    end counted (its class has slots: nothing can be added to it)."""

    def __init__(self, protocol: asyncio.Protocol, meters: metrics.Meters) -> None:
        self.protocol, self.meters = protocol, meters

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.protocol.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.meters.received_bytes.inc(len(data))
        self.protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.meters.connections_open.dec()
        self.protocol.connection_lost(exc)


@web.middleware
async def count(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    """Count each request by its status class, and time it (see metrics.py)."""
    meters = metrics.meters()
    started, status = meters.started(), 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as error:  # an answer, raised
        status = error.status
        if (kind := ERRORS.get(status)) is not None:
            meters.errors[kind].inc()
        raise
    except Exception:
        meters.errors["handler"].inc()
        raise
    finally:
        meters.finished(started, f"{status // 100}xx")
    return response


@web.middleware
async def request_ids(
    request: web.Request, handler: RequestHandler
) -> web.StreamResponse:
    """Serve each request under its id (see logs.request_id): every line logged
    while it is served carries the id, and so does the response."""
    request_id = logs.request_id(request.headers.get("X-Request-ID"))
    token = logs.current_request.set(request_id)
    try:
        response = await handler(request)
    finally:
        logs.current_request.reset(token)
    response.headers.setdefault("X-Request-ID", request_id)
    return response


def access_logger(access_log: bool, log_probes: bool) -> type[AbstractAccessLogger]:
    """aiohttp's access log, as the thread models write it: one line a request,
    with its time in milliseconds and its id; health checks only if asked."""

    class AccessLogger(AbstractAccessLogger):
        def log(
            self, request: web.BaseRequest, response: web.StreamResponse, time: float
        ) -> None:
            meters = metrics.meters()
            meters.sent_bytes.inc(response.body_length)  # once sent; bodies only
            if request.method == UNPARSED:  # answered by aiohttp: a protocol error
                oversize = response.status in OVERSIZE
                meters.errors["oversize" if oversize else "malformed"].inc()
            if not access_log or (request.path == PROBE and not log_probes):
                return
            major, minor = request.version
            logs.access(
                self.logger,
                str(request.remote),
                f"{request.method} {request.path_qs} HTTP/{major}.{minor}",
                response.status,
                time * 1000,
                response.headers.get("X-Request-ID"),
            )

    return AccessLogger


def read_body_within(seconds: float) -> Middleware:
    """Read each request body whole before the handler runs, within `seconds`:
    a client trickling its body gets a 408 instead of holding a handler."""

    @web.middleware
    async def read_body(
        request: web.Request, handler: RequestHandler
    ) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(seconds):
                    await request.read()  # kept by the request for the handler
            except TimeoutError:
                raise web.HTTPRequestTimeout() from None
        return await handler(request)

    return read_body


def close_when(stopping: asyncio.Event) -> Middleware:
    """Answer with ``Connection: close`` once the server is stopping, so that the
    client sends its next request elsewhere instead of on a closing connection."""

    @web.middleware
    async def close(
        request: web.Request, handler: RequestHandler
    ) -> web.StreamResponse:
        response = await handler(request)
        if stopping.is_set():
            response.force_close()
        return response

    return close


def drop_client_errors(record: logging.LogRecord) -> bool:
    """Keep aiohttp's reports of malformed requests out of the log: each comes with
    a traceback, and any client could flood the log with them. Its other reports
    (a handler that returns nothing, say) stay."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, HttpProcessingError)


async def serve_until_stopped(
    settings: Settings, sock: socket.socket, handler: Handler, tls: ServerTLS | None
) -> None:
    """Serve `sock` until SIGTERM or SIGINT, then let in-flight requests finish."""
    stop = stop_signal(on_hangup(tls))

    app = handler(settings)
    stopping = asyncio.Event()
    app.middlewares.insert(0, request_ids)  # outermost: error responses get ids too
    app.middlewares.insert(0, count)  # and counted, the ids' own too
    app.middlewares.append(close_when(stopping))
    app.middlewares.append(read_body_within(settings.idle_timeout))
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access"),
        access_log_class=access_logger(settings.access_log, settings.log_probes),
        keepalive_timeout=settings.idle_timeout,
        max_line_size=settings.max_header_bytes,
        max_field_size=settings.max_header_bytes,
        shutdown_timeout=settings.shutdown_timeout,
        lingering_time=LINGER_SECONDS,  # draining a body left unread
    )
    await runner.setup()
    connections = runner.server
    assert connections is not None

    refusals = logs.Throttled(log)
    meters = metrics.meters()
    handshakes = Handshakes(
        tls,
        settings.max_connections,
        lambda: len(connections.connections),
        refusals,
    )

    def accept() -> asyncio.BaseProtocol:
        if handshakes.full():
            meters.refused["cap"].inc()
            refusals.warning("refused a connection: server busy")
            return Refusal()
        meters.connections_accepted.inc()
        meters.connections_open.inc()  # until connection_lost
        return Counted(connections(), meters)

    server = await asyncio.get_running_loop().create_server(
        handshakes.serving(accept), sock=sock
    )
    address = logs.address(server.sockets[0].getsockname())
    log.info("listening on %s (%s)", address, MODEL.format(LOOP_NAME))
    signum = await stop
    stopping.set()
    log.info(
        "stopping on %s: %d connections open",
        signum.name,
        len(connections.connections),
    )
    await stop_accepting(sock, server.close, handshakes)

    async def close_connections() -> None:
        if connections.connections:  # a moment for a request already on its way
            await asyncio.sleep(STOP_GRACE_SECONDS)
        # Closes idle connections and waits for the rest: up to its shutdown
        # timeout, then as long again for their cancellation.
        await runner.cleanup()

    # Held to the shutdown timeout, once, grace included:
    await eventloop.drain(
        close_connections(),
        settings.shutdown_timeout,
        busy=lambda: len(connections.connections),
    )
    log.info("stopped")


def serve(
    settings: Settings,
    sock: socket.socket,
    handler: Handler = create_app,
    tls: ServerTLS | None = None,
) -> None:
    """Run the event loop (uvloop's when installed) until the server stops."""
    logging.getLogger("aiohttp.server").addFilter(drop_client_errors)
    eventloop.run(serve_until_stopped(settings, sock, handler, tls))
