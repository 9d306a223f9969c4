"""Out of file descriptors, a server waits for some to free, then serves again."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from {{ cookiecutter.package_name }}.probe import round_trip

from .serverprocess import StartServer

LIMIT = 100  # the server's open file limit in this test
TIMEOUT_SECONDS = 10.0


def test_a_flood_past_the_open_file_limit_takes_nothing_down(
    start_server: StartServer,
) -> None:
    server = start_server(
        before="import resource; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, {LIMIT}))"
    )
    with contextlib.ExitStack() as flood:
        for _ in range(LIMIT + 50):  # the last wait in the listen backlog
            flood.enter_context(
                socket.create_connection(server.address, TIMEOUT_SECONDS)
            )
    for _ in range(50):  # the server notices the flood has gone a moment later
        try:
            with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
                round_trip(sock)
                break
        except OSError:  # turned away while it had no descriptor to spare
            time.sleep(0.1)
    else:
        pytest.fail("the server never served again")
    assert server.process.poll() is None
