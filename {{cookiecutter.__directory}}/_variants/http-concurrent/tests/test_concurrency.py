"""Many clients at once: served together, capped, and not held up by the rude."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from .crowds import FLOOD, TRICKLING_CLIENTS, allow_open_files, assert_served_beside
from .serverprocess import Address, ServerProcess, StartServer, capacity
from .test_server import TIMEOUT_SECONDS, request, status_of

TEST_APP = "tests.apps:create_app"
CLIENTS = 50
PERSISTENT_CLIENTS = 500
REQUESTS_EACH = 3
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"(?im)^content-length: *([0-9]+)\r$")


def test_serves_many_requests_at_once(start_server: StartServer) -> None:
    """Every client's request is in the application at the same moment."""
    server = start_server(handler=TEST_APP, **capacity(CLIENTS))

    def gather() -> bytes:
        return request(server.address, "GET", f"/gather/{CLIENTS}")[2]

    with ThreadPoolExecutor(CLIENTS) as clients:
        bodies = list(clients.map(lambda _: gather(), range(CLIENTS)))
    # A request that waited for another's would have seen fewer arrive.
    assert bodies == [f"gathered {CLIENTS}".encode()] * CLIENTS


def test_answers_503_beyond_the_cap_then_admits_again(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_APP, **capacity(1))
    with ThreadPoolExecutor(1) as busy:
        sleeping = busy.submit(request, server.address, "GET", "/sleep/2")
        server.wait_for_log("sleep started")
        status, _, body = request(server.address, "GET", "/")
        assert status == 503
        assert json.loads(body)["status"] == 503
        assert sleeping.result()[0] == 200
    for _ in range(50):  # the server notices the slot is free a moment later
        if request(server.address, "GET", "/")[0] == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a slot freed by a finished request was never reused")
    server.wait_for_log(r"refused .*: server busy")
    assert "Traceback" not in server.log


def test_keeps_a_connection_open_for_more_requests(server: ServerProcess) -> None:
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        for path in ("/", "/healthz"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert (response.status, response.will_close) == (200, False)
            response.read()


async def get(address: Address) -> int:
    """GET / on a new connection: the status."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return status_of(await reader.read())
    finally:
        writer.close()


def test_serves_500_clients_each_on_its_own_connection(
    start_server: StartServer,
) -> None:
    """Each client keeps its connection for its requests. With the default
    settings, none is refused (and a pool serves them all with its few workers)."""
    server = start_server()

    async def client() -> list[bytes]:
        reader, writer = await asyncio.open_connection(*server.address)
        statuses = []
        for _ in range(REQUESTS_EACH):
            writer.write(GET)
            head = await reader.readuntil(b"\r\n\r\n")
            length = CONTENT_LENGTH.search(head)
            assert length is not None, head
            await reader.readexactly(int(length[1]))
            statuses.append(head.split(b" ", 2)[1])
        writer.close()
        return statuses

    async def clients() -> list[list[bytes]]:
        allow_open_files(PERSISTENT_CLIENTS)
        return await asyncio.gather(*(client() for _ in range(PERSISTENT_CLIENTS)))

    assert asyncio.run(clients()) == [[b"200"] * REQUESTS_EACH] * PERSISTENT_CLIENTS


def test_clients_trickling_their_requests_hold_up_no_one(
    start_server: StartServer,
) -> None:
    """Slowloris: 200 clients send their request heads a byte at a time; another
    is answered while they are all still connected, not after their deadline."""
    server = start_server()
    assert_served_beside(
        TRICKLING_CLIENTS,
        server.address,
        lambda: get(server.address),
        200,
        first=b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        trickle=b"x",
    )


def test_a_flood_of_silent_connections_holds_up_no_one(
    start_server: StartServer,
) -> None:
    server = start_server()
    assert_served_beside(FLOOD, server.address, lambda: get(server.address), 200)
