"""The command line: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import logs
from .config import PROG, ConfigError, load
from .server import Handler, Settings, serve


def main(argv: Sequence[str] | None = None, handler: Handler | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then drain; exit 0, or 2 if misconfigured.

    `handler` replaces the project's own, as the tests do.
    """
    try:
        settings = load(Settings, argv)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if handler is None:
        serve(settings)
    else:
        serve(settings, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
