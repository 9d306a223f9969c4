"""What the metrics tests send: one request, and the sample that counts it."""

from __future__ import annotations

import socket

HANDLED = ("requests_total", {"outcome": "ok"})


def request(sock: socket.socket) -> None:
    """One request over `sock`, answered."""
    sock.sendall(b"hello\n")
    assert sock.makefile("rb").readline() == b"hello\n"
