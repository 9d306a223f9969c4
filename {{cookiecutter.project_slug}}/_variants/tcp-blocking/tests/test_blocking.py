"""One client at a time: the next one waits, and is served once the first leaves."""

from __future__ import annotations

from .lineclient import LineClient
from .serverprocess import ServerProcess


def test_a_second_client_waits_for_the_first(server: ServerProcess) -> None:
    with LineClient(server.address) as first, LineClient(server.address) as second:
        assert first.request("first") == "first"
        second.send(b"second\n")
        assert not second.has_answer(within=1.0)
        first.close()
        assert second.read_line() == "second"
