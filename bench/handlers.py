"""Handlers for the I/O- and CPU-bound workloads: the project's own, plus a
request that waits 50 ms as a call to a database or another service would, and one
that computes for 10 ms.

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
BURN_SECONDS = 0.01
PACKAGE = os.environ.get("BENCH_PACKAGE", "")


def burn() -> None:
    """Keep the CPU busy (and the GIL held) for BURN_SECONDS."""
    deadline = time.thread_time() + BURN_SECONDS
    while time.thread_time() < deadline:
        pass


def sync_handler(message: Any) -> Any:
    if message == "wait":
        time.sleep(WAIT_SECONDS)
    elif message == "burn":
        burn()
    return message


async def async_handler(message: Any) -> Any:
    if message == "wait":
        await asyncio.sleep(WAIT_SECONDS)
    elif message == "burn":
        burn()
    return message


def flask_app(settings: Any) -> Any:
    app = importlib.import_module(f"{PACKAGE}.app").create_app(settings)

    def wait() -> str:
        time.sleep(WAIT_SECONDS)
        return "waited\n"

    def burned() -> str:
        burn()
        return "burned\n"

    app.add_url_rule("/wait", "wait", wait)
    app.add_url_rule("/burn", "burn", burned)
    return app


def aiohttp_app(settings: Any) -> Any:
    from aiohttp import web

    app = importlib.import_module(f"{PACKAGE}.app").create_app(settings)

    async def wait(request: web.Request) -> web.Response:
        await asyncio.sleep(WAIT_SECONDS)
        return web.Response(text="waited\n")

    async def burned(request: web.Request) -> web.Response:
        burn()
        return web.Response(text="burned\n")

    app.router.add_get("/wait", wait)
    app.router.add_get("/burn", burned)
    return app


def for_cell(protocol: str, model: str) -> str:
    """The name of the handler for a cell, in this module."""
    if protocol == "http":
        return "aiohttp_app" if model == "asyncio" else "flask_app"
    return "async_handler" if model == "asyncio" else "sync_handler"
