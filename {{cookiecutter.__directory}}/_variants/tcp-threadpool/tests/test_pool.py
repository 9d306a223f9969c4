"""The pool: one thread holds every client, workers run only complete requests."""

from __future__ import annotations

from .lineclient import LineClient
from .serverprocess import StartServer
from .test_metrics import free_port, read, wait_until

TEST_HANDLER = "tests.handlers:handle"


def test_a_worker_is_free_while_its_client_stays_connected(
    start_server: StartServer,
) -> None:
    server = start_server(pool_size=1)
    with LineClient(server.address) as first, LineClient(server.address) as second:
        assert first.request("first") == "first"
        assert second.request("second") == "second"  # from the only worker
        assert first.request("first again") == "first again"


def test_a_request_waits_for_a_free_worker(start_server: StartServer) -> None:
    server = start_server(handler=TEST_HANDLER, pool_size=1)
    with LineClient(server.address) as busy, LineClient(server.address) as waiting:
        busy.send(b"sleep 1\n")
        server.wait_for_log("sleep started")
        waiting.send(b"waiting\n")
        assert not waiting.has_answer(within=0.5)  # the only worker sleeps
        assert busy.read_line() == "slept 1"
        assert waiting.read_line() == "waiting"


def test_a_request_that_waits_past_the_idle_timeout_is_turned_away(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_HANDLER, pool_size=1, idle_timeout=1)
    with LineClient(server.address) as busy, LineClient(server.address) as waiting:
        busy.send(b"sleep 4\n")
        server.wait_for_log("sleep started")
        waiting.send(b"hello\n")
        assert waiting.read_line() == "ERROR server busy"
        assert waiting.is_closed_by_server()
        assert busy.read_line() == "slept 4"
    server.wait_for_log(r"refused a request from .*: server busy")


def test_a_handler_that_exits_costs_only_its_client(start_server: StartServer) -> None:
    """SystemExit in a handler ends its connection, not the only worker."""
    server = start_server(handler=TEST_HANDLER, pool_size=1)
    with LineClient(server.address) as exiting:
        exiting.send(b"exit\n")
        assert exiting.is_closed_by_server()
    with LineClient(server.address) as client:
        assert client.request("still served") == "still served"
    assert server.stop() == 0


def test_a_scrape_shows_the_busy_worker_and_the_waiting_request(
    start_server: StartServer,
) -> None:
    port = free_port()
    server = start_server(handler=TEST_HANDLER, pool_size=1, metrics_port=port)

    def pool() -> tuple[float, float]:
        return read(port, "pool_busy_workers"), read(port, "pool_queued_requests")

    with LineClient(server.address) as busy, LineClient(server.address) as waiting:
        busy.send(b"sleep 2\n")
        server.wait_for_log("sleep started")
        waiting.send(b"waiting\n")
        wait_until(lambda: pool() == (1, 1))
        assert busy.read_line() == "slept 2"
        assert waiting.read_line() == "waiting"
        wait_until(lambda: pool() == (0, 0))
