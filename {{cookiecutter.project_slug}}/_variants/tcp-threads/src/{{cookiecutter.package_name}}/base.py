"""What the thread models share: the connection loop, admission and graceful stop.

Built on the standard library's socketserver. The models differ only in which thread
serves an admitted connection: the accepting thread itself (blocking), a new thread
(threaded) or a pool worker (threadpool); server.py picks one.
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

from . import logs, protocol
from .config import cannot_listen
from .protocol import Event, LineProtocol, Request

log = logging.getLogger(__name__)

Handler = Callable[[str], str]
RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # how long a closing connection drains what the client still sends
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class LineServer(socketserver.TCPServer):
    """Admits `max_connections` clients at once; refuses the rest with a line."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        *,
        max_line_bytes: int,
        idle_timeout: float,
        max_connections: int,
    ) -> None:
        self.handler = handler
        self.max_line_bytes = max_line_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.refusals = logs.Throttled(log)
        self._active: set[socket.socket] = set()
        self._changed = threading.Condition()
        self.stopping = False
        # Readable once the server stops: wakes every connection waiting for input.
        self.stop_signal, self._stop_writer = os.pipe()
        try:
            self.address_family = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[
                0
            ][0]
            super().__init__(address, LineConnection)
        except OSError as error:
            raise cannot_listen(*address, error) from None

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._changed:
            if self.stopping:
                refusal = "server shutting down"
            elif len(self._active) >= self.max_connections:
                refusal = "server busy"
            else:
                self._active.add(request)
                return True
        self.refuse(request, client_address, refusal)
        return False

    def refuse(self, request: socket.socket, client_address: Any, reason: str) -> None:
        """Turn a client away with an error line; the caller closes the socket."""
        self.refusals.warning(f"refused {logs.address(client_address)}: {reason}")
        with contextlib.suppress(OSError):
            request.settimeout(0)  # never wait on a client that is being turned away
            request.send(protocol.error(reason))

    def shutdown_request(self, request: Any) -> None:
        with self._changed:
            self._active.discard(request)
            self._changed.notify_all()
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("connection from %s failed", logs.address(client_address))

    def respond(self, text: str) -> bytes:
        """The reply line to one request, or an error line if the handler fails."""
        try:
            return protocol.reply(self.handler(text))
        except Exception:
            log.exception("handler failed; the client gets an error line")
            return protocol.error("internal error")

    def begin_stop(self) -> int:
        """Refuse new clients and wake idle ones; return how many are connected."""
        with self._changed:
            self.stopping = True
            os.write(self._stop_writer, b"!")
            return len(self._active)

    def wait_idle(self, timeout: float) -> int:
        """Wait until every connection is closed; return how many are still open."""
        with self._changed:
            self._changed.wait_for(lambda: not self._active, max(timeout, 0))
            return len(self._active)


class LineConnection(socketserver.BaseRequestHandler):
    """One client: read lines and answer each, until EOF, an error or a timeout."""

    server: LineServer
    request: socket.socket

    def handle(self) -> None:
        self.ready = select.poll()
        self.ready.register(self.request, select.POLLIN)
        self.ready.register(self.server.stop_signal, select.POLLIN)
        try:
            self._serve()
        except OSError as error:  # reset, broken pipe, a send that timed out
            log.debug("%s: %s", logs.address(self.client_address), error)

    def _serve(self) -> None:
        framing = LineProtocol(self.server.max_line_bytes)
        while (events := self._receive(framing)) is not None:
            for event in events:
                if isinstance(event, Request):
                    self._send(self.server.respond(event.text))
                    continue
                self._send(protocol.error(event.reason))
                if event.close:
                    self._linger()
                    return

    def _receive(self, framing: LineProtocol) -> list[Event] | None:
        """The next events; None once the connection is over."""
        deadline = time.monotonic() + self.server.idle_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready = dict(self.ready.poll(remaining * 1000))
            if self.server.stop_signal in ready:
                self._linger()
                return None
            if ready:
                data = self.request.recv(RECV_BYTES)
                if not data:
                    return framing.receive_eof() or None
                if events := framing.receive_data(data):
                    return events
        self._send(protocol.error("idle timeout"))
        self._linger()
        return None

    def _send(self, data: bytes) -> None:
        self.request.settimeout(self.server.idle_timeout)
        self.request.sendall(data)

    def _linger(self) -> None:
        """End the connection from this side without losing the replies already sent.

        Closing a socket with unread input sends a reset, which can destroy replies
        the client has not read yet: stop sending, then drain the client a while.
        """
        self.request.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            self.request.settimeout(remaining)
            if not self.request.recv(RECV_BYTES):
                return


def run(server: LineServer, model: str, shutdown_timeout: float) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight requests finish and return."""
    # A signal that the kernel hands to another thread cannot wake the main thread
    # from a wait. Blocked here, before any thread starts (they all inherit the
    # mask), the signals wait until the main thread takes them with sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    accepting = threading.Thread(
        target=server.serve_forever, args=(0.1,), name="accept", daemon=True
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
    # shutdown() waits for the accept loop, which in the blocking model is busy
    # until its client is done: let it wait in a thread of its own.
    threading.Thread(target=server.shutdown, daemon=True).start()
    accepting.join(deadline - time.monotonic())
    if not accepting.is_alive():
        server.server_close()
    if busy := server.wait_idle(deadline - time.monotonic()):
        log.warning(
            "%d connections still busy after %gs; exiting", busy, shutdown_timeout
        )
        logging.shutdown()
        os._exit(0)  # a worker thread still in the handler would block a normal exit
    log.info("stopped")
