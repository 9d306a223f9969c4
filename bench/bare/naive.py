"""The patterns of tutorials: a thread per client reading `recv(1024)`, and
`Flask.run(threaded=True)` (werkzeug's development server)."""

from __future__ import annotations

import socket
import sys
import threading
import time

from . import WAIT_SECONDS, free_address, listening


def serve_client(connection: socket.socket) -> None:
    with connection:
        while data := connection.recv(1024):
            if data.startswith(b"wait"):
                time.sleep(WAIT_SECONDS)
            connection.sendall(data)


def tcp() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    listening(server.getsockname(), "naive: recv(1024), a thread per client")
    while True:
        connection, _ = server.accept()
        threading.Thread(target=serve_client, args=(connection,)).start()


def http() -> None:
    from .http import flask_app

    address = free_address()  # Flask.run wants a port number, not 0
    listening(address, "naive: Flask.run(threaded=True)")
    flask_app().run(host=address[0], port=address[1], threaded=True)


if __name__ == "__main__":
    {"tcp": tcp, "http": http}[sys.argv[1]]()
