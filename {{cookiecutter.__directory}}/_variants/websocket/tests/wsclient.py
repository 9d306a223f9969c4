"""Clients for the tests: websockets' own, and a raw socket for what it never sends."""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Any

from websockets.sync.client import ClientConnection, connect

from .serverprocess import Address

TIMEOUT_SECONDS = 10.0


def client(address: Address, path: str = "/", **options: Any) -> ClientConnection:
    """A WebSocket client connected to the server, handshake done; use it in a
    `with` block."""
    host, port = address
    connection: ClientConnection = connect(
        f"ws://{host}:{port}{path}",
        open_timeout=TIMEOUT_SECONDS,
        close_timeout=TIMEOUT_SECONDS,
        **options,
    )
    return connection


def raw_handshake(address: Address) -> socket.socket:
    """A socket past the opening handshake, for frames no real client sends."""
    sock = socket.create_connection(address, timeout=TIMEOUT_SECONDS)
    sock.sendall(handshake_request())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        if not (byte := sock.recv(1)):
            raise ConnectionError(f"the server closed during the handshake: {head!r}")
        head += byte
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def handshake_request() -> bytes:
    """An opening handshake request, as a browser sends it (less its extras)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next frame from the server (never masked, never long here): its opcode
    and payload."""
    first, second = read_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", read_exactly(sock, 2))
    return first & 0x0F, read_exactly(sock, length)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        if not (chunk := sock.recv(size - len(data))):
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data
