"""The health probe of a line server: one real round trip.

It connects, sends one line and waits for one line back. The server is healthy when
it answers and can take a client now: an answer of ``ERROR server busy`` counts
as unhealthy, so a load balancer sends clients elsewhere; so does a refused
connection, which is what a stopping server gives. The command ``healthcheck``
runs it.
"""

from __future__ import annotations

import socket

from .protocol import error

PROBE = b"healthcheck\n"
TIMEOUT_SECONDS = 3.0
BUSY = error("server busy")


def probe(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> None:
    """Make one round trip; raise OSError saying why the server is not healthy."""
    with socket.create_connection((host, port), timeout) as sock:
        round_trip(sock)


def round_trip(sock: socket.socket) -> None:
    """Make the probe's round trip over `sock`, a connection to the server."""
    sock.sendall(PROBE)
    answer = sock.makefile("rb").readline()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the server closed the connection without answering")
    if answer == BUSY:
        raise ConnectionError(f"the server answered {answer.decode().strip()!r}")
