"""Many clients at once: served together, and capped."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidStatus

from .serverprocess import StartServer, capacity, run_healthcheck
from .wsclient import TIMEOUT_SECONDS, client

TEST_HANDLER = "tests.handlers:handle"
CLIENTS = 30


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
