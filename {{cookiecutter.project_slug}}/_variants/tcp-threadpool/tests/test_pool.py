"""The pool's queue: clients beyond the workers wait their turn, in order."""

from __future__ import annotations

from .lineclient import LineClient
from .serverprocess import StartServer


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
