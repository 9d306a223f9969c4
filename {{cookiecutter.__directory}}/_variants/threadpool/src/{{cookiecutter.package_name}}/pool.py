"""Thread pool: one thread reads and writes every connection; a fixed pool runs jobs.

The loop here, on the main thread, owns every socket through a selector. It
accepts clients, feeds what they send to their conversations (see threads.py),
holds each to its deadlines and writes replies as fast as each client takes them.
Only a complete request becomes a job, and a worker is back in the pool as soon
as its handler returns: idle, keep-alive, trickling and slow-reading clients cost
a file descriptor and a buffer, never a thread. waitress, cheroot's connection
manager and Java's NIO servers are built the same way.

A connection has at most one job out at a time, so its requests are answered in
order, and a client that sends faster than it is served waits in its own socket.
Jobs wait for a free worker in the order they arrived; one that waits longer than
the idle timeout is answered with the protocol's "server busy".
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import queue
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import logs, metrics
from .config import ConfigError, env_var, flag, setting
from .threads import (
    ACCEPT_PAUSE_SECONDS,
    LINGER_SECONDS,
    MAX_REFUSING,
    RECV_BYTES,
    STOP_GRACE_SECONDS,
    Address,
    Conversation,
    Exhausted,
    Refuse,
    StopSignals,
    accept,
    encrypting,
    send_at_once,
    waiting_clients,
)
from .tls import ServerTLS, on_hangup
from .workers import give_up

log = logging.getLogger(__name__)

ACCEPTS_PER_TURN = 64  # so that a flood of clients cannot starve those connected
IDLE_WAIT_SECONDS = 3600.0  # the longest the loop sleeps with nothing due
FAILED = object()  # the result of a job that raised: the driver's bug, not the user's

Job = Callable[[], Any]


@dataclass(frozen=True)
class PoolSettings:
    """The pool's own settings, added to those of the protocol."""

    pool_size: int = setting(16, "worker threads running handlers", minimum=1)
    max_connections: int = setting(
        10_000,
        "clients connected at once, each a file descriptor and a buffer, not a "
        "thread; more are refused",
        minimum=1,
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]  # the protocol's settings
        if self.max_connections < self.pool_size:
            raise ConfigError(
                f"max connections ({self.max_connections}) is below the pool size "
                f"({self.pool_size}): raise {flag('max_connections')} "
                f"({env_var('max_connections')}) or lower {flag('pool_size')} "
                f"({env_var('pool_size')})"
            )


class Channel:
    """A client's socket and conversation, as the loop sees them."""

    __slots__ = (
        "address",
        "busy",
        "closed",
        "conversation",
        "due",
        "events",
        "lingering",
        "out",
        "progressed",
        "refused",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        address: Address,
        conversation: Conversation[Any],
        refused: bool,
    ) -> None:
        self.sock, self.address = sock, address
        self.conversation = conversation
        self.refused = refused  # a Refusal: outside the connection cap
        self.out = bytearray()  # unsent reply bytes
        self.progressed = 0.0  # when the last reply bytes went out
        self.busy = False  # a job out: waiting for a worker, or on one
        self.lingering = math.inf  # once closing: when to stop draining the client
        self.events = 0  # what the selector watches for
        self.due = math.inf  # when a timer is set for
        self.closed = False


class PoolServer:
    """Serves conversations on one selector thread, their jobs on a pool."""

    def __init__(
        self,
        sock: socket.socket,
        conversation: Callable[[Address], Conversation[Any]],
        refuse: Refuse,
        *,
        tls: ServerTLS | None,
        pool_size: int,
        max_connections: int,
        queue_timeout: float,
    ) -> None:
        self.listener = sock
        self.tls = tls
        self.conversation = encrypting(conversation, tls)
        self.refuse = encrypting(refuse, tls)
        self.pool_size, self.max_connections = pool_size, max_connections
        self.queue_timeout = queue_timeout
        self.selector = selectors.DefaultSelector()
        self.channels: set[Channel] = set()
        self.refusing = 0
        self.refusals = logs.Throttled(log)
        # Jobs that wait for a worker, oldest first: (since, channel, job).
        self.ready: deque[tuple[float, Channel, Job]] = deque()
        self.timers: list[tuple[float, int, Channel]] = []  # a heap: (due, n, channel)
        self.numbering = itertools.count()
        # The pool: jobs go out through a queue, results come back through a deque
        # and a byte on a socket that wakes the loop.
        self.jobs: queue.SimpleQueue[tuple[Channel, Job]] = queue.SimpleQueue()
        self.results: deque[tuple[Channel, Any]] = deque()
        self.waker, self.wake = socket.socketpair()
        self.waker.setblocking(False)
        self.wake.setblocking(False)
        self.working = 0  # jobs handed to the pool, not yet back
        self.sleeping = False  # the loop waits in the selector
        self.threads = 0
        self.accepting = True
        self.accept_paused_until = 0.0
        self.stop_began = 0.0  # 0 until a stop signal
        self.grace_over = False
        self.meters = metrics.meters()
        self.busy_workers = self.meters.gauge(
            "pool_busy_workers", "Worker threads running a handler now"
        )
        self.queued = self.meters.gauge(
            f"pool_queued_{metrics.UNIT}",
            f"{metrics.UNIT.capitalize()} waiting for a free worker",
        )
        self.reported = (0, 0)  # what the two gauges say: (busy, queued)

    def serve(self, model: str, shutdown_timeout: float) -> None:
        """Serve until SIGTERM or SIGINT, then let in-flight requests finish."""
        self.signals = StopSignals(on_hangup(self.tls))
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self.selector.register(self.signals.reader, selectors.EVENT_READ, self._signal)
        self.selector.register(self.waker, selectors.EVENT_READ, self._woken)
        self.shutdown_timeout = shutdown_timeout
        log.info(
            "listening on %s (%s)", logs.address(self.listener.getsockname()), model
        )
        while not self.stop_began or self.channels or self.working:
            self._turn()
        log.info("stopped")

    def _turn(self) -> None:
        """One turn of the loop: wait for what is due, then do it."""
        # Workers wake the loop only while it sleeps: a result that comes in
        # before it does is seen here, and the selector does not wait for it.
        self.sleeping = True
        timeout = 0 if self.results else self._wait_seconds()
        ready = self.selector.select(timeout)
        self.sleeping = False
        for key, mask in ready:
            if type(key.data) is Channel:
                channel: Channel = key.data
                if mask & selectors.EVENT_WRITE:
                    self._flush(channel)
                    self._update(channel)
                if mask & selectors.EVENT_READ and not channel.closed:
                    self._read(channel)
            else:
                key.data()
        self._take_results()
        now = time.monotonic()
        self._expire_due(now)
        self._dispatch(now)
        self._report()
        if self.stop_began:
            self._stop_due(now)
        elif not self.accepting and now >= self.accept_paused_until:
            self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
            self.accepting = True

    def _report(self) -> None:
        """Set the pool's gauges once a turn, not at every change: each update
        takes a lock, and a turn may see many requests."""
        if (figures := (self.working, len(self.ready))) != self.reported:
            self.reported = figures
            self.busy_workers.set(figures[0])
            self.queued.set(figures[1])

    def _wait_seconds(self) -> float:
        now = time.monotonic()
        due = [self.timers[0][0]] if self.timers else [now + IDLE_WAIT_SECONDS]
        if self.ready:
            due.append(self.ready[0][0] + self.queue_timeout)
        if self.stop_began:
            due.append(self.stop_began + self.shutdown_timeout)
            if not self.grace_over:
                due.append(self.stop_began + self.grace)
        elif not self.accepting:
            due.append(self.accept_paused_until)
        return max(min(due) - now, 0)

    # Clients in and out.

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                client = accept(self.listener, self.refusals)
            except Exhausted:
                self.selector.unregister(self.listener)
                self.accepting = False
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
                return
            if client is None:
                return
            self._admit(*client)

    def _admit(self, sock: socket.socket, address: Address) -> None:
        sock.setblocking(False)
        send_at_once(sock)
        if len(self.channels) - self.refusing < self.max_connections:
            conversation = self.conversation(address)
            if self.stop_began:  # taken in from the backlog by the stop
                conversation.stop()
            self.meters.connections_accepted.inc()
            self.meters.connections_open.inc()  # until _close
            self._open(Channel(sock, address, conversation, refused=False))
            return
        self.meters.refused["cap"].inc()
        self.refusals.warning(f"refused {logs.address(address)}: server busy")
        if self.refusing >= MAX_REFUSING:  # too many to answer: just close
            sock.close()
            return
        self.refusing += 1
        self._open(Channel(sock, address, self.refuse("server busy"), refused=True))

    def _open(self, channel: Channel) -> None:
        self.channels.add(channel)
        self._update(channel)

    def _read(self, channel: Channel) -> None:
        if channel.lingering == math.inf and not self._reading(channel):
            self._watch(channel, lazy=False)  # it turned readable: stop watching
            return
        try:
            data = channel.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError as error:  # reset
            log.debug("%s: %s", logs.address(channel.address), error)
            self._close(channel)
            return
        if channel.lingering < math.inf:  # draining what it still sends
            if not data:
                self._close(channel)
            return
        self.meters.received_bytes.inc(len(data))
        self._call(channel, channel.conversation.receive_data, data)

    def _flush(self, channel: Channel) -> None:
        """Send what the client takes of the unsent reply bytes."""
        try:
            sent = channel.sock.send(channel.out)
        except BlockingIOError:
            return
        except OSError as error:  # reset, broken pipe
            log.debug("%s: %s", logs.address(channel.address), error)
            self._close(channel)
            return
        del channel.out[:sent]
        channel.progressed = time.monotonic()
        self.meters.sent_bytes.inc(sent)

    def _call(self, channel: Channel, method: Callable[..., None], *args: Any) -> None:
        """Call one of the conversation's methods, then act on what it did. A
        conversation that fails ends its connection, never the loop."""
        try:
            method(*args)
        except Exception:
            log.exception("%s: conversation failed", logs.address(channel.address))
            self._close(channel)
            return
        self._update(channel)

    def _update(self, channel: Channel) -> None:
        """Act on a conversation's new state: send, hand out its job, watch its
        socket for what it waits for, set its timer."""
        if channel.closed:
            return
        conversation = channel.conversation
        if data := conversation.data_to_send():
            if not channel.out:
                channel.progressed = time.monotonic()
            channel.out += data
            self._flush(channel)
            if channel.closed:
                return
        if not channel.busy and (job := conversation.next_job()) is not None:
            channel.busy = True
            self.ready.append((time.monotonic(), channel, job))
        if conversation.finished and not channel.out and channel.lingering == math.inf:
            # Closing with unread input would reset the connection, which can
            # destroy replies the client has not read: stop sending, then drain.
            channel.lingering = time.monotonic() + LINGER_SECONDS
            try:
                channel.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(channel)
                return
        self._watch(channel)

    def _reading(self, channel: Channel) -> bool:
        """Whether to read from the client now: not while a reply goes out."""
        return not channel.out and channel.conversation.wants_data()

    def _watch(self, channel: Channel, lazy: bool = True) -> None:
        """Watch the socket for what the channel waits for, and set its timer.

        A client waiting for its reply sends nothing, as a rule: the socket stays
        watched for reading (`lazy`) until it turns readable, which saves two
        system calls a request.
        """
        conversation = channel.conversation
        if channel.lingering < math.inf:
            events, due = selectors.EVENT_READ, channel.lingering
        else:
            events = selectors.EVENT_WRITE if channel.out else 0
            if self._reading(channel):
                events |= selectors.EVENT_READ
            due = conversation.deadline
            if channel.out:
                due = min(due, channel.progressed + conversation.send_timeout)
        if lazy and events | selectors.EVENT_READ == channel.events:
            events = channel.events
        if events != channel.events:
            if not channel.events:
                self.selector.register(channel.sock, events, channel)
            elif events:
                self.selector.modify(channel.sock, events, channel)
            else:
                self.selector.unregister(channel.sock)
            channel.events = events
        if due != channel.due:
            channel.due = due
            if due < math.inf:
                heapq.heappush(self.timers, (due, next(self.numbering), channel))

    def _close(self, channel: Channel) -> None:
        if channel.closed:
            return
        channel.closed = True
        if channel.events:
            self.selector.unregister(channel.sock)
        channel.sock.close()
        self.channels.discard(channel)
        if channel.refused:
            self.refusing -= 1
        else:
            self.meters.connections_open.dec()

    def _expire_due(self, now: float) -> None:
        """End what has waited too long: a client, a reply, a closing connection."""
        while self.timers and self.timers[0][0] <= now:
            due, _, channel = heapq.heappop(self.timers)
            if channel.closed or channel.due != due:
                continue  # a timer set before the channel moved on
            channel.due = math.inf
            if channel.lingering < math.inf:
                self._close(channel)
            elif channel.out and now >= channel.progressed + (
                channel.conversation.send_timeout
            ):
                log.debug("%s: stopped reading", logs.address(channel.address))
                self._close(channel)
            else:
                self._call(channel, channel.conversation.expire)

    # The pool.

    def _dispatch(self, now: float) -> None:
        """Hand jobs to free workers, oldest first; refuse those that waited too
        long for one."""
        while self.ready and self.working < self.pool_size:
            _, channel, job = self.ready.popleft()
            if channel.closed:
                continue
            self.working += 1
            if self.threads < self.working:  # started as they are first needed
                self.threads += 1
                threading.Thread(target=self._work, name="worker", daemon=True).start()
            self.jobs.put((channel, job))
        while self.ready and self.ready[0][0] + self.queue_timeout <= now:
            _, channel, _ = self.ready.popleft()
            if channel.closed:
                continue
            channel.busy = False
            self.meters.refused["queue"].inc()
            self.refusals.warning(
                f"refused a request from {logs.address(channel.address)}: server "
                f"busy (no worker free for {self.queue_timeout:g}s)"
            )
            self._call(channel, channel.conversation.refuse, "server busy")

    def _work(self) -> None:
        """A worker thread: run jobs, hand their results back to the loop."""
        while True:
            channel, job = self.jobs.get()
            try:
                result = job()
            except BaseException:  # SystemExit too: the worker must go on
                log.exception("job failed")
                result = FAILED
            self.results.append((channel, result))
            if self.sleeping:
                with contextlib.suppress(BlockingIOError):  # wake-ups wait already
                    self.wake.send(b"\0")

    def _woken(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.waker.recv(4096)

    def _take_results(self) -> None:
        while self.results:
            channel, result = self.results.popleft()
            self.working -= 1
            channel.busy = False
            if result is FAILED:
                self._close(channel)
            elif not channel.closed:
                self._call(channel, channel.conversation.finish, result)

    # The stop.

    def _signal(self) -> None:
        signum = self.signals.received()
        if signum is None or self.stop_began:
            return  # a second signal changes nothing: the drain is bounded
        self.stop_began = time.monotonic()
        self.grace = min(STOP_GRACE_SECONDS, self.shutdown_timeout)
        log.info("stopping on %s: %d connections open", signum.name, len(self.channels))
        for sock, address in waiting_clients(self.listener):
            self._admit(sock, address)
        if self.accepting:
            self.selector.unregister(self.listener)
            self.accepting = False
        self.listener.close()
        for channel in list(self.channels):
            self._call(channel, channel.conversation.stop)

    def _stop_due(self, now: float) -> None:
        """End the grace once it is over; give up once the shutdown timeout is."""
        if not self.grace_over and now >= self.stop_began + self.grace:
            self.grace_over = True
            for channel in list(self.channels):
                if not channel.busy and channel.lingering == math.inf:
                    self._call(channel, channel.conversation.expire)
        if now >= self.stop_began + self.shutdown_timeout:
            # Jobs out, replies unsent; or handlers of clients already gone.
            if busy := sum(1 for c in self.channels if c.busy or c.out) or (
                self.working
            ):
                give_up(busy, self.shutdown_timeout)
            for channel in list(self.channels):  # closing: nothing more to lose
                self._close(channel)
