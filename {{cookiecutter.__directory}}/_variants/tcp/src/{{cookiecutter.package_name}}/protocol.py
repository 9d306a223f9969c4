"""Line framing without I/O: bytes in, requests out; replies in, bytes out.

A request is one line of UTF-8 text ending in a newline (a carriage return before it
is dropped, so `nc -C` and telnet work); a reply is one line. The servers own the
sockets and the threads or tasks; this module owns the bytes, so every concurrency
model frames, limits and rejects requests the same way. Another framing (say, a
length prefix) is another class with the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import config
from .config import setting


@dataclass(frozen=True)
class LineSettings(config.Settings):
    """The settings of every line server: those of any server, and the line limit."""

    max_line_bytes: int = setting(
        64 * 1024, "longest request line, in bytes", minimum=1, maximum=16 * 1024**2
    )


@dataclass(frozen=True)
class Request:
    """One complete request line, decoded."""

    text: str


@dataclass(frozen=True)
class Reject:
    """A request the server refuses with ``error(reason)``, closing if asked;
    `kind` is what its metrics count it as (see metrics.ERRORS)."""

    reason: str
    close: bool
    kind: str = "malformed"


Event = Request | Reject


class LineProtocol:
    """The framing state of one connection."""

    def __init__(self, max_line_bytes: int = LineSettings.max_line_bytes) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no newline

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete, in order.

        A line longer than the limit ends the stream with a closing Reject, as soon
        as the limit is passed: the server never buffers more than one line.
        """
        self._buffer += data
        events: list[Event] = []
        while (end := self._buffer.find(b"\n", self._scanned)) >= 0:
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            self._scanned = 0
            if len(line) > self.max_line_bytes:
                events.append(self._too_long())
                return events
            if b"\r" in line:  # a reply could not echo it and stay one line
                events.append(Reject("carriage return inside a line", close=False))
                continue
            try:
                events.append(Request(line.decode("utf-8")))
            except UnicodeDecodeError:
                events.append(Reject("invalid UTF-8", close=False))
        self._scanned = len(self._buffer)
        # One byte of slack: the carriage return of a line of exactly the limit.
        if len(self._buffer) > self.max_line_bytes + 1:
            events.append(self._too_long())
        return events

    def receive_eof(self) -> list[Event]:
        """The peer has finished sending: a line it left unterminated is rejected."""
        if not self._buffer:
            return []
        self._buffer.clear()
        self._scanned = 0
        return [Reject("incomplete line: no newline before the end", close=True)]

    def _too_long(self) -> Reject:
        self._buffer.clear()
        self._scanned = 0
        reason = f"line too long (limit {self.max_line_bytes} bytes)"
        return Reject(reason, close=True, kind="oversize")


def reply(text: str) -> bytes:
    """Encode the handler's answer as one line."""
    if "\n" in text or "\r" in text:
        raise ValueError("a reply must be a single line: it holds a line break")
    return text.encode("utf-8") + b"\n"


def error(reason: str) -> bytes:
    """Encode an error line; clients tell it from a reply by its ``ERROR`` prefix."""
    return f"ERROR {reason}\n".encode()
