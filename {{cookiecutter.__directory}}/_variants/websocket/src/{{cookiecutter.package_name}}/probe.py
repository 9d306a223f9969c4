"""The health probe of a WebSocket server: one real round trip.

It opens a WebSocket (the handshake goes through admission and the handler's thread
or task like any client's), waits for the answer to a ping and closes. A server that
refuses the handshake (busy, or shutting down) is unhealthy, so a load balancer
sends clients elsewhere. The command ``healthcheck`` runs it (healthcheck.py), over
TLS when the server has it.

websockets' own client protocol, without I/O, runs in this one thread. Its threaded
client waits for the socket with select(), which does not see what TLS has read and
not yet handed over: over TLS it missed an answer in 1 of 200 probes under load.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import CLOSE, PONG, CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event
from websockets.uri import parse_uri

from .logs import address

PING = b"healthcheck"


def round_trip(sock: socket.socket) -> None:
    """Make the probe's round trip over `sock`, a connection to the server."""
    client = ClientProtocol(parse_uri(f"ws://{address(sock.getpeername())}/"))
    client.send_request(client.connect())
    answer(sock, client, lambda event: isinstance(event, Response))
    if client.handshake_exc is not None:
        error = client.handshake_exc
        raise ConnectionError(f"the server refused the handshake: {error}")
    client.send_ping(PING)
    answer(sock, client, lambda event: is_frame(event, PONG))
    client.send_close(CloseCode.NORMAL_CLOSURE)
    answer(sock, client, lambda event: is_frame(event, CLOSE))


def is_frame(event: Event, opcode: Opcode) -> bool:
    return isinstance(event, Frame) and event.opcode is opcode


def answer(
    sock: socket.socket, client: ClientProtocol, awaited: Callable[[Event], bool]
) -> None:
    """Send what `client` has to send, then read until an event it receives is
    `awaited` (a predicate); raise OSError if the server closes first."""
    for data in client.data_to_send():
        if data:  # b"": the client is done sending, which closing the socket says
            sock.sendall(data)
    while True:
        if any(map(awaited, client.events_received())):
            return
        if not (data := sock.recv(65536)):
            raise ConnectionError("the server closed the connection")
        client.receive_data(data)
