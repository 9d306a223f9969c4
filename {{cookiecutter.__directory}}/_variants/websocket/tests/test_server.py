"""The real server over loopback: messages, pages, limits, rude clients, shutdown.

The same tests hold for every concurrency model.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import struct
import time

import psutil
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from {{ cookiecutter.package_name }}.config import env_var

from .serverprocess import (
    SETTINGS,
    STARTS_A_THREAD,
    Address,
    ServerProcess,
    StartServer,
    assert_workers_share,
    capacity,
    exchange,
    run_server_command,
)
from .test_metrics import free_port, read, wait_until
from .wsclient import (
    TIMEOUT_SECONDS,
    client,
    handshake_request,
    raw_handshake,
    read_frame,
)

TEST_HANDLER = "tests.handlers:handle"
CLOSE = 0x8


def get(address: Address, path: str) -> tuple[int, dict[str, list[str]], bytes]:
    """A plain HTTP GET: status, headers (each with all its values), body."""
    connection = http.client.HTTPConnection(*address, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        headers: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            headers.setdefault(name, []).append(value)
        return response.status, headers, response.read()
    finally:
        connection.close()


def assert_echoes(address: Address) -> None:
    with client(address) as websocket:
        websocket.send("ping")
        assert websocket.recv(TIMEOUT_SECONDS) == "ping"


def assert_closed_with(websocket: object, code: int) -> None:
    """The server closes `websocket` (a client connection) with `code`."""
    with pytest.raises(ConnectionClosed) as closed:
        websocket.recv(TIMEOUT_SECONDS)  # type: ignore[attr-defined]
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


def test_echoes_text_and_binary(server: ServerProcess) -> None:
    with client(server.address) as websocket:
        websocket.send("héllo ✓")
        assert websocket.recv(TIMEOUT_SECONDS) == "héllo ✓"
        websocket.send(b"\x00\xff")
        assert websocket.recv(TIMEOUT_SECONDS) == b"\x00\xff"


def test_a_handler_returning_none_sends_nothing(start_server: StartServer) -> None:
    server = start_server(handler=TEST_HANDLER)
    with client(server.address) as websocket:
        websocket.send("quiet")
        websocket.send("hello")
        assert websocket.recv(TIMEOUT_SECONDS) == "hello"


def test_serves_the_demo_page(server: ServerProcess) -> None:
    status, headers, body = get(server.address, "/")
    assert status == 200
    assert headers["Content-Type"] == ["text/html; charset=utf-8"]
    assert b"new WebSocket(" in body


def test_healthz_answers_ok(server: ServerProcess) -> None:
    assert get(server.address, "/healthz")[::2] == (200, b"ok\n")


def test_other_paths_are_not_found(server: ServerProcess) -> None:
    assert get(server.address, "/nope")[0] == 404
    with pytest.raises(InvalidStatus) as refused:
        client(server.address, "/nope")
    assert refused.value.response.status_code == 404


def test_logs_the_address_it_bound(server: ServerProcess) -> None:
    host, port = server.address
    assert f"listening on {host}:{port}" in server.log


def test_closes_with_1009_on_a_message_over_the_limit(
    start_server: StartServer,
) -> None:
    port = free_port()
    server = start_server(max_message_bytes=1000, metrics_port=port)
    with client(server.address) as websocket:
        websocket.send("x" * 2000)
        assert_closed_with(websocket, 1009)
    assert_echoes(server.address)
    # Counted: the close code, and the protocol error it told of.
    wait_until(lambda: read(port, "websocket_closes_total", {"code": "1009"}) == 1)
    assert read(port, "protocol_errors_total", {"kind": "oversize"}) == 1
    wait_until(lambda: read(port, "websocket_closes_total", {"code": "1000"}) == 1)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        handshake_request().replace(b"\r\n\r\n", b"\r\nUpgrade: websocket\r\n\r\n"),
    ],
    ids=["tls-hello", "no-key", "bad-header-name", "two-upgrades"],
)
def test_refuses_a_bad_handshake(server: ServerProcess, garbage: bytes) -> None:
    response = exchange(server.address, garbage)
    assert response == b"" or re.match(rb"HTTP/1.1 4\d\d ", response), response
    assert_echoes(server.address)
    assert "Traceback" not in server.log  # the client's fault, not the server's


def test_closes_a_client_that_trickles_its_handshake(
    start_server: StartServer,
) -> None:
    server = start_server(idle_timeout=1)
    with socket.create_connection(server.address, timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.1)
        for _ in range(50):  # 5 s of trickling, far past the timeout
            try:
                sock.sendall(b"X")
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        else:
            pytest.fail("the server kept a trickling client for 5 s")
    assert_echoes(server.address)


def test_closes_a_client_that_stops_answering_pings(
    start_server: StartServer,
) -> None:
    server = start_server(ping_interval=0.2, ping_timeout=0.5)
    with raw_handshake(server.address) as sock:
        for _ in range(20):  # pings, never answered, until the close
            opcode, payload = read_frame(sock)
            if opcode == CLOSE:
                assert struct.unpack("!H", payload[:2]) == (1011,)
                break
        else:
            pytest.fail("the server kept pinging a client that never answers")
    assert_echoes(server.address)


def test_closes_a_client_that_stops_taking_its_messages(
    start_server: StartServer,
) -> None:
    # The idle timeout bounds the closing handshake the client never answers.
    server = start_server(
        ping_interval=0.5, ping_timeout=1, idle_timeout=1, **capacity(1)
    )
    with raw_handshake(server.address) as sock:
        sock.settimeout(0.5)
        frame = b"\x82\xff" + struct.pack("!Q", 65536) + b"mask" + bytes(65536)
        for _ in range(400):  # echoes fill both buffers, then the server's send stalls
            try:
                sock.sendall(frame)
            except OSError:
                break
        # The only slot frees once the server drops the client that never reads.
        for _ in range(150):
            try:
                assert_echoes(server.address)
                break
            except (InvalidStatus, TimeoutError):
                time.sleep(0.1)
        else:
            pytest.fail("a client that never reads kept its connection")


def test_survives_a_client_vanishing_mid_message(server: ServerProcess) -> None:
    sock = raw_handshake(server.address)
    sock.sendall(b"\x81\x85mask")  # a masked text frame of 5 bytes: none follow
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # with a reset
    assert_echoes(server.address)


def test_closes_with_1007_on_invalid_utf8(server: ServerProcess) -> None:
    with raw_handshake(server.address) as sock:
        sock.sendall(b"\x81\x82\x00\x00\x00\x00\xff\xfe")  # text frame, not UTF-8
        opcode, payload = read_frame(sock)
        assert (opcode, struct.unpack("!H", payload[:2])) == (CLOSE, (1007,))
    assert_echoes(server.address)


def test_handler_error_closes_with_1011_and_is_logged(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_HANDLER)
    with client(server.address, additional_headers={"X-Request-ID": "w-7"}) as ws:
        ws.send("crash")
        assert_closed_with(ws, 1011)
    server.wait_for_log(r"Traceback[\s\S]*RuntimeError: crash requested")
    # Under the id of the connection's handshake, as everything logged for it.
    server.wait_for_log(r"ERROR \S+\[\d+\] \[w-7\]: ")
    assert_echoes(server.address)


def test_each_handshake_and_page_is_logged_with_its_time_and_id(
    server: ServerProcess,
) -> None:
    with client(server.address, additional_headers={"X-Request-ID": "ws-1"}) as ws:
        assert ws.response is not None
        assert ws.response.headers["X-Request-ID"] == "ws-1"
    server.wait_for_log(r'\[ws-1\]: 127\.0\.0\.1 "GET / HTTP/1\.1" 101 \d+\.\d ms')
    status, headers, _ = get(server.address, "/?page")
    (made,) = headers["X-Request-ID"]
    assert (status, re.fullmatch(r"[0-9a-f]{32}", made) is not None) == (200, True)
    server.wait_for_log(rf'\[{made}\]: 127\.0\.0\.1 "GET /\?page HTTP/1\.1" 200')


def test_health_checks_are_logged_only_if_asked(start_server: StartServer) -> None:
    """A load balancer asks every few seconds: those lines would drown the rest."""
    quiet = start_server()
    verbose = start_server(log_probes="true")
    for server in (quiet, verbose):
        for path in ("/healthz", "/"):
            assert get(server.address, path)[0] == 200
        server.wait_for_log('"GET / HTTP/1.1" 200')
    assert "/healthz" not in quiet.log
    verbose.wait_for_log('"GET /healthz HTTP/1.1" 200')


def test_the_access_log_can_be_switched_off(start_server: StartServer) -> None:
    server = start_server(access_log="false")
    assert_echoes(server.address)
    assert get(server.address, "/")[0] == 200
    time.sleep(0.5)
    assert '"GET / HTTP/1.1"' not in server.log


def test_lets_in_only_the_allowed_origins(start_server: StartServer) -> None:
    server = start_server(origins="https://good.example, https://also.example")
    for origin in ("https://good.example", "https://also.example", None):
        with client(server.address, origin=origin) as websocket:
            websocket.send("hi")
            assert websocket.recv(TIMEOUT_SECONDS) == "hi"
    with pytest.raises(InvalidStatus) as refused:
        client(server.address, origin="https://evil.example")
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_lets_the_message_in_progress_finish_then_closes_with_1001(
    start_server: StartServer, signum: signal.Signals
) -> None:
    """A second signal changes nothing, even where a thread of the user's code
    (started as it is imported) is there for the kernel to hand it to."""
    server = start_server(handler=TEST_HANDLER, before=STARTS_A_THREAD)
    with client(server.address) as websocket:
        websocket.send("sleep 1")
        server.wait_for_log("sleep started")
        server.process.send_signal(signum)
        server.wait_for_log("stopping")
        server.process.send_signal(signum)
        assert websocket.recv(TIMEOUT_SECONDS) == "slept 1"
        assert_closed_with(websocket, 1001)
    assert server.process.wait(15) == 0
    assert "Traceback" not in server.log


def test_workers_share_the_clients(start_server: StartServer) -> None:
    server = start_server(handler=TEST_HANDLER, workers=2)
    workers = server.wait_for_workers(2)

    def served_by() -> int:
        with client(server.address) as websocket:
            websocket.send("pid")
            return int(websocket.recv(TIMEOUT_SECONDS))

    assert_workers_share(workers, served_by)


def test_stop_lets_every_worker_finish_its_messages(start_server: StartServer) -> None:
    # Finding each worker can take a while: clients found early must not time out.
    server = start_server(handler=TEST_HANDLER, workers=2, idle_timeout=60)
    workers = server.wait_for_workers(2)
    with contextlib.ExitStack() as stack:
        websockets = [
            stack.enter_context(client(server.address, sock=sock))
            for sock in server.connect_to_each(workers)
        ]
        for websocket in websockets:
            websocket.send("sleep 1")
        server.wait_for_log("(?s)sleep started.*sleep started")
        server.process.send_signal(signal.SIGTERM)
        for websocket in websockets:
            assert websocket.recv(TIMEOUT_SECONDS) == "slept 1"
            assert_closed_with(websocket, 1001)
    assert server.process.wait(15) == 0
    assert not [pid for pid in workers if psutil.pid_exists(pid)]


def test_stop_closes_idle_connections(start_server: StartServer) -> None:
    server = start_server(shutdown_timeout=60)
    with client(server.address) as websocket:
        websocket.send("hello")
        assert websocket.recv(TIMEOUT_SECONDS) == "hello"
        server.process.send_signal(signal.SIGTERM)
        assert_closed_with(websocket, 1001)
    # Well inside the shutdown timeout: an idle connection holds nothing up.
    assert server.process.wait(15) == 0


def test_stop_answers_a_message_on_its_way(start_server: StartServer) -> None:
    """A message that a client sent on a new WebSocket as the stop began is
    answered, then the connection is closed."""
    server = start_server(shutdown_timeout=60)
    with client(server.address) as websocket:
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log("stopping")
        websocket.send("just in time")
        assert websocket.recv(TIMEOUT_SECONDS) == "just in time"
        assert_closed_with(websocket, 1001)
    assert server.process.wait(15) == 0


def test_stop_answers_a_handshake_on_its_way(start_server: StartServer) -> None:
    """A client that connected as the stop began gets its WebSocket, and its message
    answered, then the connection is closed: a 503 here is what a load balancer
    would bounce between two replicas stopping at once."""
    server = start_server(shutdown_timeout=60)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log("stopping")
        with client(server.address, sock=sock) as websocket:
            websocket.send("just in time")
            assert websocket.recv(TIMEOUT_SECONDS) == "just in time"
            assert_closed_with(websocket, 1001)
    assert server.process.wait(15) == 0


def test_stop_closes_the_port(start_server: StartServer) -> None:
    """New clients are refused, so that a load balancer tries another server."""
    server = start_server(handler=TEST_HANDLER)
    with client(server.address) as busy:
        busy.send("sleep 2")
        server.wait_for_log("sleep started")
        server.process.send_signal(signal.SIGTERM)
        server.wait_until_refused()
        assert busy.recv(TIMEOUT_SECONDS) == "slept 2"
    assert server.process.wait(15) == 0


def test_stop_ends_handshakes_in_progress(start_server: StartServer) -> None:
    server = start_server(idle_timeout=60, shutdown_timeout=60)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as silent:
        silent.sendall(b"GET / HTTP/1.1\r\n")  # a handshake begun, never finished
        time.sleep(0.5)  # the server takes the connection in
        server.process.send_signal(signal.SIGTERM)
        # Well inside both timeouts: a handshake that may never end holds nothing up.
        assert server.process.wait(15) == 0


def test_stop_waits_a_moment_only_for_a_client_that_never_answers_the_close(
    start_server: StartServer,
) -> None:
    server = start_server(idle_timeout=60, shutdown_timeout=60)
    with raw_handshake(server.address) as mute:  # it never answers the close frame
        server.process.send_signal(signal.SIGTERM)
        # Well inside both timeouts: the close frame's answer is not worth waiting for.
        assert server.process.wait(15) == 0
        assert read_frame(mute)[0] == CLOSE


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_gives_up_on_messages_after_the_shutdown_timeout(
    start_server: StartServer, workers: int
) -> None:
    server = start_server(workers=workers, handler=TEST_HANDLER, shutdown_timeout=0.5)
    with client(server.address) as websocket:
        websocket.send("sleep 60")
        server.wait_for_log("sleep started")
        assert server.stop() == 1  # an orchestrator sees the requests cut off
    assert "1 connections still busy after 0.5s; exiting with status 1" in server.log


def test_leaks_no_threads_or_files(start_server: StartServer) -> None:
    # A pool starts its threads on demand: with one, the count cannot drift.
    one_worker = {"pool_size": 1} if "pool_size" in SETTINGS else {}
    server = start_server(handler=TEST_HANDLER, max_message_bytes=1000, **one_worker)

    def rude_clients() -> tuple[int, int]:
        for _ in range(5):
            with client(server.address) as websocket:
                websocket.send("crash")
                assert_closed_with(websocket, 1011)
            with client(server.address) as websocket:
                websocket.send(b"x" * 2000)
                assert_closed_with(websocket, 1009)
            exchange(server.address, b"GET / HTTP/1.1\r\nBad Header: y\r\n\r\n")
            sock = raw_handshake(server.address)
            sock.sendall(b"\x82\x85mask")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            sock.close()
            assert_echoes(server.address)
        return server.settled()

    first = rude_clients()
    assert rude_clients() == first


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("max_message_bytes", "lots", "a whole number from 1 to 2147483648"),
        ("ping_timeout", "0", "a number from 0.001 to 86400"),
        ("origins", " ", "a value, not an empty one"),
        ("origins", "https://a.example/", "* or origins such as https://example.com"),
        ("origins", "https://a.example,", "* or origins such as https://example.com"),
    ],
)
def test_a_bad_variable_stops_it_with_one_clear_line(
    name: str, value: str, allowed: str
) -> None:
    result = run_server_command(env={env_var(name): value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"{env_var(name)}={value!r}: expected {allowed}" in result.stderr
