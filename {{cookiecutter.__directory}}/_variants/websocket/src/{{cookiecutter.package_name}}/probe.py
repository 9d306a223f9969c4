"""The health probe of a WebSocket server: one real round trip.

It opens a WebSocket (the handshake goes through admission and the handler's
thread or task like any client's) and waits for the answer to a ping. A server
that refuses the handshake (busy, or shutting down) is unhealthy, so a load
balancer sends clients elsewhere. The command ``healthcheck`` runs it.
"""

from __future__ import annotations

import socket

from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.sync.client import connect

from .logs import address

TIMEOUT_SECONDS = 3.0


def probe(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> None:
    """Make one round trip; raise OSError saying why the server is not healthy."""
    with socket.create_connection((host, port), timeout) as sock:
        round_trip(sock)


def round_trip(sock: socket.socket) -> None:
    """Make the probe's round trip over `sock`, a connection to the server."""
    uri = f"ws://{address(sock.getpeername())}/"
    timeout = sock.gettimeout() or TIMEOUT_SECONDS
    try:
        with connect(
            uri, sock=sock, open_timeout=timeout, compression=None
        ) as websocket:
            if not websocket.ping().wait(timeout):
                raise TimeoutError("no answer to a ping")
    except InvalidHandshake as error:
        raise ConnectionError(f"the server refused the handshake: {error}") from None
    except WebSocketException as error:
        raise ConnectionError(str(error)) from None
