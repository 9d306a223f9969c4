"""The HTTP cells' engines, bare: an aiohttp application on aiohttp's server, and
Flask on werkzeug's WSGI server as `werkzeug.serving.make_server` builds it."""

from __future__ import annotations

import asyncio
import sys
import time

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from . import WAIT_SECONDS, PoolMixIn, listening, run_asyncio

HELLO = "Hello from a bare server!\n"


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        return HELLO

    @app.get("/wait")
    def wait() -> str:
        time.sleep(WAIT_SECONDS)
        return "waited\n"

    return app


async def serve_aiohttp() -> None:
    from aiohttp import web

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=HELLO)

    async def wait(request: web.Request) -> web.Response:
        await asyncio.sleep(WAIT_SECONDS)
        return web.Response(text="waited\n")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/wait", wait)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    listening(runner.addresses[0][:2], "bare aiohttp")
    await asyncio.Event().wait()


class PoolServer(PoolMixIn, BaseWSGIServer):
    pass


def main(model: str) -> None:
    if model == "asyncio":
        run_asyncio(serve_aiohttp)
        return
    if model == "threadpool":
        server: BaseWSGIServer = PoolServer("127.0.0.1", 0, flask_app())
    else:
        server = make_server("127.0.0.1", 0, flask_app(), threaded=model == "threaded")
    listening(server.server_address, f"bare werkzeug, {model}")
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
