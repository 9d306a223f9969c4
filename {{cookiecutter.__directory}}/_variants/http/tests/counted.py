"""What the metrics tests send: one request, and the sample that counts it."""

from __future__ import annotations

import http.client
import socket

HANDLED = ("requests_total", {"outcome": "2xx"})


def request(sock: socket.socket) -> None:
    """One request over `sock`, answered."""
    connection = http.client.HTTPConnection(*sock.getpeername()[:2])
    connection.sock = sock
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
