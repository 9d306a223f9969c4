"""Threaded and blocking: a thread serves a connection from start to end.

`converse` runs a conversation (see threads.py) over one socket with blocking
calls: it waits for the client up to the conversation's deadline, feeds it what
arrives, runs each job on this same thread and sends the replies. ThreadedServer
accepts clients and gives each one a thread of its own (threaded) or serves them
one after another on the accepting thread (blocking).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from . import logs, metrics
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


class Stop:
    """A stop as the connections see it: a flag, then a pipe that wakes them all
    once the grace is over."""

    def __init__(self) -> None:
        self.stopping = False
        self.grace_over = False
        self.began_reader, self._began_writer = os.pipe()
        self.grace_reader, self._grace_writer = os.pipe()

    def begin(self) -> None:
        self.stopping = True
        os.write(self._began_writer, b"!")

    def end_grace(self) -> None:
        self.grace_over = True
        os.write(self._grace_writer, b"!")


def converse(
    sock: socket.socket, address: Address, conversation: Conversation[Any], stop: Stop
) -> None:
    """Serve the client at `address` over `sock`, on this thread, until the
    conversation ends."""
    sock.setblocking(False)  # every wait is a poll, up to a deadline
    send_at_once(sock)
    waiting = select.poll()  # the socket while the conversation reads, the stop
    waiting.register(stop.grace_reader, select.POLLIN)
    reading = told_to_stop = grace_ended = False
    try:
        while True:
            if data := conversation.data_to_send():
                send(sock, data, conversation.send_timeout)
            if conversation.finished:
                linger(sock)
                return
            if stop.stopping and not told_to_stop:
                told_to_stop = True
                conversation.stop()
                continue
            if (job := conversation.next_job()) is not None:
                result = job()
                if stop.stopping and not told_to_stop:  # a stop began meanwhile
                    told_to_stop = True
                    conversation.stop()
                conversation.finish(result)
                continue
            if stop.grace_over and not grace_ended:
                # What a client sent in time is answered, even if no one has read
                # it yet (a client taken in from the backlog after the grace).
                if conversation.wants_data() and (sent := receive(sock)) is not None:
                    conversation.receive_data(sent)
                    continue
                grace_ended = True
                waiting.unregister(stop.grace_reader)  # readable from now on
                conversation.expire()
                continue
            if (timeout := conversation.deadline - time.monotonic()) <= 0:
                conversation.expire()
                continue
            if conversation.wants_data() != reading:
                reading = not reading
                if reading:
                    waiting.register(sock, select.POLLIN)
                else:
                    waiting.unregister(sock)
            for fd, _ in waiting.poll(poll_ms(timeout)):
                if fd == sock.fileno() and (sent := receive(sock)) is not None:
                    conversation.receive_data(sent)
    except OSError as error:  # reset, broken pipe, a send that timed out
        log.debug("%s: %s", logs.address(address), error)
    finally:
        sock.close()


def poll_ms(seconds: float) -> int:
    """A poll timeout: whole milliseconds, rounded up, and -1 for none."""
    return -1 if seconds == math.inf else math.ceil(seconds * 1000)


def receive(sock: socket.socket) -> bytes | None:
    """What the client has sent (b"" once it has finished); None if nothing yet."""
    try:
        data = sock.recv(RECV_BYTES)
    except BlockingIOError:
        return None
    metrics.meters().received_bytes.inc(len(data))
    return data


def send(sock: socket.socket, data: bytes, timeout: float) -> None:
    """Send `data` whole; fail if the client takes none of it for `timeout`."""
    sent_bytes = metrics.meters().sent_bytes
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
            sent_bytes.inc(sent)
            view = view[sent:]
        except BlockingIOError:
            writable = select.poll()
            writable.register(sock, select.POLLOUT)
            if not writable.poll(poll_ms(timeout)):
                raise TimeoutError("the client takes no reply") from None


def linger(sock: socket.socket) -> None:
    """End a connection from the server's side without losing what was sent.

    Closing a socket with unread input sends a reset, which can destroy replies the
    client has not read yet: stop sending, then drain the client for a while.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(RECV_BYTES):
                return


class ThreadedServer:
    """Accepts clients up to `max_connections`, each served by `converse` on a
    thread of its own (`own_threads`) or on the accepting thread, in turn.

    A client taken in after a stop's grace (from the backlog of a blocking
    server) is served like any other, unless `refuse_after_grace`: a WebSocket
    opened then would be closed at once, so it gets the refusal, which a load
    balancer can retry elsewhere.
    """

    def __init__(
        self,
        sock: socket.socket,
        conversation: Callable[[Address], Conversation[Any]],
        refuse: Refuse,
        *,
        tls: ServerTLS | None,
        max_connections: int,
        own_threads: bool,
        refuse_after_grace: bool = False,
    ) -> None:
        self.listener = sock
        self.tls = tls
        self.conversation = encrypting(conversation, tls)
        self.refuse = encrypting(refuse, tls)
        self.max_connections = max_connections
        self.own_threads = own_threads
        self.refuse_after_grace = refuse_after_grace
        self.stop = Stop()
        self.refusals = logs.Throttled(log)
        self.refusing = threading.BoundedSemaphore(MAX_REFUSING)
        self.accepting = True
        self.active = 0  # clients being served
        self.changed = threading.Condition()

    def serve(self, model: str, shutdown_timeout: float) -> None:
        """Serve until SIGTERM or SIGINT, then let in-flight requests finish."""
        # Before any thread starts: see threads.py.
        signals = StopSignals(on_hangup(self.tls))
        threading.Thread(target=self._accept, name="accept", daemon=True).start()
        log.info(
            "listening on %s (%s)", logs.address(self.listener.getsockname()), model
        )
        signum = signals.wait()
        deadline = time.monotonic() + shutdown_timeout
        log.info("stopping on %s: %d connections open", signum.name, self.active)
        self.stop.begin()
        self._wait_drained(min(STOP_GRACE_SECONDS, shutdown_timeout))
        self.stop.end_grace()
        if busy := self._wait_drained(deadline - time.monotonic()):
            give_up(busy, shutdown_timeout)
        log.info("stopped")

    def _accept(self) -> None:
        """Accept clients until a stop; then take in those already waiting in the
        listen backlog, which closing the socket would reset, and close it."""
        ready = select.poll()
        ready.register(self.listener, select.POLLIN)
        ready.register(self.stop.began_reader, select.POLLIN)
        while not self.stop.stopping:
            ready.poll()
            try:
                client = accept(self.listener, self.refusals)
            except Exhausted:
                time.sleep(ACCEPT_PAUSE_SECONDS)
                continue
            if client is not None:
                self._admit(*client)
        for sock, address in waiting_clients(self.listener):
            self._admit(sock, address)
        self.listener.close()
        with self.changed:
            self.accepting = False
            self.changed.notify_all()

    def _admit(self, sock: socket.socket, address: Address) -> None:
        sock.setblocking(True)  # where the listener's mode is inherited (BSD)
        meters = metrics.meters()
        with self.changed:
            admitted = self.active < self.max_connections
            if admitted:
                self.active += 1
        if not admitted:
            meters.refused["cap"].inc()
            self._turn_away(sock, address, "server busy")
            return
        meters.connections_open.inc()  # until _served
        if self.stop.grace_over and self.refuse_after_grace:
            meters.refused["draining"].inc()
            self._turn_away(sock, address, "server shutting down")
            self._served()
            return
        meters.connections_accepted.inc()
        if self.own_threads:
            serving = threading.Thread(
                target=self._serve, args=(sock, address), daemon=True
            )
            try:
                serving.start()
            except RuntimeError:  # the system has no thread to spare for now
                self.refusals.warning(f"refused {logs.address(address)}: no thread")
                sock.close()
                self._served()
        else:
            self._serve(sock, address)

    def _serve(self, sock: socket.socket, address: Address) -> None:
        try:
            converse(sock, address, self.conversation(address), self.stop)
        except Exception:
            log.exception("%s: conversation failed", logs.address(address))
        finally:
            self._served()

    def _served(self) -> None:
        metrics.meters().connections_open.dec()
        with self.changed:
            self.active -= 1
            self.changed.notify_all()

    def _turn_away(self, sock: socket.socket, address: Address, reason: str) -> None:
        """Refuse a client on a thread of its own, which the process waits for
        at its exit (a refusal takes a few seconds at most); or, if too many are
        being refused already, just close it."""
        self.refusals.warning(f"refused {logs.address(address)}: {reason}")
        if not self.refusing.acquire(blocking=False):
            sock.close()
            return

        def refuse() -> None:
            try:
                converse(sock, address, self.refuse(reason), self.stop)
            finally:
                self.refusing.release()

        # Not a daemon, unlike the accept thread that starts it.
        threading.Thread(target=refuse, name="refusal", daemon=False).start()

    def _wait_drained(self, timeout: float) -> int:
        """Wait until the accept loop has ended and every client is served;
        return how many are still connected."""
        with self.changed:
            self.changed.wait_for(
                lambda: not (self.accepting or self.active), max(timeout, 0)
            )
            return self.active
