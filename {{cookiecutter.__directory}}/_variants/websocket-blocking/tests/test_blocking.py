"""One client at a time: the next one waits, and is served once the first leaves."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from .serverprocess import ServerProcess, StartServer, read_until_closed
from .test_server import assert_closed_with
from .wsclient import TIMEOUT_SECONDS, client, handshake_request


def test_a_second_client_waits_for_the_first(server: ServerProcess) -> None:
    with ThreadPoolExecutor(1) as background, client(server.address) as first:
        second = background.submit(client, server.address)
        time.sleep(1.0)
        assert not second.done()  # its handshake waits in the listen backlog
        first.close()
        with second.result() as websocket:
            websocket.send("second")
            assert websocket.recv(TIMEOUT_SECONDS) == "second"


def test_stop_answers_waiting_clients_with_503(start_server: StartServer) -> None:
    """Clients still in the listen backlog at SIGTERM are told so, not reset: a
    WebSocket opened then would be closed a moment later."""
    server = start_server()
    # Connected once create_connection returns: the kernel holds the second client
    # in the listen backlog, with its handshake request, until the server accepts.
    with (
        client(server.address) as first,
        socket.create_connection(server.address, TIMEOUT_SECONDS) as waiting,
    ):
        waiting.sendall(handshake_request())
        server.process.send_signal(signal.SIGTERM)
        assert_closed_with(first, 1001)
        assert read_until_closed(waiting).startswith(b"HTTP/1.1 503 ")
    assert server.process.wait(15) == 0
