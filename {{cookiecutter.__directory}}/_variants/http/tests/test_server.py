"""The real server over loopback: routes, limits, rude clients, shutdown.

The same tests hold for every concurrency model.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import threading
import time

import psutil
import pytest

from {{ cookiecutter.package_name }}.config import env_var

from .serverprocess import (
    STARTS_A_THREAD,
    Address,
    ServerProcess,
    StartServer,
    assert_workers_share,
    exchange,
    read_until_closed,
    run_server_command,
)

TEST_APP = "tests.apps:create_app"
TIMEOUT_SECONDS = 10.0


def request(
    address: Address,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: status, headers, body."""
    connection = http.client.HTTPConnection(*address, timeout=TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


CHUNKED = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] \d{3} ", re.MULTILINE)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_index_says_hello(server: ServerProcess) -> None:
    status, _, body = request(server.address, "GET", "/")
    assert (status, body) == (200, b"Hello from {{ cookiecutter.project_slug }}!\n")


def test_echo_returns_the_body(server: ServerProcess) -> None:
    payload = "héllo ✓".encode() * 1000
    status, _, body = request(server.address, "POST", "/echo", payload)
    assert (status, body) == (200, payload)


def test_healthz_answers_ok(server: ServerProcess) -> None:
    status, headers, body = request(server.address, "GET", "/healthz")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    # Compact JSON and a newline, byte for byte the same in every model.
    assert body == b'{"status":"ok"}\n'


def test_errors_have_a_json_body(server: ServerProcess) -> None:
    status, headers, body = request(server.address, "GET", "/no/such/page")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert body == b'{"error":"Not Found","status":404}\n'


def test_answers_pipelined_requests_in_order(server: ServerProcess) -> None:
    """Requests sent one after another, without waiting, on one connection."""
    requests = (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nthird"
    )
    received = Replay(exchange(server.address, requests))
    bodies = []
    for _ in range(3):
        response = http.client.HTTPResponse(received)  # type: ignore[arg-type]
        response.begin()
        bodies.append((response.status, response.read()))
    assert [status for status, _ in bodies] == [200, 200, 200]
    assert bodies[0][1] == b"Hello from {{ cookiecutter.project_slug }}!\n"
    assert json.loads(bodies[1][1]) == {"status": "ok"}
    assert bodies[2][1] == b"third"


class Replay(io.BytesIO):
    """Bytes received, for http.client to read responses from one by one, as
    it would from the socket."""

    def makefile(self, mode: str) -> Replay:
        return self

    def close(self) -> None:
        pass  # each response closes it: the next reads on


def test_logs_the_address_it_bound(server: ServerProcess) -> None:
    host, port = server.address
    assert port != 0
    assert f"listening on {host}:{port}" in server.log


def test_refuses_a_body_over_the_limit(start_server: StartServer) -> None:
    server = start_server(max_body_bytes=1000)
    status, _, body = request(server.address, "POST", "/echo", b"x" * 2000)
    assert status == 413
    assert json.loads(body)["status"] == 413
    assert request(server.address, "POST", "/echo", b"x" * 1000)[0] == 200


def test_refuses_a_chunked_body_over_the_limit(start_server: StartServer) -> None:
    server = start_server(max_body_bytes=1000)
    chunks = iter([b"x" * 1000, b"one too many"])
    connection = http.client.HTTPConnection(*server.address, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("POST", "/echo", body=chunks, encode_chunked=True)
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_no_100_continue_for_a_body_over_the_limit(start_server: StartServer) -> None:
    server = start_server(max_body_bytes=1000)
    head = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(server.address, timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(head)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413


def test_a_wrong_method_says_which_would_do(server: ServerProcess) -> None:
    status, headers, body = request(server.address, "DELETE", "/echo")
    assert (status, json.loads(body)["status"]) == (405, 405)
    assert "POST" in headers["Allow"]


def test_refuses_a_header_over_the_limit(start_server: StartServer) -> None:
    server = start_server(max_header_bytes=2048)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n"
    assert status_of(exchange(server.address, head)) in (400, 431)
    assert request(server.address, "GET", "/")[0] == 200


def test_refuses_a_request_line_over_the_limit(start_server: StartServer) -> None:
    server = start_server(max_header_bytes=2048)
    line = b"GET /" + b"a" * 4096 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(exchange(server.address, line)) in (400, 414, 431)
    assert request(server.address, "GET", "/")[0] == 200


def test_closes_a_client_that_trickles_its_headers(start_server: StartServer) -> None:
    """Slowloris: a byte at a time does not keep a request head alive."""
    server = start_server(idle_timeout=1)
    with socket.create_connection(server.address, timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert_trickling_is_cut_off(sock)
    assert request(server.address, "GET", "/")[0] == 200


def test_closes_a_client_that_trickles_its_body(start_server: StartServer) -> None:
    """A body a byte at a time does not hold the server past the idle timeout."""
    server = start_server(idle_timeout=1)
    with socket.create_connection(server.address, timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        assert_trickling_is_cut_off(sock)
    assert request(server.address, "GET", "/")[0] == 200


def assert_trickling_is_cut_off(sock: socket.socket) -> None:
    for _ in range(50):  # 5 s of trickling, far past the timeout
        try:
            sock.sendall(b"X")
        except OSError:
            return
        if socket_closed(sock, within=0.1):
            return
    pytest.fail("the server kept a trickling client for 5 s")


def socket_closed(sock: socket.socket, within: float) -> bool:
    """Whether the server ends the connection (with or without an answer) in time."""
    sock.settimeout(within)
    try:
        while data := sock.recv(65536):
            if not data.startswith(b"HTTP/1.1 408"):
                return False
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_closes_an_idle_keep_alive_connection(start_server: StartServer) -> None:
    server = start_server(idle_timeout=1)
    with socket.create_connection(server.address, timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}
        assert socket_closed(sock, within=5)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n",
        CHUNKED + b"3\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + b"1" * 5000
        + b"\r\n\r\nhello",
    ],
    ids=[
        "tls-hello",
        "no-path",
        "bad-header-name",
        "bad-length",
        "length-and-chunked",
        "hex-prefixed-chunk-size",
        "chunk-longer-than-its-size",
        "length-of-5000-digits",
    ],
)
def test_answers_malformed_requests_with_400(
    server: ServerProcess, garbage: bytes
) -> None:
    response = exchange(server.address, garbage)
    assert status_of(response) == 400
    # One answer, then the connection closed: nothing else was read as a request.
    assert len(STATUS_LINE.findall(response)) == 1
    assert request(server.address, "GET", "/")[0] == 200
    server.wait_for_log('"GET / HTTP/1.1" 200')
    assert "Traceback" not in server.log  # a client cannot flood the log with them


def test_survives_a_body_cut_short(server: ServerProcess) -> None:
    with socket.create_connection(server.address, timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
        )
    assert request(server.address, "GET", "/")[0] == 200


def test_handler_error_is_logged_and_answered_500(start_server: StartServer) -> None:
    server = start_server(handler=TEST_APP)
    status, _, body = request(server.address, "GET", "/crash")
    assert (status, json.loads(body)) == (
        500,
        {"error": "Internal Server Error", "status": 500},
    )
    server.wait_for_log(r"Traceback[\s\S]*RuntimeError: crash requested")
    assert request(server.address, "GET", "/")[0] == 200


def test_debug_mode_cannot_be_switched_on(start_server: StartServer) -> None:
    server = start_server(handler=TEST_APP, environ={"FLASK_DEBUG": "1"})
    status, headers, _ = request(server.address, "GET", "/crash")
    assert status == 500
    assert headers["Content-Type"].startswith("application/json")
    assert "development server" not in server.log.lower()


def test_access_log_can_be_switched_off(start_server: StartServer) -> None:
    logged = start_server()
    silent = start_server(access_log="false")
    for server in (logged, silent):
        assert request(server.address, "GET", "/?who=me")[0] == 200
    # The client, the request line, the status and the time taken.
    logged.wait_for_log(r'127\.0\.0\.1 "GET /\?who=me HTTP/1\.1" 200 \d+\.\d ms')
    time.sleep(0.5)
    assert "GET /" not in silent.log


def test_health_checks_are_logged_only_if_asked(start_server: StartServer) -> None:
    """A load balancer asks every few seconds: those lines would drown the rest."""
    quiet = start_server()
    verbose = start_server(log_probes="true")
    for server in (quiet, verbose):
        for path in ("/healthz", "/"):
            assert request(server.address, "GET", path)[0] == 200
        server.wait_for_log('"GET / HTTP/1.1" 200')
    assert "/healthz" not in quiet.log
    verbose.wait_for_log('"GET /healthz HTTP/1.1" 200')


def test_a_request_id_is_kept_or_made_and_on_its_log_lines(
    start_server: StartServer,
) -> None:
    server = start_server(handler=TEST_APP)
    kept = request(server.address, "GET", "/", headers={"X-Request-ID": "req-1.2:3"})
    assert kept[1]["X-Request-ID"] == "req-1.2:3"
    server.wait_for_log(r'\[req-1\.2:3\]: 127\.0\.0\.1 "GET / HTTP/1\.1" 200')
    # An id that could forge a log line, or none, is replaced by a new one.
    for headers in ({"X-Request-ID": "x] forged"}, {}):
        made = request(server.address, "GET", "/", headers=headers)[1]["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
        server.wait_for_log(rf"\[{made}\]: 127\.0\.0\.1")
    # What the handler logs while serving a request carries the id too.
    failed = request(server.address, "GET", "/crash", headers={"X-Request-ID": "c-9"})
    assert failed[0] == 500
    assert failed[1]["X-Request-ID"] == "c-9"
    server.wait_for_log(r"ERROR \S+\[\d+\] \[c-9\]: ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_lets_requests_in_flight_finish(
    start_server: StartServer, signum: signal.Signals
) -> None:
    """A second signal changes nothing, even where a thread of the user's code
    (started as it is imported) is there for the kernel to hand it to."""
    server = start_server(handler=TEST_APP, before=STARTS_A_THREAD)
    answers: list[tuple[int, str | None]] = []

    def sleep() -> None:
        status, headers, _ = request(server.address, "GET", "/sleep/1")
        answers.append((status, headers.get("Connection")))

    client = threading.Thread(target=sleep)
    client.start()
    server.wait_for_log("sleep started")
    server.process.send_signal(signum)
    server.wait_for_log("stopping")
    server.process.send_signal(signum)
    client.join()
    assert answers == [(200, "close")]  # the client knows not to send another
    assert server.process.wait(15) == 0
    assert "Traceback" not in server.log


def test_workers_share_the_clients(start_server: StartServer) -> None:
    server = start_server(handler=TEST_APP, workers=2)
    workers = server.wait_for_workers(2)

    def served_by() -> int:
        return int(request(server.address, "GET", "/pid")[2])

    assert_workers_share(workers, served_by)


def test_stop_lets_every_worker_finish_its_requests(start_server: StartServer) -> None:
    # Finding each worker can take a while: clients found early must not time out.
    server = start_server(handler=TEST_APP, workers=2, idle_timeout=60)
    workers = server.wait_for_workers(2)
    connections = server.connect_to_each(workers)
    for sock in connections:
        sock.sendall(b"GET /sleep/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    server.wait_for_log("(?s)sleep started.*sleep started")
    server.process.send_signal(signal.SIGTERM)
    for sock in connections:
        with sock:
            assert status_of(read_until_closed(sock)) == 200
    assert server.process.wait(15) == 0
    assert not [pid for pid in workers if psutil.pid_exists(pid)]


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_gives_up_on_requests_after_the_shutdown_timeout(
    start_server: StartServer, workers: int
) -> None:
    server = start_server(workers=workers, handler=TEST_APP, shutdown_timeout=0.5)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        sock.sendall(b"GET /sleep/60 HTTP/1.1\r\nHost: x\r\n\r\n")
        server.wait_for_log("sleep started")
        assert server.stop() == 1  # an orchestrator sees the requests cut off
    assert "1 connections still busy after 0.5s; exiting with status 1" in server.log


def test_stop_closes_idle_connections(start_server: StartServer) -> None:
    server = start_server(shutdown_timeout=60, idle_timeout=60)
    connection = http.client.HTTPConnection(*server.address, timeout=TIMEOUT_SECONDS)
    connection.request("GET", "/")
    assert connection.getresponse().read()
    server.process.send_signal(signal.SIGTERM)
    # Well inside both timeouts: an idle connection holds nothing up.
    assert server.process.wait(15) == 0
    connection.close()


def test_stop_answers_a_request_on_its_way(start_server: StartServer) -> None:
    """A request that a client (or a load balancer) sent on a new connection as
    the stop began is answered."""
    server = start_server(shutdown_timeout=60, idle_timeout=60)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log("stopping")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(read_until_closed(sock)) == 200
    assert server.process.wait(15) == 0


def test_stop_closes_the_port(start_server: StartServer) -> None:
    """New clients are refused, so that a load balancer tries another server."""
    server = start_server(handler=TEST_APP)
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as busy:
        busy.sendall(b"GET /sleep/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        server.wait_for_log("sleep started")
        server.process.send_signal(signal.SIGTERM)
        server.wait_until_refused()
        assert status_of(read_until_closed(busy)) == 200
    assert server.process.wait(15) == 0


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("max_body_bytes", "lots", "a whole number from 0 to 2147483648"),
        ("access_log", "maybe", "true or false"),
        ("idle_timeout", "0", "a number from 0.001 to 86400"),
    ],
)
def test_a_bad_variable_stops_it_with_one_clear_line(
    name: str, value: str, allowed: str
) -> None:
    result = run_server_command(env={env_var(name): value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"{env_var(name)}={value!r}: expected {allowed}" in result.stderr
