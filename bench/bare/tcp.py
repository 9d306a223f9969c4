"""The TCP cells' engines, bare: asyncio streams and socketserver, a line echoed."""

from __future__ import annotations

import asyncio
import socketserver
import sys
import time

from . import WAIT_SECONDS, PoolMixIn, listening, run_asyncio


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            if line == b"wait\n":
                time.sleep(WAIT_SECONDS)
            self.wfile.write(line)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        if line == b"wait\n":
            await asyncio.sleep(WAIT_SECONDS)
        writer.write(line)
        await writer.drain()
    writer.close()


async def serve_asyncio() -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    listening(server.sockets[0].getsockname(), "bare asyncio streams")
    await server.serve_forever()


class Server(socketserver.TCPServer):
    # The cells' backlog: socketserver's 5 drops connections, not the engine's cost.
    request_queue_size = 128


class PoolServer(PoolMixIn, Server):
    pass


class ThreadingServer(socketserver.ThreadingMixIn, Server):
    pass


SERVERS = {"threadpool": PoolServer, "threaded": ThreadingServer, "blocking": Server}


def main(model: str) -> None:
    if model == "asyncio":
        run_asyncio(serve_asyncio)
        return
    with SERVERS[model](("127.0.0.1", 0), Echo) as server:
        listening(server.server_address, f"bare socketserver, {model}")
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
