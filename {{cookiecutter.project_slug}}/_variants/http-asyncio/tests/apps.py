"""The application plus routes for the tests, to reach what it never does itself."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from {{ cookiecutter.package_name }}.app import create_app as create_project_app
from {{ cookiecutter.package_name }}.limits import HttpSettings

log = logging.getLogger(__name__)
GATHER_TIMEOUT_SECONDS = 10.0
routes = web.RouteTableDef()
_arrived = asyncio.Condition()
_gathered = 0


@routes.get("/crash")
async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("crash requested")


@routes.get("/sleep/{seconds}")
async def sleep(request: web.Request) -> web.Response:
    log.warning("sleep started")
    await asyncio.sleep(float(request.match_info["seconds"]))
    return web.Response(text="slept")


@routes.get("/gather/{expected}")
async def gather(request: web.Request) -> web.Response:
    """Wait until `expected` requests are here at once (or give up); say how many."""
    global _gathered
    expected = int(request.match_info["expected"])
    async with _arrived:
        _gathered += 1
        _arrived.notify_all()
        try:
            async with asyncio.timeout(GATHER_TIMEOUT_SECONDS):
                await _arrived.wait_for(lambda: _gathered >= expected)
        except TimeoutError:
            pass
        return web.Response(text=f"gathered {_gathered}")


def create_app(settings: HttpSettings) -> web.Application:
    app = create_project_app(settings)
    app.add_routes(routes)
    return app
