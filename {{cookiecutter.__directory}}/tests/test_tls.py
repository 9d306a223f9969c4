"""TLS, whatever the protocol and model: real clients with certificates made here
(trustme), the limits during the handshake, rotation on SIGHUP, mutual TLS and
the health check."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from {{ cookiecutter.package_name }}.probe import round_trip

from .serverprocess import (
    Address,
    ServerProcess,
    StartServer,
{%- if cookiecutter.concurrency != "blocking" %}
    capacity,
{%- endif %}
    exchange,
    read_until_closed,
    run_healthcheck,
    run_server_command,
)

TIMEOUT_SECONDS = 10.0
IDLE_SECONDS = 1.0
# The first bytes of a TLS record carrying a ClientHello, and nothing more.
HANDSHAKE_BEGUN = b"\x16\x03\x01\x02\x00\x01"
FATAL_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"  # an alert record: fatal, handshake

Connect = Callable[..., ssl.SSLSocket]  # connect(address, context=None)
# A request over the limit, raw, and a pattern of the answer it gets.
{%- if cookiecutter.protocol == "tcp" %}
LIMIT = {"max_line_bytes": 100}
HANDSHAKE = b""
REQUEST, ANSWERED = b"hello\n", b"hello\n"  # a request, and its answer begun
OVERSIZE = b"x" * 200 + b"\n"
ANSWER = re.escape(b"ERROR line too long (limit 100 bytes)\n")
REFUSED = "server busy"  # what the probe's error says of a refusal
{%- elif cookiecutter.protocol == "http" %}
LIMIT = {"max_body_bytes": 100}
HANDSHAKE = b""
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
ANSWERED = b"HTTP/1.1 200 "
OVERSIZE = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200\r\n\r\n"
OVERSIZE += b"x" * 200
ANSWER = rb"HTTP/1\.1 413 "
REFUSED = "503"
{%- else %}
LIMIT = {"max_message_bytes": 100}
HANDSHAKE = (  # answered before a client may send a message
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
REQUEST, ANSWERED = HANDSHAKE, b"HTTP/1.1 101 "
OVERSIZE = b"\x81\xfe\x00\xc8" + b"\x00" * 4 + b"x" * 200  # 200 bytes, mask 0
ANSWER = rb"\x88[\x02-\x7d]\x03\xf1"  # a close frame, code 1009
REFUSED = "503"
{%- endif %}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    """The server's TLS settings: a certificate for localhost that `ca` signed."""
    paths = {
        "tls_cert": str(tmp_path / "cert.pem"),
        "tls_key": str(tmp_path / "key.pem"),
    }
    write_certificate(ca.issue_cert("localhost", "127.0.0.1"), paths)
    return paths


@pytest.fixture
def tls_server(start_server: StartServer, files: dict[str, str]) -> ServerProcess:
    return start_server(**files)


def write_certificate(cert: trustme.LeafCert, paths: dict[str, str]) -> None:
    """Put `cert` and its key in the server's files, as a secret store does."""
    cert.private_key_pem.write_to_path(paths["tls_key"])
    Path(paths["tls_cert"]).write_bytes(
        b"".join(p.bytes() for p in cert.cert_chain_pems)
    )


def der(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def client_context(
    ca: trustme.CA, cert: trustme.LeafCert | None = None
) -> ssl.SSLContext:
    """A client's context that trusts `ca`, showing `cert` if there is one."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


@pytest.fixture
def connect(ca: trustme.CA) -> Iterator[Connect]:
    """Open TLS connections, closed after the test."""
    opened: list[ssl.SSLSocket] = []

    def open_tls(
        address: Address, context: ssl.SSLContext | None = None
    ) -> ssl.SSLSocket:
        sock = socket.create_connection(address, TIMEOUT_SECONDS)
        context = context or client_context(ca)
        opened.append(context.wrap_socket(sock, server_hostname="localhost"))
        return opened[-1]

    yield open_tls
    for sock in opened:
        sock.close()


def receive_until(sock: socket.socket, pattern: bytes) -> bytes:
    """What the server sends, until it matches `pattern` or the server closes."""
    received = b""
    while not re.search(pattern, received) and (chunk := sock.recv(65536)):
        received += chunk
    return received


def handshake(
    sock: socket.socket, context: ssl.SSLContext, name: str
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A client's TLS handshake over `sock`, without I/O after it: the client, and
    where what it reads and writes waits, for a test to send as it likes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    sock.sendall(outgoing.read())
    return tls, incoming, outgoing


def assert_no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log, server.log


def test_a_client_is_served_over_tls(
    tls_server: ServerProcess, connect: Connect
) -> None:
    with connect(tls_server.address) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        round_trip(sock)
    assert_no_traceback(tls_server)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused(tls_server: ServerProcess, ca: trustme.CA) -> None:
    old = client_context(ca)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets this client offer TLS 1.1 at all
    with (
        socket.create_connection(tls_server.address, TIMEOUT_SECONDS) as sock,
        # The server's alert; asyncio's TLS closes the connection without one.
        pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNEXPECTED_EOF"),
    ):
        old.wrap_socket(sock, server_hostname="localhost")


def test_plaintext_to_the_tls_port_ends_that_connection_only(
    tls_server: ServerProcess, connect: Connect
) -> None:
    answer = exchange(tls_server.address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nhello\n")
    assert not answer.startswith((b"HTTP", b"hello", b"ERROR"))  # nothing in plain text
    with connect(tls_server.address) as sock:
        round_trip(sock)
    assert_no_traceback(tls_server)


def test_tls_to_a_plain_port_ends_that_connection_only(
    start_server: StartServer, ca: trustme.CA
) -> None:
    server = start_server(idle_timeout=IDLE_SECONDS)
    with (
        socket.create_connection(server.address, TIMEOUT_SECONDS) as sock,
        pytest.raises((ssl.SSLError, ConnectionError)),  # or closed
    ):
        client_context(ca).wrap_socket(sock, server_hostname="localhost")
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        round_trip(sock)
    assert_no_traceback(server)


def test_a_stalled_handshake_is_dropped_at_the_idle_timeout(
    start_server: StartServer, files: dict[str, str]
) -> None:
    tls_server = start_server(idle_timeout=IDLE_SECONDS, **files)
    with socket.create_connection(tls_server.address, TIMEOUT_SECONDS) as sock:
        sock.sendall(HANDSHAKE_BEGUN)
        # The server closes the connection (an alert, at most, before it) long
        # before this client's own timeout would end the wait.
        assert len(read_until_closed(sock)) < 64
    assert_no_traceback(tls_server)
{%- if cookiecutter.concurrency != "blocking" %}


def test_a_stalled_handshake_holds_back_no_other_client(
    start_server: StartServer, files: dict[str, str], connect: Connect
) -> None:
{%- if cookiecutter.concurrency == "threadpool" %}
    server = start_server(pool_size=1, **files)  # the handshakes must not take it
{%- else %}
    server = start_server(**files)
{%- endif %}
    stalled = [
        socket.create_connection(server.address, TIMEOUT_SECONDS) for _ in range(3)
    ]
    for sock in stalled:
        sock.sendall(HANDSHAKE_BEGUN)
    with connect(server.address) as sock:
        round_trip(sock)
    for sock in stalled:
        sock.close()


def test_clients_in_their_handshake_count_against_the_cap(
    start_server: StartServer, files: dict[str, str], connect: Connect
) -> None:
    server = start_server(**capacity(2), **files)
    stalled = [
        socket.create_connection(server.address, TIMEOUT_SECONDS) for _ in range(2)
    ]
    for sock in stalled:
        sock.sendall(HANDSHAKE_BEGUN)
    with connect(server.address) as sock, pytest.raises(ConnectionError) as refused:
        round_trip(sock)
    assert REFUSED in str(refused.value)
    server.wait_for_log(r"refused .*: server busy")
    for sock in stalled:
        sock.close()
    for _ in range(50):  # their places are free once the server sees them go
        with connect(server.address) as sock, contextlib.suppress(ConnectionError):
            round_trip(sock)
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the places of the stalled clients were never freed")
    assert_no_traceback(server)
{%- endif %}


def test_clients_gone_before_their_handshake_leave_nothing_open(
    tls_server: ServerProcess, connect: Connect
) -> None:
    for _ in range(5):  # each closes before the server has taken it in
        socket.create_connection(tls_server.address, TIMEOUT_SECONDS).close()
    with connect(tls_server.address) as sock:
        round_trip(sock)
    tls_server.settled()
    tls_server.process.send_signal(signal.SIGTERM)
    assert tls_server.process.wait(TIMEOUT_SECONDS) == 0
    assert "stopping on SIGTERM: 0 connections open" in tls_server.log


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_an_oversize_request_gets_the_same_answer_with_tls(
    start_server: StartServer, ca: trustme.CA, files: dict[str, str], tls: bool
) -> None:
    server = start_server(**LIMIT, **(files if tls else {}))
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        context = client_context(ca)
        stream = context.wrap_socket(sock, server_hostname="localhost") if tls else sock
        if HANDSHAKE:
            stream.sendall(HANDSHAKE)
            assert receive_until(stream, rb"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        stream.sendall(OVERSIZE)
        assert re.search(ANSWER, receive_until(stream, ANSWER))


def test_sigterm_drains_tls_clients(
    tls_server: ServerProcess, connect: Connect
) -> None:
    with connect(tls_server.address) as sock:
{%- if cookiecutter.protocol == "websocket" %}
        sock.sendall(HANDSHAKE)
        tls_server.process.send_signal(signal.SIGTERM)
        # Answered, then closed with 1001 (going away) once the grace is over.
        going_away = rb"(?s)^HTTP/1\.1 101 .*\x88[\x02-\x7d]\x03\xe9"
        assert re.search(going_away, receive_until(sock, going_away))
{%- else %}
        # A request on its way when the stop begins: answered, then closed.
{%- if cookiecutter.protocol == "http" %}
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        tls_server.process.send_signal(signal.SIGTERM)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
{%- else %}
        sock.sendall(b"hello\n")
        tls_server.process.send_signal(signal.SIGTERM)
        assert read_until_closed(sock) == b"hello\n"
{%- endif %}
{%- endif %}
    assert tls_server.process.wait(TIMEOUT_SECONDS) == 0
    assert_no_traceback(tls_server)


def test_the_handshake_takes_none_of_the_first_requests_time(
    start_server: StartServer, files: dict[str, str], ca: trustme.CA
) -> None:
    # Each step within the idle timeout, both together beyond it.
    server = start_server(idle_timeout=4, **files)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        time.sleep(2.5)
        with client_context(ca).wrap_socket(sock, server_hostname="localhost") as tls:
            time.sleep(2.5)
            tls.sendall(REQUEST)
            assert receive_until(tls, re.escape(ANSWERED)).startswith(ANSWERED)


def test_a_broken_record_ends_that_connection_only(
    tls_server: ServerProcess, ca: trustme.CA, connect: Connect
) -> None:
    # A request, then in the same packet an alert in plain text, which ends TLS
    # for the server before it answers.
    with socket.create_connection(tls_server.address, TIMEOUT_SECONDS) as sock:
        tls, _, outgoing = handshake(sock, client_context(ca), "localhost")
        tls.write(REQUEST)
        sock.sendall(outgoing.read() + FATAL_ALERT)
        read_until_closed(sock)
    with connect(tls_server.address) as sock:
        round_trip(sock)
    assert tls_server.process.poll() is None
    assert_no_traceback(tls_server)


{%- if cookiecutter.protocol == "tcp" and cookiecutter.concurrency != "asyncio" %}


def test_a_line_sent_just_before_close_notify_is_answered(
    tls_server: ServerProcess, ca: trustme.CA
) -> None:
    with socket.create_connection(tls_server.address, TIMEOUT_SECONDS) as sock:
        tls, incoming, outgoing = handshake(sock, client_context(ca), "localhost")
        tls.write(REQUEST)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.unwrap()  # close_notify: this client sends nothing more
        sock.sendall(outgoing.read())
        incoming.write(read_until_closed(sock))
    answer = b""
    with contextlib.suppress(ssl.SSLZeroReturnError):  # the server's close_notify
        while chunk := tls.read(65536):
            answer += chunk
    assert answer == ANSWERED
{%- endif %}


def test_a_server_name_not_in_ascii_is_refused_quietly(
    tls_server: ServerProcess, ca: trustme.CA, connect: Connect
) -> None:
    # Python's client sends names in ASCII only: the name is changed on its way.
    named = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context(ca).wrap_bio(*named, server_hostname="cafex.example")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    hello = named[1].read().replace(b"cafex.example", "café.example".encode())
    with socket.create_connection(tls_server.address, TIMEOUT_SECONDS) as sock:
        sock.sendall(hello)
        read_until_closed(sock)
    with connect(tls_server.address) as sock:
        round_trip(sock)
    assert_no_traceback(tls_server)


def test_an_encrypted_key_stops_it_with_one_line(
    ca: trustme.CA, files: dict[str, str]
) -> None:
    key = serialization.load_pem_private_key(Path(files["tls_key"]).read_bytes(), None)
    Path(files["tls_key"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"a passphrase"),
        )
    )
    result = run_server_command(
        "--tls-cert", files["tls_cert"], "--tls-key", files["tls_key"]
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "the key is encrypted: give it without a passphrase" in result.stderr


def test_sighup_rotates_the_certificate_for_new_connections(
    tls_server: ServerProcess, ca: trustme.CA, files: dict[str, str], connect: Connect
) -> None:
    before = connect(tls_server.address)
    first = before.getpeercert(binary_form=True)
    rotated = ca.issue_cert("localhost", "127.0.0.1")
    write_certificate(rotated, files)
    tls_server.process.send_signal(signal.SIGHUP)
    tls_server.wait_for_log("TLS certificate reloaded")
    round_trip(before)  # the connection made before goes on
    before.close()
    with connect(tls_server.address) as after:
        assert after.getpeercert(binary_form=True) == der(rotated) != first
        round_trip(after)


def test_sighup_reaches_every_worker(
    start_server: StartServer, ca: trustme.CA, files: dict[str, str]
) -> None:
    server = start_server(workers=2, **files)
    workers = server.wait_for_workers(2)
    rotated = ca.issue_cert("localhost", "127.0.0.1")
    write_certificate(rotated, files)
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("(?s)" + ".*".join(["TLS certificate reloaded"] * 2))
    served = []
    for sock in server.connect_to_each(workers):
        with client_context(ca).wrap_socket(sock, server_hostname="localhost") as tls:
            served.append(tls.getpeercert(binary_form=True))
    assert served == [der(rotated)] * len(workers)


def test_sighup_keeps_the_certificate_when_the_new_files_are_bad(
    tls_server: ServerProcess, files: dict[str, str], connect: Connect
) -> None:
    with connect(tls_server.address) as sock:
        served = sock.getpeercert(binary_form=True)
    Path(files["tls_cert"]).write_text("not a certificate\n")
    tls_server.process.send_signal(signal.SIGHUP)
    line = tls_server.wait_for_log("TLS certificate not reloaded.*\n")
    assert files["tls_cert"] in line[0]
    assert "not PEM" in line[0]
    with connect(tls_server.address) as sock:
        assert sock.getpeercert(binary_form=True) == served
        round_trip(sock)
    assert_no_traceback(tls_server)


@pytest.fixture
def mutual_server(
    start_server: StartServer, ca: trustme.CA, files: dict[str, str], tmp_path: Path
) -> ServerProcess:
    client_ca = tmp_path / "client-ca.pem"
    ca.cert_pem.write_to_path(str(client_ca))
    return start_server(tls_client_ca=client_ca, **files)


def test_mutual_tls_serves_a_client_certificate_the_ca_signed(
    mutual_server: ServerProcess, ca: trustme.CA, connect: Connect
) -> None:
    client = ca.issue_cert("client.example")
    with connect(mutual_server.address, client_context(ca, client)) as sock:
        round_trip(sock)


@pytest.mark.parametrize("certificate", ["none", "foreign"])
def test_mutual_tls_refuses_a_client_without_a_signed_certificate(
    mutual_server: ServerProcess, ca: trustme.CA, connect: Connect, certificate: str
) -> None:
    foreign = trustme.CA().issue_cert("client.example")
    context = client_context(ca, foreign if certificate == "foreign" else None)
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),  # in the handshake, or after
        connect(mutual_server.address, context) as sock,
    ):
        round_trip(sock)
    with connect(mutual_server.address, client_context(ca, ca.issue_cert("c"))) as sock:
        round_trip(sock)  # the server still serves the clients it should
    assert_no_traceback(mutual_server)


def test_the_health_check_speaks_tls(
    tls_server: ServerProcess, files: dict[str, str]
) -> None:
    assert run_healthcheck(*tls_server.address).returncode == 1  # plain: unhealthy
    result = run_healthcheck(*tls_server.address, files)
    assert result.returncode == 0, result.stderr


def test_the_health_check_shows_the_servers_certificate_under_mutual_tls(
    mutual_server: ServerProcess, files: dict[str, str], tmp_path: Path
) -> None:
    client_ca = tmp_path / "client-ca.pem"
    result = run_healthcheck(
        *mutual_server.address, {"tls_client_ca": client_ca, **files}
    )
    assert result.returncode == 0, result.stderr
