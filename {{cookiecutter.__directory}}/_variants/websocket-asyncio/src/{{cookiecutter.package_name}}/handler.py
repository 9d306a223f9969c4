"""Your code: what the server answers to each message a client sends.

A coroutine, awaited on the event loop for every message, text (str) or binary
(bytes). Return the reply, or None to send none. Await I/O freely; move blocking
or CPU-heavy calls off the loop with ``await asyncio.to_thread(...)``, or every
client waits. An exception closes that client's connection with code 1011 and is
logged with its traceback; other clients go on.
"""

from __future__ import annotations

Message = str | bytes


async def handle(message: Message) -> Message | None:
    """Echo each message back, text as text and binary as binary."""
    return message
