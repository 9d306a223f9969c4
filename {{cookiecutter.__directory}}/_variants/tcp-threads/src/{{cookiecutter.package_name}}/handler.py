"""Your server's logic: one request line in, one reply line out.

This is the place for your code; the server around it deals with sockets, threads,
limits and shutdown. `handle` runs in a worker thread, so anything it shares with
other requests must be thread-safe. Whatever it raises is logged with its traceback
and the client gets ``ERROR internal error``; the server goes on serving.
"""

from __future__ import annotations


def handle(line: str) -> str:
    """Answer one request line (without its newline) with one reply line.

    The default echoes the line back.
    """
    return line
