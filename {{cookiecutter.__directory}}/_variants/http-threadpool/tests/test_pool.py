"""The pool: one thread holds every connection, workers run only whole requests."""

from __future__ import annotations

import http.client
import socket
from concurrent.futures import ThreadPoolExecutor

from .serverprocess import StartServer
from .test_server import TIMEOUT_SECONDS, request

TEST_APP = "tests.apps:create_app"


def test_a_worker_is_free_while_its_client_keeps_its_connection(
    start_server: StartServer,
) -> None:
    server = start_server(pool_size=1)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(kept)
        response.begin()
        assert (response.status, response.will_close) == (200, False)
        assert request(server.address, "GET", "/")[0] == 200  # from the only worker


def test_a_request_waits_for_a_free_worker(start_server: StartServer) -> None:
    server = start_server(handler=TEST_APP, pool_size=1)
    with ThreadPoolExecutor(2) as clients:
        busy = clients.submit(request, server.address, "GET", "/sleep/1")
        server.wait_for_log("sleep started")
        waiting = clients.submit(request, server.address, "GET", "/")
        assert busy.result()[0] == 200
        assert waiting.result()[0] == 200
    # Answered in the order the worker took them.
    assert server.log.index('"GET /sleep/1') < server.log.index('"GET / HTTP')


def test_a_request_that_waits_past_the_idle_timeout_gets_503(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_APP, pool_size=1, idle_timeout=1)
    with ThreadPoolExecutor(1) as clients:
        busy = clients.submit(request, server.address, "GET", "/sleep/4")
        server.wait_for_log("sleep started")
        assert request(server.address, "GET", "/healthz")[0] == 503
        assert busy.result()[0] == 200
    server.wait_for_log(r"refused a request from .*: server busy")
