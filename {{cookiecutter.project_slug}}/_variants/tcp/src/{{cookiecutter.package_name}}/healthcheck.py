"""A health probe that makes one real round trip.

    python -m {{ cookiecutter.package_name }}.healthcheck

It connects to the address in the HOST and PORT variables (the server's own), sends
one line and waits for one line back. It reports healthy when the server answers
and can take a client now: an answer of ``ERROR server busy`` or ``ERROR server
shutting down`` counts as unhealthy, so a load balancer sends clients elsewhere.
Exit status 0 when healthy, 1 when not, as container health checks expect.
"""

from __future__ import annotations

import socket
import sys

from .config import ConfigError, local_address

PROBE = b"healthcheck\n"
TIMEOUT_SECONDS = 3.0
TURNED_AWAY = (b"ERROR server busy\n", b"ERROR server shutting down\n")


def probe(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> None:
    """Make one round trip; raise OSError saying why the server is not healthy."""
    with socket.create_connection((host, port), timeout) as sock:
        sock.sendall(PROBE)
        answer = sock.makefile("rb").readline()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the server closed the connection without answering")
    if answer in TURNED_AWAY:
        raise ConnectionError(f"the server answered {answer.decode().strip()!r}")


def main() -> int:
    try:
        probe(*local_address())
    except (ConfigError, OSError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
