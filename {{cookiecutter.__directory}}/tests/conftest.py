"""Fixtures that start the real server on a free port and stop it after the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .serverprocess import ServerProcess, StartServer


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start servers on free ports: ``start_server(*flags, handler=, **settings)``.

    `handler` names a test handler as ``module:function``; settings become the
    environment variables the server reads; `environ` adds other variables.
    """
    started: list[ServerProcess] = []

    def start(*flags: str, **options: Any) -> ServerProcess:
        started.append(ServerProcess.start(*flags, **options))
        return started[-1]

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    """The project's own server, with its own handler and default settings."""
    return start_server()
