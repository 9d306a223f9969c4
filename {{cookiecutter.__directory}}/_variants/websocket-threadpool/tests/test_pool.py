"""The pool: one thread holds every WebSocket, workers run only whole messages."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from .serverprocess import StartServer
from .wsclient import TIMEOUT_SECONDS, client

TEST_HANDLER = "tests.handlers:handle"


def test_a_worker_is_free_while_its_client_stays_connected(
    start_server: StartServer,
) -> None:
    server = start_server(pool_size=1)
    with client(server.address) as first, client(server.address) as second:
        first.send("first")
        assert first.recv(TIMEOUT_SECONDS) == "first"
        second.send("second")
        assert second.recv(TIMEOUT_SECONDS) == "second"  # from the only worker
        first.send("first again")
        assert first.recv(TIMEOUT_SECONDS) == "first again"


def test_a_message_waits_for_a_free_worker(start_server: StartServer) -> None:
    server = start_server(handler=TEST_HANDLER, pool_size=1)
    with client(server.address) as busy, client(server.address) as waiting:
        busy.send("sleep 1")
        server.wait_for_log("sleep started")
        waiting.send("waiting")
        with pytest.raises(TimeoutError):
            waiting.recv(0.5)  # the only worker sleeps
        assert busy.recv(TIMEOUT_SECONDS) == "slept 1"
        assert waiting.recv(TIMEOUT_SECONDS) == "waiting"


def test_a_message_that_waits_past_the_idle_timeout_closes_with_1013(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_HANDLER, pool_size=1, idle_timeout=1)
    with client(server.address) as busy, client(server.address) as waiting:
        busy.send("sleep 4")
        server.wait_for_log("sleep started")
        waiting.send("hello")
        with pytest.raises(ConnectionClosed) as closed:
            waiting.recv(TIMEOUT_SECONDS)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013  # try again later
        assert busy.recv(TIMEOUT_SECONDS) == "slept 4"
    server.wait_for_log(r"refused a request from .*: server busy")
