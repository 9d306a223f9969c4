"""Handlers for the I/O-bound workload: the project's own, plus a request that
waits 50 ms as a call to a database or another service would.

The server loads them in place of its own (its ``main(argv, handler)``); the
package of the cell is in BENCH_PACKAGE.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from typing import Any

WAIT_SECONDS = 0.05
PACKAGE = os.environ.get("BENCH_PACKAGE", "")


def sync_handler(message: Any) -> Any:
    if message == "wait":
        time.sleep(WAIT_SECONDS)
    return message


async def async_handler(message: Any) -> Any:
    if message == "wait":
        await asyncio.sleep(WAIT_SECONDS)
    return message


def flask_app(settings: Any) -> Any:
    app = importlib.import_module(f"{PACKAGE}.app").create_app(settings)

    def wait() -> str:
        time.sleep(WAIT_SECONDS)
        return "waited\n"

    app.add_url_rule("/wait", "wait", wait)
    return app


def aiohttp_app(settings: Any) -> Any:
    from aiohttp import web

    app = importlib.import_module(f"{PACKAGE}.app").create_app(settings)

    async def wait(request: web.Request) -> web.Response:
        await asyncio.sleep(WAIT_SECONDS)
        return web.Response(text="waited\n")

    app.router.add_get("/wait", wait)
    return app


def for_cell(protocol: str, model: str) -> str:
    """The name of the handler for a cell, in this module."""
    if protocol == "http":
        return "aiohttp_app" if model == "asyncio" else "flask_app"
    return "async_handler" if model == "asyncio" else "sync_handler"
