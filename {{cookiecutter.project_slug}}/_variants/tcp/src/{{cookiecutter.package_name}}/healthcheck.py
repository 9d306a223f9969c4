"""A health probe that makes one real round trip.

    python -m {{ cookiecutter.package_name }}.healthcheck

It connects to the server named by the same HOST and PORT settings, sends one line
and waits for one line back; any answer, even an error line, shows the server is
alive and serving. Exit status 0 when it is, 1 when not, as container health
checks expect.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from .config import ConfigError, Settings, load

PROBE = b"healthcheck\n"
TIMEOUT_SECONDS = 3.0
# A server listening on every address is probed on the loopback one.
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def probe(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """Send one line and return the line that comes back; raise OSError if none does."""
    with socket.create_connection((WILDCARDS.get(host, host), port), timeout) as sock:
        sock.sendall(PROBE)
        answer = sock.makefile("rb").readline()
    if not answer.endswith(b"\n"):
        raise ConnectionError("the server closed the connection without answering")
    return answer


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(Settings, argv)
        probe(settings.host, settings.port)
    except (ConfigError, OSError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
