"""The pool's queue: clients beyond the workers wait their turn, for a while."""

from __future__ import annotations

import socket

import pytest
from websockets.exceptions import InvalidStatus

from .serverprocess import StartServer
from .wsclient import TIMEOUT_SECONDS, client, handshake_request


def test_a_queued_client_is_served_when_a_worker_frees(
    start_server: StartServer,
) -> None:
    server = start_server(pool_size=1, max_connections=2)
    # Connected once create_connection returns, so queued before the third client.
    with (
        client(server.address) as first,
        socket.create_connection(server.address, TIMEOUT_SECONDS) as queued,
    ):
        queued.sendall(handshake_request())
        with pytest.raises(InvalidStatus) as refused:
            client(server.address)
        assert refused.value.response.status_code == 503
        queued.settimeout(1.0)
        with pytest.raises(TimeoutError):
            queued.recv(1)  # its handshake waits for a worker
        first.close()
        queued.settimeout(TIMEOUT_SECONDS)
        assert queued.recv(65536).startswith(b"HTTP/1.1 101 ")


def test_a_client_queued_past_the_idle_timeout_is_turned_away(
    start_server: StartServer,
) -> None:
    server = start_server(pool_size=1, max_connections=2, idle_timeout=1)
    with client(server.address), pytest.raises(InvalidStatus) as refused:
        client(server.address)
    assert refused.value.response.status_code == 503
