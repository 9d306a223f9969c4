"""The health probe for containers and load balancers.

    python -m {{ cookiecutter.package_name }}.healthcheck

It makes one real round trip (see probe.py) to the address in the HOST and PORT
variables, the server's own, with a wildcard host replaced by the loopback one;
over TLS when the server's TLS variables are set. Exit status 0 when healthy, 1
when not, as container health checks expect.
"""

from __future__ import annotations

import socket
import ssl
import sys

from .config import ConfigError, local_settings
from .probe import round_trip
from .tls import probe_context

TIMEOUT_SECONDS = 3.0


def probe(
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Make one round trip; raise OSError saying why the server is not healthy."""
    with socket.create_connection((host, port), timeout) as sock:
        if tls is None:
            round_trip(sock)
            return
        with tls.wrap_socket(sock) as encrypted:
            round_trip(encrypted)


def main() -> int:
    try:
        settings = local_settings()
        probe(settings.host, settings.port, probe_context(settings))
    except (ConfigError, OSError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
