"""The health probe of an HTTP server: one real request.

It sends ``GET /healthz`` and reports healthy on a 200 answer. The command
``healthcheck`` runs it (healthcheck.py), over TLS when the server has it.
"""

from __future__ import annotations

import http.client
import socket


def round_trip(sock: socket.socket) -> None:
    """Make the probe's request over `sock`, a connection to the server."""
    connection = http.client.HTTPConnection(*sock.getpeername()[:2])
    connection.sock = sock
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        if response.status != 200:
            raise ConnectionError(f"GET /healthz answered {response.status}")
    except http.client.HTTPException as error:
        raise ConnectionError(f"GET /healthz failed: {error!r}") from None
    finally:
        connection.sock = None  # the caller's to close
        connection.close()
