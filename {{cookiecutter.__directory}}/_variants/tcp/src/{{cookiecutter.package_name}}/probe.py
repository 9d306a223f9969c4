"""The health probe of a line server: one real round trip.

It connects, sends one line and waits for one line back. The server is healthy when
it answers and can take a client now: an answer of ``ERROR server busy`` counts
as unhealthy, so a load balancer sends clients elsewhere; so does a refused
connection, which is what a stopping server gives. The command ``healthcheck``
runs it (healthcheck.py), over TLS when the server has it.
"""

from __future__ import annotations

import socket

from .protocol import error

PROBE = b"healthcheck\n"
BUSY = error("server busy")


def round_trip(sock: socket.socket) -> None:
    """Make the probe's round trip over `sock`, a connection to the server."""
    sock.sendall(PROBE)
    answer = sock.makefile("rb").readline()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the server closed the connection without answering")
    if answer == BUSY:
        raise ConnectionError(f"the server answered {answer.decode().strip()!r}")
