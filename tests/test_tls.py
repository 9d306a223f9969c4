"""TLS with the clients people use: certificates made with the openssl command,
``openssl s_client`` for the versions and the certificate served before and after
a rotation, then curl (HTTP), Python's ssl (TCP) and the websockets client
(WebSocket), and mutual TLS; in every cell, each installed once into one virtual
environment as the benchmark installs them. Each cell's own suite checks the rest
with Python's clients (tests/test_tls.py of a rendered project)."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.targets import Target, install

from .certificates import issue, make_ca, openssl
from .helpers import MODELS, PROTOCOLS, clean_environment, run
from .test_prometheus import free_port, serving, wait_for

CELLS = [Target(protocol, model) for protocol in PROTOCOLS for model in MODELS]
TIMEOUT_SECONDS = 10.0
# websockets' asyncio client: its threaded one waits for a TLS socket with select(),
# which misses what TLS has read and not yet handed over (see the probe).
WEBSOCKET_CLIENT = """\
import asyncio, ssl, sys
from websockets.asyncio.client import connect

async def main():
    context = ssl.create_default_context(cafile=sys.argv[1])
    async with connect(f"wss://localhost:{sys.argv[2]}/", ssl=context) as websocket:
        await websocket.send("hello")
        print(await websocket.recv())

asyncio.run(main())
"""


@dataclass(frozen=True)
class Cell:
    """A cell installed, and a CA and a server certificate of its own."""

    target: Target
    python: Path
    certs: Path

    @property
    def protocol(self) -> str:
        return self.target.protocol

    @property
    def files(self) -> dict[str, str]:
        """The settings that serve TLS with the certificate."""
        return {
            "tls_cert": str(self.certs / "server.pem"),
            "tls_key": str(self.certs / "server.key"),
        }


class Server:
    """A cell's server, serving TLS, its log in a file."""

    def __init__(self, cell: Cell, **settings: str) -> None:
        self.port = free_port()
        self.log = cell.certs / f"server-{self.port}.log"
        prefix = cell.target.package.upper() + "_"
        env = {prefix + name.upper(): value for name, value in settings.items()}
        env |= {prefix + "METRICS_PORT": "0", "PORT": str(self.port)}
        self.process = subprocess.Popen(
            [cell.python, "-m", cell.target.package],
            cwd=cell.certs,
            env=clean_environment() | env,
            stderr=self.log.open("w"),
        )
        wait_for("server", lambda: serving(("127.0.0.1", self.port)))

    def wait_for_log(self, text: str) -> None:
        wait_for(f"log line {text!r}", lambda: text in self.log.read_text())

    def stop(self) -> None:
        self.process.terminate()
        assert self.process.wait(30) == 0
        assert "Traceback" not in self.log.read_text()


@pytest.fixture(scope="session")
def python(tmp_path_factory: Any) -> Path:
    """Every cell rendered and installed into one virtual environment."""
    return install(CELLS, tmp_path_factory.mktemp("cells"))


@pytest.fixture(scope="module", params=CELLS, ids=[t.cell for t in CELLS])
def cell(request: Any, python: Path, tmp_path_factory: Any) -> Cell:
    certs = tmp_path_factory.mktemp("certs")
    make_ca(certs)
    issue(certs, "server", 1)
    return Cell(request.param, python, certs)


@pytest.fixture
def server(cell: Cell) -> Iterator[Server]:
    started = Server(cell, **cell.files)
    yield started
    started.stop()


def s_client(port: int, certs: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """One handshake by openssl s_client, which then sends nothing and ends."""
    return openssl(
        "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
        "-CAfile", "ca.pem", "-verify_return_error", *options, cwd=certs,
    )  # fmt: skip


def served_serial(port: int, certs: Path) -> str:
    """The serial number of the certificate the server shows now."""
    shown = s_client(port, certs, "-showcerts")
    assert shown.returncode == 0, shown.stderr
    result = openssl("x509", "-noout", "-serial", cwd=certs, stdin=shown.stdout)
    return result.stdout.strip()


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_is_served_tls_1_2_and_1_3(
    cell: Cell, server: Server, version: str
) -> None:
    result = s_client(server.port, cell.certs, version, "-brief")
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stderr
    assert f"Protocol version: TLSv1.{version[-1]}" in result.stderr


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_openssl_s_client_is_refused_tls_1_0_and_1_1(
    cell: Cell, server: Server, version: str
) -> None:
    # SECLEVEL=0 lets this OpenSSL offer the old versions at all.
    result = s_client(server.port, cell.certs, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert result.returncode != 0
    assert re.search("alert protocol version|unexpected eof", result.stderr), (
        result.stderr
    )
    assert "no protocols available" not in result.stderr  # the client did offer it


def test_sighup_shows_openssl_the_new_certificate(cell: Cell, server: Server) -> None:
    certs = cell.certs
    assert served_serial(server.port, certs) == "serial=01"
    issue(certs, "rotated", 2)
    for suffix in ("pem", "key"):  # in place, as a secret store rotates them
        (certs / f"server.{suffix}").write_bytes(
            (certs / f"rotated.{suffix}").read_bytes()
        )
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("TLS certificate reloaded")
    assert served_serial(server.port, certs) == "serial=02"
    issue(certs, "server", 1)  # back as it was, for the tests after this one


def test_the_protocols_client_talks_over_tls(cell: Cell, server: Server) -> None:
    certs, port = cell.certs, server.port
    if cell.protocol == "http":
        url = f"https://localhost:{port}/echo"
        echoed = run(["curl", "-sS", "--cacert", "ca.pem", "-d", "hello", url], certs)
        assert echoed == "hello"
        return
    context = ssl.create_default_context(cafile=certs / "ca.pem")
    if cell.protocol == "websocket":  # websockets, as the project installs it
        client = [cell.python, "-c", WEBSOCKET_CLIENT, str(certs / "ca.pem")]
        echoed = run([*client, str(port)], certs)
        assert echoed == "hello\n"
        return
    with (
        socket.create_connection(("127.0.0.1", port), TIMEOUT_SECONDS) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"hello\n")
        assert tls.makefile("rb").readline() == b"hello\n"


def test_mutual_tls_with_openssl_s_client(cell: Cell) -> None:
    certs, foreign = cell.certs, cell.certs / "foreign"
    issue(certs, "client", 3)
    foreign.mkdir(exist_ok=True)
    make_ca(foreign)  # another CA, whose certificates the server must not take
    issue(foreign, "client", 4)
    server = Server(cell, tls_client_ca=str(certs / "ca.pem"), **cell.files)
    try:
        shown = s_client(
            server.port, certs, "-cert", "client.pem", "-key", "client.key", "-brief"
        )
        assert shown.returncode == 0, shown.stderr
        # TLS 1.2, where the server refuses in the handshake itself: a client with
        # no certificate, then one that another CA signed.
        for client in (
            [],
            ["-cert", "foreign/client.pem", "-key", "foreign/client.key"],
        ):
            refused = s_client(server.port, certs, "-tls1_2", "-brief", *client)
            assert refused.returncode != 0
            # asyncio closes without sending the alert.
            alerts = "alert (handshake failure|unknown ca)|unexpected eof"
            assert re.search(alerts, refused.stderr), refused.stderr
    finally:
        server.stop()
