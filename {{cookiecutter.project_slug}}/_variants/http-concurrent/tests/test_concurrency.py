"""Many clients at once: served together, and capped."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from .serverprocess import StartServer, capacity
from .test_server import request

TEST_APP = "tests.apps:create_app"
CLIENTS = 50


def test_serves_many_requests_at_once(start_server: StartServer) -> None:
    """Every client's request is in the application at the same moment."""
    server = start_server(handler=TEST_APP, **capacity(CLIENTS))

    def gather() -> bytes:
        return request(server.address, "GET", f"/gather/{CLIENTS}")[2]

    with ThreadPoolExecutor(CLIENTS) as clients:
        bodies = list(clients.map(lambda _: gather(), range(CLIENTS)))
    # A request that waited for another's would have seen fewer arrive.
    assert bodies == [f"gathered {CLIENTS}".encode()] * CLIENTS


def test_answers_503_beyond_the_cap_then_admits_again(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_APP, **capacity(1))
    with ThreadPoolExecutor(1) as busy:
        sleeping = busy.submit(request, server.address, "GET", "/sleep/2")
        server.wait_for_log("sleep started")
        status, _, body = request(server.address, "GET", "/")
        assert status == 503
        assert json.loads(body)["status"] == 503
        assert sleeping.result()[0] == 200
    for _ in range(50):  # the server notices the slot is free a moment later
        if request(server.address, "GET", "/")[0] == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a slot freed by a finished request was never reused")
    server.wait_for_log(r"refused .*: server busy")
    assert "Traceback" not in server.log
