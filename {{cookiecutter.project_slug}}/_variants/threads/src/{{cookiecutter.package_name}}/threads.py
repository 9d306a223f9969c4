"""What the thread models share, whatever the protocol: admission and graceful stop.

Built on the standard library's socketserver. A server admits `max_connections`
clients at once and turns the rest away with its protocol's refusal. On SIGTERM
or SIGINT it admits the clients already waiting in the listen backlog and closes
the listening socket, so that new clients are refused and a load balancer sends
them elsewhere. A connection ends after the request it is serving; an idle one
has a moment to send a request already on its way, then a pipe it polls beside
its socket wakes it and it closes. Requests in progress get the shutdown timeout
to finish. The models differ only in which thread serves an admitted connection:
the accepting thread (blocking), a new one (threaded) or a pool worker
(threadpool).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from . import logs
from .workers import BACKLOG, HANDSHAKE_SECONDS, refuse_new_clients

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # how long a closing connection drains what the client sends
MAX_LINGERING = 64  # refused connections drained at once, a thread each
# At a stop, how long idle connections have to send a request that a client (or a
# load balancer) sent just before it.
STOP_GRACE_SECONDS = 2.0
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class ManagedServer(socketserver.TCPServer):
    """A TCP server with a connection cap and a stop that connections can see."""

    refuse_after_request = False  # whether a refusal waits for the client to speak

    def __init__(
        self,
        sock: socket.socket,
        connection: type[socketserver.BaseRequestHandler],
        *,
        refusal: Callable[[str], bytes],
        idle_timeout: float,
        max_connections: int,
    ) -> None:
        self.refusal = refusal
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.refusals = logs.Throttled(log)
        self._lingering = threading.BoundedSemaphore(MAX_LINGERING)
        self._refused: set[socket.socket] = set()  # closed by a refusal thread
        self.stopping = False
        self.grace_over = False
        self._accepting = True
        self._active: set[socket.socket] = set()
        self._changed = threading.Condition()
        # Readable once a stop's grace is over: wakes every connection waiting for
        # input.
        self._grace_reader, self._grace_writer = os.pipe()
        # Serves a socket bound and listening already (see workers.py).
        super().__init__(sock.getsockname(), connection, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

    def get_request(self) -> tuple[socket.socket, Any]:
        request, client_address = self.socket.accept()
        # Where the listening socket's non-blocking mode is inherited (BSD, macOS).
        request.setblocking(True)
        return request, client_address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._changed:
            if len(self._active) < self.max_connections:
                self._active.add(request)
                return True
        self.refuse(request, client_address, "server busy")
        return False

    def refuse(self, request: socket.socket, client_address: Any, reason: str) -> None:
        """Turn a client away with the protocol's refusal; the caller closes it."""
        self.refusals.warning(f"refused {logs.address(client_address)}: {reason}")
        refusal = self.refusal(reason)
        # Closed with the client's request unread, the connection would end in a
        # reset that can destroy the refusal: unless too many are being turned away
        # already, a thread of its own answers, drains the client and closes.
        if self._lingering.acquire(blocking=False):
            with self._changed:
                self._refused.add(request)
            # Not a daemon: an exit waits for it (a few seconds at most).
            threading.Thread(
                target=self._refuse_and_linger, args=(request, refusal)
            ).start()
            return
        with contextlib.suppress(OSError):
            request.settimeout(0)  # never wait on a client that is being turned away
            request.send(refusal)

    def _refuse_and_linger(self, request: socket.socket, refusal: bytes) -> None:
        try:
            with contextlib.suppress(OSError):
                request.settimeout(LINGER_SECONDS)
                if self.refuse_after_request:
                    request.recv(RECV_BYTES)  # a client may not expect an early answer
                request.sendall(refusal)
                linger(request)
        finally:
            request.close()
            self._lingering.release()

    def shutdown_request(self, request: Any) -> None:
        with self._changed:
            self._active.discard(request)
            self._changed.notify_all()
            if request in self._refused:  # closed by its refusal thread
                self._refused.discard(request)
                return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("connection from %s failed", logs.address(client_address))

    def wait_for_input(self, sock: socket.socket, timeout: float) -> bool:
        """Whether `sock` has input (or its end) in time; False once a stop's grace
        is over with nothing waiting on `sock`."""
        ready = select.poll()
        ready.register(sock, select.POLLIN)
        ready.register(self._grace_reader, select.POLLIN)
        return sock.fileno() in dict(ready.poll(max(timeout, 0) * 1000))

    def accept_until_stopped(self) -> None:
        """Accept clients until a stop; then admit those already waiting in the
        listen backlog, which closing the socket would reset, and close it."""
        self.serve_forever(poll_interval=0.1)
        if refuse_new_clients(self.socket):
            time.sleep(HANDSHAKE_SECONDS)
        # At most a backlog's worth: those that were waiting as the stop began. The
        # socket is non-blocking (see workers.py): once none is left, or another
        # worker took the last, accept() fails instead of blocking.
        for _ in range(BACKLOG):
            try:
                request, client_address = self.get_request()
            except OSError:
                break
            if not self.verify_request(request, client_address):
                self.shutdown_request(request)
                continue
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
        self.server_close()
        with self._changed:
            self._accepting = False
            self._changed.notify_all()

    def begin_stop(self) -> int:
        """Stop accepting; return how many clients are connected."""
        with self._changed:
            self.stopping = True
            open_connections = len(self._active)
        # shutdown() waits for the accept loop, which in the blocking model is busy
        # until its client is done: let it wait in a thread of its own.
        threading.Thread(target=self.shutdown, daemon=True).start()
        return open_connections

    def end_grace(self) -> None:
        """Wake every connection still waiting for input: it closes."""
        self.grace_over = True
        os.write(self._grace_writer, b"!")

    def wait_drained(self, timeout: float) -> int:
        """Wait until the accept loop has ended and every connection is closed;
        return how many are still open."""
        with self._changed:
            self._changed.wait_for(
                lambda: not (self._accepting or self._active), max(timeout, 0)
            )
            return len(self._active)


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


def run(server: ManagedServer, model: str, shutdown_timeout: float) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight requests finish and return."""
    # A signal that the kernel hands to another thread cannot wake the main thread
    # from a wait. Blocked here, before any thread starts (they all inherit the
    # mask), the signals wait until the main thread takes them with sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    accepting = threading.Thread(
        target=server.accept_until_stopped, name="accept", daemon=True
    )
    accepting.start()
    log.info("listening on %s (%s)", logs.address(server.server_address), model)
    signum = signal.sigwait(STOP_SIGNALS)

    deadline = time.monotonic() + shutdown_timeout
    open_connections = server.begin_stop()
    log.info(
        "stopping on %s: %d connections open",
        signal.Signals(signum).name,
        open_connections,
    )
    server.wait_drained(min(STOP_GRACE_SECONDS, shutdown_timeout))
    server.end_grace()
    if busy := server.wait_drained(deadline - time.monotonic()):
        log.warning(
            "%d connections still busy after %gs; exiting", busy, shutdown_timeout
        )
        logging.shutdown()
        os._exit(0)  # a worker thread still in the handler would block a normal exit
    log.info("stopped")
