"""What the thread models share, whatever the protocol: the conversation a driver
runs, the stop signals, refusals and the graceful stop's timing.

Each protocol has a core without I/O (conversation.py): the state of one
connection, bytes in and jobs out, results in and bytes out. A driver owns the
sockets and the threads, and runs conversations: pool.py (threadpool: one thread
reads and writes every socket, a fixed pool runs the jobs) or connection.py
(threaded and blocking: a thread reads, runs and writes one connection). A driver
calls a conversation from one thread at a time; a job is what runs the handler,
on whichever thread the driver picks, and touches nothing of the conversation.

On SIGTERM or SIGINT a driver takes in the clients already waiting in the listen
backlog and closes its listening socket, so that new clients are refused and a
load balancer sends them elsewhere. Each conversation is told to stop: it ends
after the request in hand. An idle one has a moment (the grace) to receive a
request already on its way; then it expires. Requests in progress get the
shutdown timeout to finish; past it, the process exits with status 1.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import selectors
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from . import logs
from .config import flag
from .tls import ServerTLS
from .workers import BACKLOG, SERVER_SIGNALS

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # how long a closing connection drains what the client sends
MAX_REFUSING = 64  # clients being turned away at once; beyond, closed at once
# At a stop, how long idle connections have to send a request that a client (or a
# load balancer) sent just before it.
STOP_GRACE_SECONDS = 2.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP  # reload the TLS certificate
# What accept() fails with when the process or the system is out of something;
# and how long a server waits before it accepts again.
EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE_SECONDS = 0.1

Result = TypeVar("Result")
Address = Any  # what accept() returns for the client: (host, port, ...)


class Conversation(Protocol[Result]):
    """One connection's protocol, without I/O.

    After each call, the driver sends `data_to_send()`; once `finished` and all is
    sent, it ends the connection. `next_job()` hands out a complete request as a
    job, at most one at a time: the driver runs it (on any thread) and gives its
    result to `finish()`.
    """

    @property
    def finished(self) -> bool:
        """Nothing more to send or receive: end the connection."""

    @property
    def send_timeout(self) -> float:
        """Seconds a reply may make no progress: then drop the client."""

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; b"" when it has finished sending."""

    def data_to_send(self) -> bytes:
        """What to send the client now, taken out of the conversation."""

    def wants_data(self) -> bool:
        """Whether to read from the client now: False to apply backpressure."""

    def next_job(self) -> Callable[[], Result] | None:
        """A request ready for the handler, taken out; None if there is none."""

    def finish(self, result: Result) -> None:
        """The result of the last job."""

    @property
    def deadline(self) -> float:
        """When (time.monotonic()) the client will have been too slow; inf when
        it is not up to the client (no deadline, or a job in progress)."""

    def expire(self) -> None:
        """The deadline has passed; or, after stop(), the grace is over."""

    def stop(self) -> None:
        """The server is stopping: end after the request in hand."""

    def refuse(self, reason: str) -> None:
        """Answer the job taken out with the protocol's refusal, and end."""


class Refusal:
    """A conversation that turns a client away with `reply`, then ends.

    A client is refused with a protocol-level answer, which a connection closed
    with the request unread would destroy (a reset): the drivers drain the
    connection after it. `after_request` waits (briefly) for the client to speak
    first, as a WebSocket client expects.
    """

    send_timeout = LINGER_SECONDS

    def __init__(self, reply: bytes, *, after_request: bool = False) -> None:
        self._reply = reply
        self._out = b""
        self.finished = False
        self.deadline = time.monotonic() + LINGER_SECONDS
        if not after_request:
            self.expire()

    def receive_data(self, data: bytes) -> None:
        self.expire()

    def data_to_send(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def wants_data(self) -> bool:
        return not self.finished

    def next_job(self) -> None:
        return None

    def finish(self, result: object) -> None:
        raise AssertionError("a refusal has no job")

    def expire(self) -> None:
        if not self.finished:
            self._out, self.finished, self.deadline = self._reply, True, math.inf

    def stop(self) -> None:
        pass  # it ends at once anyway

    def refuse(self, reason: str) -> None:
        raise AssertionError("a refusal has no job")


Refuse = Callable[[str], Conversation[Any]]  # a protocol's refusal for a reason
Factory = TypeVar("Factory", bound=Callable[..., Conversation[Any]])


class Handshake:
    """What stands for the conversation while the TLS handshake goes on: it has
    the idle timeout to end, and no request yet."""

    def __init__(self, timeout: float) -> None:
        self.send_timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.finished = self.stopped = False

    def receive_data(self, data: bytes) -> None:
        pass

    def data_to_send(self) -> bytes:
        return b""

    def wants_data(self) -> bool:
        return True

    def next_job(self) -> None:
        return None

    def finish(self, result: object) -> None:
        pass

    def expire(self) -> None:
        self.finished = True

    def stop(self) -> None:
        self.stopped = True  # for the conversation to come

    def refuse(self, reason: str) -> None:
        self.finished = True


class Encrypted(Generic[Result]):
    """A conversation over TLS, without I/O (``ssl.MemoryBIO``): the handshake, then
    the conversation `begin()` makes, its bytes decrypted on their way in and
    encrypted on their way out.

    The drivers run it as any conversation, so the handshake holds no worker of a
    pool. The handshake has the idle timeout to end; the conversation begins after
    it, its deadlines counted from then, as if the client had just connected.
    """

    def __init__(
        self,
        begin: Callable[[], Conversation[Result]],
        context: ssl.SSLContext,
        timeout: float,
    ) -> None:
        self._begin = begin
        self.inner: Conversation[Result] | Handshake = Handshake(timeout)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._ended = self._eof = False

    @property
    def finished(self) -> bool:
        expired = isinstance(self.inner, Handshake) and self.inner.finished
        return self._ended or expired  # or a handshake that took too long

    @property
    def send_timeout(self) -> float:
        return self.inner.send_timeout

    def receive_data(self, data: bytes) -> None:
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()
        if isinstance(handshake := self.inner, Handshake):
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._ended = not data  # the client left mid-handshake
                return
            except (ssl.SSLError, ValueError) as error:  # not TLS, or refused
                log.debug("TLS handshake failed: %s", error)
                self._ended = True
                return
            self.inner = self._begin()
            if handshake.stopped:
                self.inner.stop()
        self._decrypt()

    def _decrypt(self) -> None:
        plain = bytearray()
        while not self._eof:
            try:
                if not (chunk := self._tls.read(RECV_BYTES)):
                    self._eof = True
                plain += chunk
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:  # close_notify, or a record or alert that ends TLS
                self._eof = True
        if plain:
            self.inner.receive_data(bytes(plain))
        if self._eof and not self.inner.finished:
            self.inner.receive_data(b"")

    def data_to_send(self) -> bytes:
        if not isinstance(self.inner, Handshake) and not self._ended:
            plain = self.inner.data_to_send()
            try:
                if plain:
                    self._tls.write(plain)
                if self.inner.finished:
                    self._ended = True
                    self._tls.unwrap()  # queues close_notify; no reply is awaited
            except (ssl.SSLError, ValueError):  # TLS has ended: nothing more goes
                self._ended = True
        return self._out.read()

    def wants_data(self) -> bool:
        return self.inner.wants_data()

    def next_job(self) -> Callable[[], Result] | None:
        return self.inner.next_job()

    def finish(self, result: Result) -> None:
        self.inner.finish(result)

    @property
    def deadline(self) -> float:
        return self.inner.deadline

    def expire(self) -> None:
        self.inner.expire()

    def stop(self) -> None:
        self.inner.stop()

    def refuse(self, reason: str) -> None:
        self.inner.refuse(reason)


def send_at_once(sock: socket.socket) -> None:
    """Turn Nagle's algorithm off for a client: a reply written in pieces (TLS's
    session tickets, then the answer) goes out without waiting for the ACK of the
    first piece, which a client may hold back for 40 ms."""
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def encrypting(factory: Factory, tls: ServerTLS | None) -> Factory:
    """`factory`'s conversations over TLS when the server has it, else as they are."""
    if tls is None:
        return factory
    context, timeout = tls.context, tls.settings.idle_timeout

    def encrypted(*args: Any) -> Conversation[Any]:
        return Encrypted(functools.partial(factory, *args), context, timeout)

    return encrypted  # type: ignore[return-value]


class StopSignals:
    """SIGTERM and SIGINT as bytes on a socket that a thread can wait on; and
    SIGHUP, which calls `on_hangup` there.

    With a handler of its own installed, a signal can never end the process,
    whichever thread the kernel hands it to (one that the user's code started,
    say); the C-level handler writes the signal's number to the socket.
    """

    def __init__(self, on_hangup: Callable[[], None]) -> None:
        self.on_hangup = on_hangup
        self.reader, writer = socket.socketpair()
        self.reader.setblocking(False)
        writer.setblocking(False)
        self._writer = writer  # held open for as long as the handlers are in place
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in SERVER_SIGNALS:
            signal.signal(signum, lambda signum, frame: None)
        # A worker process starts with them blocked (see workers.py): now they are
        # handled, let them in.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SERVER_SIGNALS)

    def received(self) -> signal.Signals | None:
        """The first stop signal received since the last call, if any."""
        try:
            numbers = self.reader.recv(64)
        except BlockingIOError:
            return None
        if RELOAD_SIGNAL in numbers:
            self.on_hangup()
        for number in numbers:
            if number in STOP_SIGNALS:
                return signal.Signals(number)
        return None

    def wait(self) -> signal.Signals:
        """Block until a stop signal comes; return it."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.reader, selectors.EVENT_READ)
            while True:
                selector.select()
                if (signum := self.received()) is not None:
                    return signum


class Exhausted(Exception):
    """The process is out of file descriptors or memory: accept again later."""


def accept(
    listener: socket.socket, refusals: logs.Throttled
) -> tuple[socket.socket, Address] | None:
    """The next client waiting on `listener`, or None if there is none now.

    Raises Exhausted, having said why in the log (at most every 10 s), when the
    process cannot take a client in: accept again after ACCEPT_PAUSE_SECONDS.
    """
    try:
        return listener.accept()
    except BlockingIOError:  # none left, or another worker process took it
        return None
    except OSError as error:
        if error.errno not in EXHAUSTED:
            return None  # a client that gave up while it waited
        refusals.warning(
            f"cannot accept clients: {error.strerror}; raise the open file limit "
            f"(ulimit -n) or lower {flag('max_connections')}"
        )
        raise Exhausted from error


def waiting_clients(sock: socket.socket) -> Iterator[tuple[socket.socket, Address]]:
    """The clients already waiting in `sock`'s listen backlog, which closing it
    would reset: at most a backlog's worth, those there as the stop began. The
    socket is non-blocking (see workers.py): once none is left, or another
    worker took the last, accept() fails instead of blocking."""
    for _ in range(BACKLOG):
        try:
            yield sock.accept()
        except OSError:
            return
