"""Many clients at once: served together, capped, and not held up by the rude."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from .crowds import FLOOD, TRICKLING_CLIENTS, allow_open_files, assert_served_beside
from .lineclient import LineClient
from .serverprocess import Address, StartServer, capacity, run_healthcheck

TEST_HANDLER = "tests.handlers:handle"
CLIENTS = 50
PERSISTENT_CLIENTS = 500
REQUESTS_EACH = 3


def test_serves_many_clients_at_once(start_server: StartServer) -> None:
    """Every client's request is in the handler at the same moment."""
    server = start_server(handler=TEST_HANDLER, **capacity(CLIENTS))

    def gather() -> str:
        with LineClient(server.address) as client:
            return client.request(f"gather {CLIENTS}")

    with ThreadPoolExecutor(CLIENTS) as clients:
        replies = list(clients.map(lambda _: gather(), range(CLIENTS)))
    # A client whose request waited for another's would have seen fewer arrive.
    assert replies == [f"gathered {CLIENTS}"] * CLIENTS


def test_refuses_clients_beyond_the_cap_then_admits_again(
    start_server: StartServer,
) -> None:
    server = start_server(**capacity(2))
    first, second = LineClient(server.address), LineClient(server.address)
    assert first.request("one") == "one"
    assert second.request("two") == "two"
    with LineClient(server.address) as third:
        assert third.read_line() == "ERROR server busy"
        assert third.is_closed_by_server()
    assert "refused" in server.wait_for_log(r"refused .*: server busy")[0]
    assert "Traceback" not in server.log
    first.close()
    for _ in range(50):  # the server notices the close a moment later
        with LineClient(server.address) as fourth:
            if fourth.request("four") == "four":
                break
        time.sleep(0.1)
    else:
        raise AssertionError("a slot freed by a leaving client was never reused")
    second.close()


def test_a_full_server_reports_itself_unhealthy(start_server: StartServer) -> None:
    server = start_server(**capacity(1))
    with LineClient(server.address) as client:
        assert client.request("hello") == "hello"
        result = run_healthcheck(*server.address)
    assert result.returncode == 1
    assert "server busy" in result.stderr


def test_refusals_do_not_flood_the_log(start_server: StartServer) -> None:
    server = start_server(**capacity(1))
    with LineClient(server.address) as client:
        assert client.request("hello") == "hello"
        for _ in range(20):
            with LineClient(server.address) as refused:
                assert refused.read_line() == "ERROR server busy"
    assert server.log.count("refused") == 1


async def round_trip(address: Address, line: str) -> str:
    """One request on a new connection: the reply line."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(line.encode() + b"\n")
        return (await reader.readline()).decode().rstrip("\n")
    finally:
        writer.close()


def test_serves_500_clients_each_on_its_own_connection(
    start_server: StartServer,
) -> None:
    """With the default settings, none is refused (and a pool serves them all
    with its few workers)."""
    server = start_server()

    async def client(number: int) -> list[str]:
        reader, writer = await asyncio.open_connection(*server.address)
        replies = []
        for request in range(REQUESTS_EACH):
            writer.write(f"client {number} request {request}\n".encode())
            replies.append((await reader.readline()).decode())
        writer.close()
        return replies

    async def clients() -> list[list[str]]:
        allow_open_files(PERSISTENT_CLIENTS)
        return await asyncio.gather(*map(client, range(PERSISTENT_CLIENTS)))

    assert asyncio.run(clients()) == [
        [f"client {n} request {r}\n" for r in range(REQUESTS_EACH)]
        for n in range(PERSISTENT_CLIENTS)
    ]


def test_clients_trickling_their_lines_hold_up_no_one(
    start_server: StartServer,
) -> None:
    """Slowloris: 200 clients send a byte at a time; another is answered while
    they are all still connected, not after their idle timeout ends them."""
    server = start_server()
    assert_served_beside(
        TRICKLING_CLIENTS,
        server.address,
        lambda: round_trip(server.address, "hello"),
        "hello",
        first=b"x",
        trickle=b"x",
    )


def test_a_flood_of_silent_connections_holds_up_no_one(
    start_server: StartServer,
) -> None:
    server = start_server()
    assert_served_beside(
        FLOOD, server.address, lambda: round_trip(server.address, "hello"), "hello"
    )
