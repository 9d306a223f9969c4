"""The thread models' stop, where HTTP asks more of it than the other protocols."""

from __future__ import annotations

import signal
import socket
import time

from .serverprocess import StartServer, read_until_closed
from .test_server import TIMEOUT_SECONDS, status_of

STOP_GRACE_SECONDS = 2.0  # that idle connections get at a stop


def test_stop_answers_a_request_whose_body_is_still_coming(
    start_server: StartServer,
) -> None:
    """A request whose head has come is in progress: the stop's grace does not
    cut its body off."""
    server = start_server(shutdown_timeout=60, idle_timeout=60)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
        sock.sendall(head + b"hello")
        time.sleep(0.5)  # the server takes the head in
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log("stopping")
        time.sleep(STOP_GRACE_SECONDS + 0.5)
        sock.sendall(b"world")
        response = read_until_closed(sock)
        assert status_of(response) == 200
        assert response.endswith(b"helloworld")
    assert server.process.wait(15) == 0
