"""Your code: what the server answers to each message a client sends.

A plain function, called on a worker thread for every message, text (str) or
binary (bytes). Return the reply, or None to send none. It may block (a database
call, a file): only its own client waits. An exception closes that client's
connection with code 1011 and is logged with its traceback; other clients go on.
"""

from __future__ import annotations

Message = str | bytes


def handle(message: Message) -> Message | None:
    """Echo each message back, text as text and binary as binary."""
    return message
