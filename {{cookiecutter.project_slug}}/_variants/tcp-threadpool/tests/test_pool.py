"""The pool's queue: clients beyond the workers wait their turn, for a while."""

from __future__ import annotations

from .lineclient import LineClient
from .serverprocess import StartServer

TEST_HANDLER = "tests.handlers:handle"


def test_a_queued_client_is_served_when_a_worker_frees(
    start_server: StartServer,
) -> None:
    server = start_server(pool_size=1, max_connections=2)
    with LineClient(server.address) as first, LineClient(server.address) as queued:
        assert first.request("first") == "first"
        queued.send(b"queued\n")
        assert not queued.has_answer(within=1.0)
        with LineClient(server.address) as refused:
            assert refused.read_line() == "ERROR server busy"
        first.close()
        assert queued.read_line() == "queued"


def test_a_client_queued_past_the_idle_timeout_is_turned_away(
    start_server: StartServer,
) -> None:
    server = start_server(
        handler=TEST_HANDLER, pool_size=1, max_connections=2, idle_timeout=1
    )
    with LineClient(server.address) as busy, LineClient(server.address) as queued:
        busy.send(b"sleep 4\n")
        server.wait_for_log("sleep started")
        queued.send(b"hello\n")
        assert queued.read_line() == "ERROR server busy"
        assert queued.is_closed_by_server()
        assert busy.read_line() == "slept 4"
