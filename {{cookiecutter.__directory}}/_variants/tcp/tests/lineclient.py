"""A small line client for the tests: a real socket, with timeouts."""

from __future__ import annotations

import select
import socket
import struct
from types import TracebackType

TIMEOUT_SECONDS = 10.0


class LineClient:
    def __init__(
        self, address: tuple[str, int], timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self._reader = self.sock.makefile("rb")

    def __enter__(self) -> LineClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> str:
        """The next line from the server, without its newline."""
        line = self._reader.readline()
        if not line.endswith(b"\n"):
            raise EOFError(f"the server closed the connection after {line!r}")
        return line[:-1].decode()

    def request(self, line: str) -> str:
        self.send(line.encode() + b"\n")
        return self.read_line()

    def has_answer(self, within: float) -> bool:
        """Whether the server sends something (or closes) within `within` seconds."""
        return bool(select.select([self.sock], [], [], within)[0])

    def read_until_closed(self) -> list[str]:
        """Every line until the server closes; a reset or a cut line fails the test."""
        lines = []
        while line := self._reader.readline():
            assert line.endswith(b"\n"), f"a reply was cut short: {line!r}"
            lines.append(line[:-1].decode())
        return lines

    def is_closed_by_server(self) -> bool:
        """Whether the server ends the connection, with nothing more to read."""
        try:
            return self._reader.read() == b""
        except ConnectionResetError:
            return True

    def reset(self) -> None:
        """Vanish abruptly: close with a TCP reset instead of a goodbye."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.close()

    def close(self) -> None:
        self._reader.close()
        self.sock.close()
