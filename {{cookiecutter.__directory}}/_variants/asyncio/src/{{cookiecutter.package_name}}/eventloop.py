"""The event loop: uvloop's when it is installed, the standard one otherwise.

uvloop is an optional extra (``pip install '.[uvloop]'``): a faster drop-in loop.
"""

from __future__ import annotations

import asyncio
import select
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .tls import ServerTLS
from .workers import SERVER_SIGNALS, give_up

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# At a stop, how long idle connections have to send a request that a client (or a
# load balancer) sent just before it.
STOP_GRACE_SECONDS = 2.0
# The longest a stop waits for the backlog to be taken in, and handshakes to end.
BACKLOG_SECONDS = 1.0
OPENING_POLL_SECONDS = 0.005  # how often it looks at the handshakes meanwhile
# Loop turns from accepting a client to the server knowing it (its protocol's
# connection_made): two in asyncio's own loop, one in uvloop's; and one to spare.
TAKE_IN_TURNS = 4
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LOOP_FACTORY: LoopFactory | None
try:
    import uvloop

    LOOP_FACTORY, LOOP_NAME = uvloop.new_event_loop, "uvloop"
except ImportError:  # optional: the standard event loop serves the same
    LOOP_FACTORY, LOOP_NAME = None, "the standard event loop"


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to the end on a new event loop."""
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        runner.run(main)


def tls_options(tls: ServerTLS | None, handshake_timeout: float) -> dict[str, Any]:
    """What ``loop.create_server`` takes to serve TLS (nothing, to serve plain
    connections): a handshake is bounded as any wait for a client is."""
    if tls is None:
        return {}
    return {"ssl": tls.context, "ssl_handshake_timeout": handshake_timeout}


def stop_signal(on_hangup: Callable[[], None]) -> asyncio.Future[signal.Signals]:
    """A future the first SIGTERM or SIGINT sets to itself; SIGHUP calls
    `on_hangup`.

    A second signal changes nothing: the drain that follows is already bounded.
    """
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.done():
            stop.set_result(signum)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    # A worker process starts with them blocked (see workers.py): now they are
    # handled, let them in.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SERVER_SIGNALS)
    return stop


async def stop_accepting(
    sock: socket.socket,
    close: Callable[[], object],
    opening: Callable[[], bool] = lambda: False,
) -> None:
    """Close the server's listening socket, `sock`, once the loop has taken in the
    clients already waiting in its backlog, which closing it would reset, and no
    client taken in is still `opening` its connection (a WebSocket handshake)."""
    loop = asyncio.get_running_loop()
    waiting = select.poll()
    waiting.register(sock, select.POLLIN)
    deadline = loop.time() + BACKLOG_SECONDS
    while loop.time() < deadline:
        if waiting.poll(0):
            await asyncio.sleep(0)  # the loop accepts them, as it accepts any client
        elif opening():
            await asyncio.sleep(OPENING_POLL_SECONDS)
        else:
            break
    close()
    for _ in range(TAKE_IN_TURNS):  # until the server knows each of them
        await asyncio.sleep(0)


async def drain(
    stopped: Awaitable[object], timeout: float, busy: Callable[[], int]
) -> None:
    """Wait until `stopped` is done, or exit at once after `timeout`, with status 1:
    closing what is still busy could wait on a client, or on a thread, for ever."""
    try:
        async with asyncio.timeout(timeout):
            await stopped
    except TimeoutError:
        give_up(busy(), timeout)
