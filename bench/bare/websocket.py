"""The WebSocket cells' engines, bare: websockets' asyncio server, and its sync
server (a thread per connection), or its connection handler called in turn or on
a pool."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from websockets.asyncio.server import ServerConnection as AsyncConnection
from websockets.asyncio.server import serve as serve_async
from websockets.sync.server import ServerConnection, serve

from . import POOL_SIZE, WAIT_SECONDS, listening, run_asyncio


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        if message == "wait":
            time.sleep(WAIT_SECONDS)
        websocket.send(message)


async def echo_async(websocket: AsyncConnection) -> None:
    async for message in websocket:
        if message == "wait":
            await asyncio.sleep(WAIT_SECONDS)
        await websocket.send(message)


async def serve_asyncio() -> None:
    async with serve_async(echo_async, "127.0.0.1", 0) as server:
        listening(server.sockets[0].getsockname(), "bare websockets, asyncio")
        await server.serve_forever()


def main(model: str) -> None:
    if model == "asyncio":
        run_asyncio(serve_asyncio)
        return
    with serve(echo, "127.0.0.1", 0) as server:
        listening(server.socket.getsockname(), f"bare websockets, {model}")
        if model == "threaded":
            server.serve_forever()  # its own thread per connection
            return
        pool = ThreadPoolExecutor(POOL_SIZE)
        while True:
            connection, address = server.socket.accept()
            if model == "blocking":
                server.handler(connection, address)
            else:
                pool.submit(server.handler, connection, address)


if __name__ == "__main__":
    main(sys.argv[1])
