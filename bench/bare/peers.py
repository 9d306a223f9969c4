"""Other servers of the HTTP thread-pool model, beside the cells: the same Flask
application on waitress (one I/O thread, a pool for the application) and on
granian (I/O in Rust, the application on a pool of blocking threads), each with
as many threads as a threadpool cell's pool, and none of the cells' limits.

Neither reports a port it picked itself (granian binds with SO_REUSEPORT and logs
port 0): each gets a free one chosen here.
"""

from __future__ import annotations

import sys

from . import POOL_SIZE, free_address, listening


def waitress() -> None:
    from waitress import serve

    from .http import flask_app

    host, port = free_address()
    listening((host, port), f"Flask on waitress, {POOL_SIZE} threads")
    serve(flask_app(), host=host, port=port, threads=POOL_SIZE, _quiet=True)


def granian() -> None:
    from granian import Granian

    host, port = free_address()
    listening((host, port), f"Flask on granian, {POOL_SIZE} blocking threads")
    Granian(
        "bare.http:flask_app",
        factory=True,
        address=host,
        port=port,
        interface="wsgi",  # type: ignore[arg-type]  # the enum's value
        workers=1,
        runtime_threads=1,
        blocking_threads=POOL_SIZE,
        log_enabled=False,
    ).serve()


if __name__ == "__main__":
    {"waitress": waitress, "granian": granian}[sys.argv[1]]()
