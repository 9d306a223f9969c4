"""The application plus routes for the tests, to reach what it never does itself."""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from {{ cookiecutter.package_name }}.app import create_app as create_project_app
from {{ cookiecutter.package_name }}.limits import HttpSettings

from .gathering import gather

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/crash")
async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("crash requested")


@routes.get("/pid")
async def pid(request: web.Request) -> web.Response:
    return web.Response(text=str(os.getpid()))


@routes.get("/sleep/{seconds}")
async def sleep(request: web.Request) -> web.Response:
    log.warning("sleep started")
    await asyncio.sleep(float(request.match_info["seconds"]))
    return web.Response(text="slept")


@routes.get("/gather/{expected}")
async def gather_requests(request: web.Request) -> web.Response:
    gathered = await gather(int(request.match_info["expected"]))
    return web.Response(text=f"gathered {gathered}")


def create_app(settings: HttpSettings) -> web.Application:
    app = create_project_app(settings)
    app.add_routes(routes)
    return app
