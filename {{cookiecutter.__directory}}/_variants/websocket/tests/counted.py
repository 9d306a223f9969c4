"""What the metrics tests send: one message, and the sample that counts it."""

from __future__ import annotations

import socket

from websockets.sync.client import connect

from {{ cookiecutter.package_name }}.logs import address

HANDLED = ("messages_total", {"outcome": "ok"})
TIMEOUT_SECONDS = 10.0


def request(sock: socket.socket) -> None:
    """One message over a WebSocket opened on `sock`, answered."""
    uri = f"ws://{address(sock.getpeername())}/"
    with connect(uri, sock=sock, compression=None) as websocket:
        websocket.send("hello")
        assert websocket.recv(TIMEOUT_SECONDS) == "hello"
