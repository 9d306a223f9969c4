"""The command line: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import contextlib
import functools
import resource
import sys
from collections.abc import Sequence

from . import logs, workers
from .config import PROG, ConfigError, load
from .server import Handler, Settings, serve
from .tls import server_tls


def main(argv: Sequence[str] | None = None, handler: Handler | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then drain; exit 0, 1 if the drain ran out
    of time, or 2 if misconfigured.

    `handler` replaces the project's own, as the tests do.
    """
    try:
        settings = load(Settings, argv)
        logs.configure(settings.log_level, settings.log_format)
        raise_open_file_limit()
        # Loaded once, here: files that do not load stop the server at once.
        tls = server_tls(settings)
        if handler is None:
            serve_socket = functools.partial(serve, settings, tls=tls)
        else:
            serve_socket = functools.partial(serve, settings, handler=handler, tls=tls)
        return workers.serve(settings, serve_socket)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


def raise_open_file_limit() -> None:
    """Allow as many open connections as the system does (`ulimit -n`'s hard limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Some systems (macOS) refuse an unlimited soft limit: the old one stays then.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    sys.exit(main())
