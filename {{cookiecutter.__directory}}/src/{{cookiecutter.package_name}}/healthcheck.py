"""The health probe for containers and load balancers.

    python -m {{ cookiecutter.package_name }}.healthcheck

It makes one real round trip (see probe.py) to the address in the HOST and PORT
variables, the server's own, with a wildcard host replaced by the loopback one.
Exit status 0 when healthy, 1 when not, as container health checks expect.
"""

from __future__ import annotations

import sys

from .config import ConfigError, local_address
from .probe import probe


def main() -> int:
    try:
        probe(*local_address())
    except (ConfigError, OSError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
