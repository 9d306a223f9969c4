"""Many clients at once: served together, capped, and not held up by the rude."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .crowds import FLOOD, TRICKLING_CLIENTS, allow_open_files, assert_served_beside
from .serverprocess import Address, StartServer, capacity, run_healthcheck
from .wsclient import TIMEOUT_SECONDS, client

TEST_HANDLER = "tests.handlers:handle"
CLIENTS = 30
PERSISTENT_CLIENTS = 500
MESSAGES_EACH = 3


def test_serves_many_clients_at_once(start_server: StartServer) -> None:
    """Every client's message is in the handler at the same moment."""
    server = start_server(handler=TEST_HANDLER, **capacity(CLIENTS))

    def gather() -> object:
        with client(server.address) as websocket:
            websocket.send(f"gather {CLIENTS}")
            return websocket.recv(TIMEOUT_SECONDS)

    with ThreadPoolExecutor(CLIENTS) as clients:
        replies = list(clients.map(lambda _: gather(), range(CLIENTS)))
    # A client whose message waited for another's would have seen fewer arrive.
    assert replies == [f"gathered {CLIENTS}"] * CLIENTS


def test_refuses_clients_beyond_the_cap_then_admits_again(
    start_server: StartServer,
) -> None:
    server = start_server(**capacity(2))
    with client(server.address) as first, client(server.address):
        with pytest.raises(InvalidStatus) as refused:
            client(server.address)
        assert refused.value.response.status_code == 503
        assert refused.value.response.body == b"server busy\n"
        server.wait_for_log(r"refused .*: server busy")
        first.close()
        for _ in range(50):  # the server notices the close a moment later
            try:
                with client(server.address):
                    break
            except InvalidStatus:
                time.sleep(0.1)
        else:
            pytest.fail("a slot freed by a leaving client was never reused")
    assert "Traceback" not in server.log


def test_a_full_server_reports_itself_unhealthy(start_server: StartServer) -> None:
    server = start_server(**capacity(1))
    with client(server.address):
        result = run_healthcheck(*server.address)
    assert result.returncode == 1
    assert "503" in result.stderr


def test_refusals_do_not_flood_the_log(start_server: StartServer) -> None:
    server = start_server(**capacity(1))
    with client(server.address):
        for _ in range(20):
            with pytest.raises(InvalidStatus):
                client(server.address)
    assert server.log.count("refused") == 1


async def echo(address: Address, message: str) -> object:
    """A message on a new WebSocket: the reply."""
    host, port = address
    async with connect(f"ws://{host}:{port}/", open_timeout=TIMEOUT_SECONDS) as ws:
        await ws.send(message)
        return await asyncio.wait_for(ws.recv(), TIMEOUT_SECONDS)


def test_serves_500_clients_each_on_its_own_connection(
    start_server: StartServer,
) -> None:
    """With the default settings, none is refused (and a pool serves them all
    with its few workers)."""
    server = start_server()
    host, port = server.address

    async def client(number: int) -> list[str | bytes]:
        async with connect(f"ws://{host}:{port}/", open_timeout=60) as websocket:
            replies: list[str | bytes] = []
            for message in range(MESSAGES_EACH):
                await websocket.send(f"client {number} message {message}")
                replies.append(await asyncio.wait_for(websocket.recv(), 60))
            return replies

    async def clients() -> list[list[str | bytes]]:
        allow_open_files(PERSISTENT_CLIENTS)
        return await asyncio.gather(*map(client, range(PERSISTENT_CLIENTS)))

    assert asyncio.run(clients()) == [
        [f"client {n} message {m}" for m in range(MESSAGES_EACH)]
        for n in range(PERSISTENT_CLIENTS)
    ]


def test_clients_trickling_their_handshakes_hold_up_no_one(
    start_server: StartServer,
) -> None:
    """Slowloris: 200 clients send their opening handshakes a byte at a time;
    another is answered while they are all still connected."""
    server = start_server()
    assert_served_beside(
        TRICKLING_CLIENTS,
        server.address,
        lambda: echo(server.address, "hello"),
        "hello",
        first=b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        trickle=b"x",
    )


def test_a_flood_of_silent_connections_holds_up_no_one(
    start_server: StartServer,
) -> None:
    server = start_server()
    assert_served_beside(
        FLOOD, server.address, lambda: echo(server.address, "hello"), "hello"
    )
