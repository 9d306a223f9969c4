"""One connection at a time: the next client waits until the first is answered."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .serverprocess import StartServer
from .test_server import request

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
