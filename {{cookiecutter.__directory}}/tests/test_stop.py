"""The stop on SIGTERM, where it does not depend on the protocol or the model."""

from __future__ import annotations

import signal
import socket
import time

from .serverprocess import StartServer

TIMEOUT_SECONDS = 15.0


def test_stop_ends_silent_clients_however_they_were_taken_in(
    start_server: StartServer,
) -> None:
    """Clients that send nothing are closed at the end of the stop's grace, the
    one connected before the stop and the one that connected as it began (in the
    blocking model, taken in from the backlog only once the first has gone): the
    stop does not wait out their idle timeout."""
    server = start_server(idle_timeout=60, shutdown_timeout=60)
    with socket.create_connection(server.address, TIMEOUT_SECONDS):
        time.sleep(0.5)  # the server takes the first client in
        server.process.send_signal(signal.SIGSTOP)  # the next waits in the backlog
        try:
            second = socket.create_connection(server.address, TIMEOUT_SECONDS)
            server.process.send_signal(signal.SIGTERM)
        finally:
            server.process.send_signal(signal.SIGCONT)
        with second:
            # Well inside both timeouts: clients that send nothing hold nothing up.
            assert server.process.wait(TIMEOUT_SECONDS) == 0
