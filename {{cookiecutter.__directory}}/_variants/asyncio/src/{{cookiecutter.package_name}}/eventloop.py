"""What the asyncio cells share: the event loop, their TLS handshakes, the stop
signals and the graceful stop's timing.

The loop is uvloop's when it is installed, the standard one otherwise: uvloop is
an optional extra (``pip install '.[uvloop]'``), a faster drop-in loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import select
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from . import logs, metrics
from .tls import ServerTLS
from .workers import SERVER_SIGNALS, give_up

log = logging.getLogger(__name__)

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
MAX_REFUSING = 64  # clients beyond the cap in their handshake; more, closed at once
# How long a TLS connection waits for the client's close_notify once it sent its own.
TLS_CLOSE_SECONDS = 2.0
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
Result = TypeVar("Result")
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


class Handshakes:
    """The TLS handshakes of a server, done here rather than by its engine.

    An engine given ``ssl=`` meets a client only once its handshake is over, so
    the connection cap would not count the clients still in theirs: silent ones
    could hold as many sockets as they like, each for the idle timeout. Here a
    client counts from accept. One beyond the cap still does its handshake, to
    get the protocol's own refusal, unless MAX_REFUSING are doing so already:
    then it is closed at once. Without TLS, the engine serves as it is.
    """

    def __init__(
        self,
        tls: ServerTLS | None,
        max_connections: int,
        connected: Callable[[], int],
        refusals: logs.Throttled,
    ) -> None:
        self.tls, self.max_connections = tls, max_connections
        self.connected, self.refusals = connected, refusals
        self.pending: set[asyncio.Transport] = set()  # within the cap
        self.refusing: set[asyncio.Transport] = set()

    def __len__(self) -> int:
        """The clients in their handshake that the cap counts."""
        return len(self.pending)

    def full(self) -> bool:
        """Whether the cap is reached: the server's connections, and the clients
        in their handshake."""
        return self.connected() + len(self.pending) >= self.max_connections

    def serving(
        self, factory: Callable[[], asyncio.BaseProtocol]
    ) -> Callable[[], asyncio.BaseProtocol]:
        """The protocol factory to give the engine's server: `factory`'s
        protocols, each given its connection once the handshake is over."""
        if self.tls is None:
            return factory
        return functools.partial(Handshake, self, self.tls, factory)

    def opening(self) -> bool:
        """Whether a client is still in its handshake."""
        return bool(self.pending or self.refusing)

    def abort(self) -> None:
        """Drop the clients still in their handshake (at a stop)."""
        for transport in self.pending | self.refusing:
            transport.abort()


def start_now(
    coroutine: Coroutine[Any, Any, Result],
    then: Callable[[Result | None, BaseException | None], None],
) -> None:
    """Run `coroutine` up to its first wait at once, not on the loop's next turn
    (as Python 3.12's eager tasks do), then to its end; then call `then` with its
    result, or with the exception it raised."""

    def step(_: object = None) -> None:
        try:
            waited: asyncio.Future[Any] = coroutine.send(None)
        except StopIteration as done:
            then(done.value, None)
        except (Exception, asyncio.CancelledError) as error:
            then(None, error)
        else:
            waited.add_done_callback(step)

    step()


class Handshake(asyncio.Protocol):
    """Stands for the server's protocol while one client does its handshake."""

    def __init__(
        self,
        handshakes: Handshakes,
        tls: ServerTLS,
        factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self.handshakes, self.tls, self.factory = handshakes, tls, factory
        # What comes in between the handshake's end and the protocol's start.
        self.received: list[bytes] = []
        self.eof = self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        transport = cast(asyncio.Transport, transport)
        handshakes = self.handshakes
        if not handshakes.full():
            waiting = handshakes.pending
        elif len(handshakes.refusing) < MAX_REFUSING:
            waiting = handshakes.refusing
        else:
            metrics.meters().refused["cap"].inc()
            peer = logs.address(transport.get_extra_info("peername"))
            handshakes.refusals.warning(f"refused {peer}: server busy")
            transport.abort()
            return
        waiting.add(transport)
        starting = asyncio.get_running_loop().start_tls(
            transport,
            self,
            self.tls.context,
            server_side=True,
            ssl_handshake_timeout=self.tls.settings.idle_timeout,
            ssl_shutdown_timeout=TLS_CLOSE_SECONDS,
        )
        # Now, before the loop reads a byte: uvloop starts reading as soon as this
        # returns, and what it read would miss the handshake.
        start_now(starting, functools.partial(self._begin, transport, waiting))

    def _begin(
        self,
        transport: asyncio.Transport,
        waiting: set[asyncio.Transport],
        encrypted: asyncio.BaseTransport | None,
        error: BaseException | None,
    ) -> None:
        """After the handshake, bounded as any wait for a client: the protocol."""
        waiting.discard(transport)  # before the protocol counts it
        if error is not None:  # not TLS, refused, too slow, or gone
            log.debug("TLS handshake failed: %s", error)
            transport.abort()
            return
        if self.lost or encrypted is None or encrypted.is_closing():
            # Gone before the protocol could meet it (uvloop ends the handshake
            # without an error for a client that closed before it began).
            transport.abort()
            return
        protocol = self.factory()
        encrypted.set_protocol(protocol)
        protocol.connection_made(encrypted)
        stream = cast(asyncio.Protocol, protocol)
        for data in self.received:
            stream.data_received(data)
        if self.eof:  # close_notify: the transport closes after it, whatever is said
            stream.eof_received()

    def data_received(self, data: bytes) -> None:
        self.received.append(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


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
    handshakes: Handshakes,
    opening: Callable[[], bool] = lambda: False,
) -> None:
    """Close the server's listening socket, `sock`, once the loop has taken in the
    clients already waiting in its backlog, which closing it would reset, and no
    client taken in is still in its TLS `handshakes` or `opening` its connection
    (a WebSocket handshake). Past BACKLOG_SECONDS, TLS handshakes are dropped."""
    loop = asyncio.get_running_loop()
    waiting = select.poll()
    waiting.register(sock, select.POLLIN)
    deadline = loop.time() + BACKLOG_SECONDS
    while loop.time() < deadline:
        if waiting.poll(0):
            await asyncio.sleep(0)  # the loop accepts them, as it accepts any client
        elif handshakes.opening() or opening():
            await asyncio.sleep(OPENING_POLL_SECONDS)
        else:
            break
    close()
    handshakes.abort()
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
