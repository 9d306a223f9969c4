"""Your server's logic: one request line in, one reply line out.

This is the place for your code; the server around it deals with sockets, tasks,
limits and shutdown. `handle` runs on the event loop: await I/O instead of blocking,
and move blocking calls off the loop with ``await asyncio.to_thread(...)``. Whatever
it raises is logged with its traceback and the client gets ``ERROR internal error``;
the server goes on serving.
"""

from __future__ import annotations


async def handle(line: str) -> str:
    """Answer one request line (without its newline) with one reply line.

    The default echoes the line back.
    """
    return line
