"""Your application: its routes are where your code goes.

An aiohttp application. Handlers are coroutines on the event loop: await I/O in
them, and move blocking or CPU-heavy calls off the loop with
``await asyncio.to_thread(...)``. Errors answer with a JSON body; an exception a
handler raises is logged with its traceback and answered with a 500.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from .limits import HttpSettings

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text="Hello from {{ cookiecutter.project_slug }}!\n")


async def continue_unless_too_large(request: web.Request) -> web.Response | None:
    """Answer ``Expect: 100-continue``, or a 413 for a body announced over the limit."""
    if (request.content_length or 0) > request.app[MAX_BODY_BYTES]:
        return error_response(413, "Request Entity Too Large")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


@routes.post("/echo", expect_handler=continue_unless_too_large)
async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type=request.content_type)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=to_json)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error with a JSON body: {"error": reason, "status": code}."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = error_response(error.status, error.reason)
        if allow := error.headers.get("Allow"):
            response.headers["Allow"] = allow  # a 405 says which methods would do
        return response
    except ConnectionError:
        raise  # the client went away: nobody to answer, nothing to report
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "Internal Server Error")


def error_response(status: int, reason: str) -> web.Response:
    return web.json_response(
        {"error": reason, "status": status}, status=status, dumps=to_json
    )


def to_json(data: object) -> str:
    """Compact JSON and a newline, as Flask writes it: one format in every cell."""
    return json.dumps(data, separators=(",", ":")) + "\n"


def create_app(settings: HttpSettings) -> web.Application:
    """Build the application; the server supplies the settings."""
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[json_errors]
    )
    app[MAX_BODY_BYTES] = settings.max_body_bytes
    app.add_routes(routes)
    return app
