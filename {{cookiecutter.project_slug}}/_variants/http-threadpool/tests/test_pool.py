"""The pool's queue: connections beyond the workers wait their turn, for a while."""

from __future__ import annotations

import http.client
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from .serverprocess import StartServer
from .test_server import TIMEOUT_SECONDS, request

TEST_APP = "tests.apps:create_app"
ADMITTED_SECONDS = 0.5  # ample for the accept loop to take a waiting connection


def test_a_queued_request_is_served_when_a_worker_frees(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_APP, pool_size=1, max_connections=2)
    with ThreadPoolExecutor(1) as clients:
        first = clients.submit(request, server.address, "GET", "/sleep/1")
        server.wait_for_log("sleep started")
        with socket.create_connection(server.address, TIMEOUT_SECONDS) as queued:
            queued.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(ADMITTED_SECONDS)
            assert request(server.address, "GET", "/")[0] == 503  # pool, queue full
            response = http.client.HTTPResponse(queued)
            response.begin()
            assert response.status == 200
        assert first.result()[0] == 200


def test_a_request_queued_past_the_idle_timeout_gets_503(
    start_server: StartServer,
) -> None:
    server = start_server(
        handler=TEST_APP, pool_size=1, max_connections=2, idle_timeout=1
    )
    with ThreadPoolExecutor(1) as clients:
        first = clients.submit(request, server.address, "GET", "/sleep/4")
        server.wait_for_log("sleep started")
        assert request(server.address, "GET", "/healthz")[0] == 503
        assert first.result()[0] == 200
