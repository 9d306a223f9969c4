"""Many clients at once: served together, and capped."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .lineclient import LineClient
from .serverprocess import StartServer, capacity, run_healthcheck

TEST_HANDLER = "tests.handlers:handle"
CLIENTS = 50


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
