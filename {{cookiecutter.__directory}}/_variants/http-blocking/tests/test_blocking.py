"""One connection at a time: the next client waits until the first is answered."""

from __future__ import annotations

import http.client
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from .serverprocess import ServerProcess, StartServer
from .test_server import TIMEOUT_SECONDS, request

TEST_APP = "tests.apps:create_app"


def test_a_second_request_waits_for_the_first(start_server: StartServer) -> None:
    server = start_server(handler=TEST_APP)
    with ThreadPoolExecutor(2) as clients:
        first = clients.submit(request, server.address, "GET", "/sleep/1")
        server.wait_for_log("sleep started")
        started = time.monotonic()
        second = clients.submit(request, server.address, "GET", "/healthz")
        assert second.result()[0] == 200
        # /healthz answers at once: it took this long only by waiting its turn.
        assert time.monotonic() - started > 0.5
        assert first.result()[0] == 200


def test_stop_serves_waiting_clients(start_server: StartServer) -> None:
    """Clients already waiting in the listen backlog at SIGTERM are served, not
    reset."""
    server = start_server(handler=TEST_APP)
    with ThreadPoolExecutor(1) as clients:
        first = clients.submit(request, server.address, "GET", "/sleep/1")
        server.wait_for_log("sleep started")
        with socket.create_connection(server.address, TIMEOUT_SECONDS) as waiting:
            waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            server.process.send_signal(signal.SIGTERM)
            assert first.result()[0] == 200
            response = http.client.HTTPResponse(waiting)
            response.begin()
            assert response.status == 200
    assert server.process.wait(15) == 0


def test_a_connection_ends_once_its_requests_are_answered(
    server: ServerProcess,
) -> None:
    """It is not kept open for more: the next client would wait on it."""
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert (response.status, response.will_close) == (200, True)
        response.read()
        assert sock.recv(1) == b""
