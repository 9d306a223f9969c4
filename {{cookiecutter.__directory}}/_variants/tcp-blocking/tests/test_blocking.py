"""One client at a time: the next one waits, and is served once the first leaves."""

from __future__ import annotations

import signal

from .lineclient import LineClient
from .serverprocess import ServerProcess, StartServer
from .test_server import TEST_HANDLER


def test_a_second_client_waits_for_the_first(server: ServerProcess) -> None:
    with LineClient(server.address) as first, LineClient(server.address) as second:
        assert first.request("first") == "first"
        second.send(b"second\n")
        assert not second.has_answer(within=1.0)
        first.close()
        assert second.read_line() == "second"


def test_stop_serves_waiting_clients(start_server: StartServer) -> None:
    """Clients already waiting in the listen backlog at SIGTERM are served, not
    reset."""
    server = start_server(handler=TEST_HANDLER)
    with LineClient(server.address) as busy, LineClient(server.address) as waiting:
        busy.send(b"sleep 1\n")
        server.wait_for_log("sleep started")
        waiting.send(b"anyone there?\n")
        server.process.send_signal(signal.SIGTERM)
        assert busy.read_line() == "slept 1"
        assert waiting.read_line() == "anyone there?"
        assert waiting.is_closed_by_server()
    assert server.process.wait(15) == 0
