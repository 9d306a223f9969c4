"""A health probe that makes one real request.

    python -m {{ cookiecutter.package_name }}.healthcheck

It sends ``GET /healthz`` to the address in the HOST and PORT variables (the
server's own) and reports healthy on a 200 answer. Exit status 0 when healthy,
1 when not, as container health checks expect.
"""

from __future__ import annotations

import http.client
import sys

from .config import ConfigError, local_address

TIMEOUT_SECONDS = 3.0


def probe(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> None:
    """Make one request; raise OSError saying why the server is not healthy."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        if response.status != 200:
            raise ConnectionError(f"GET /healthz answered {response.status}")
    except http.client.HTTPException as error:
        raise ConnectionError(f"GET /healthz failed: {error!r}") from None
    finally:
        connection.close()


def main() -> int:
    try:
        probe(*local_address())
    except (ConfigError, OSError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
