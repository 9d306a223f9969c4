"""The real server over loopback: round trips, limits, rude clients, shutdown.

The same tests hold for every concurrency model.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

import psutil
import pytest

from {{ cookiecutter.package_name }}.config import env_var

from .lineclient import LineClient
from .serverprocess import (
    SETTINGS,
    STARTS_A_THREAD,
    ServerProcess,
    StartServer,
    assert_workers_share,
    run_server_command,
)

TEST_HANDLER = "tests.handlers:handle"


def test_echoes_each_line(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        assert client.request("hello") == "hello"
        assert client.request("héllo wörld ✓") == "héllo wörld ✓"
        assert client.request("") == ""


def test_answers_pipelined_lines_in_order(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        client.send(b"one\ntwo\r\nthree\n")
        assert [client.read_line() for _ in range(3)] == ["one", "two", "three"]


def test_logs_the_address_it_bound(server: ServerProcess) -> None:
    host, port = server.address
    assert port != 0
    assert f"listening on {host}:{port}" in server.log


def test_refuses_an_oversize_line_then_serves_others(start_server: StartServer) -> None:
    server = start_server(max_line_bytes=100)
    with LineClient(server.address) as client:
        client.send(b"x" * 5000 + b"\n")
        assert client.read_line() == "ERROR line too long (limit 100 bytes)"
        assert client.is_closed_by_server()
    with LineClient(server.address) as client:
        assert client.request("x" * 100) == "x" * 100


def test_refuses_an_oversize_line_before_its_end(start_server: StartServer) -> None:
    server = start_server(max_line_bytes=100)
    with LineClient(server.address) as client:
        client.send(b"x" * 200)  # no newline: the server must not wait for one
        assert client.read_line() == "ERROR line too long (limit 100 bytes)"
        assert client.is_closed_by_server()


def test_closes_an_idle_client(start_server: StartServer) -> None:
    server = start_server(idle_timeout=0.5)
    with LineClient(server.address) as client:
        assert client.read_line() == "ERROR idle timeout"
        assert client.is_closed_by_server()


def test_the_idle_timeout_counts_from_the_last_request(
    start_server: StartServer,
) -> None:
    """A client busy for longer than the timeout stays; idle after, it goes."""
    server = start_server(idle_timeout=0.5)
    with LineClient(server.address) as client:
        for number in range(8):  # 2.4 s in all, 0.3 s between requests
            time.sleep(0.3)
            assert client.request(f"request {number}") == f"request {number}"
        assert client.read_line() == "ERROR idle timeout"
        assert client.is_closed_by_server()


def test_closes_a_client_that_trickles_a_line(start_server: StartServer) -> None:
    """Slowloris: a byte at a time does not reset the clock."""
    server = start_server(idle_timeout=1)
    with LineClient(server.address) as client:
        for _ in range(50):  # 5 s of trickling, far past the timeout
            client.send(b"x")
            if client.has_answer(within=0.1):
                break
        assert client.read_line() == "ERROR idle timeout"
        assert client.is_closed_by_server()


def test_rejects_invalid_utf8_and_goes_on(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        client.send(b"\xff\xfe\xc3\n")
        assert client.read_line() == "ERROR invalid UTF-8"
        assert client.request("still here") == "still here"


def test_rejects_a_carriage_return_inside_a_line(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        client.send(b"a\rb\n")
        assert client.read_line() == "ERROR carriage return inside a line"
        assert client.request("still here") == "still here"
    assert "Traceback" not in server.log


def test_answers_a_line_left_unterminated_at_the_end(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        client.send(b"done\nhalf")
        client.sock.shutdown(socket.SHUT_WR)
        assert client.read_line() == "done"
        assert client.read_line() == "ERROR incomplete line: no newline before the end"
        assert client.is_closed_by_server()


def test_survives_binary_garbage(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        client.send(os.urandom(20_000) + b"\n")
        client.close()
    with LineClient(server.address) as client:
        assert client.request("hello") == "hello"


def test_survives_clients_that_vanish_mid_line(server: ServerProcess) -> None:
    with LineClient(server.address) as client:
        client.send(b"half a li")
    client = LineClient(server.address)
    client.send(b"half a li")
    client.reset()
    with LineClient(server.address) as client:
        assert client.request("hello") == "hello"


def test_handler_error_is_logged_and_answered(start_server: StartServer) -> None:
    server = start_server(handler=TEST_HANDLER, log_level="DEBUG")
    with LineClient(server.address) as client:
        assert client.request("crash") == "ERROR internal error"
        assert client.request("hello") == "hello"
    server.wait_for_log(r"Traceback[\s\S]*RuntimeError: crash requested")
    # The connection's id is on every line logged for it: its start, the
    # handler's error and, at debug, its end with the time it lasted.
    opened = r"DEBUG \S+ \[(?P<id>[0-9a-f]{32})\]: 127\.0\.0\.1:\d+ connected"
    found = re.search(opened, server.log)
    assert found is not None, server.log
    connection = re.escape(found["id"])
    server.wait_for_log(rf"ERROR \S+ \[{connection}\]: handler failed")
    server.wait_for_log(rf"DEBUG \S+ \[{connection}\]: \S+ \w+ after \d+\.\d ms")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_lets_requests_in_flight_finish(
    start_server: StartServer, signum: signal.Signals
) -> None:
    """A second signal changes nothing, even where a thread of the user's code
    (started as it is imported) is there for the kernel to hand it to."""
    server = start_server(handler=TEST_HANDLER, before=STARTS_A_THREAD)
    with LineClient(server.address) as busy:
        busy.send(b"sleep 1\n")
        server.wait_for_log("sleep started")
        server.process.send_signal(signum)
        server.wait_for_log("stopping")
        server.process.send_signal(signum)
        assert busy.read_line() == "slept 1"
        assert busy.is_closed_by_server()
    assert server.process.wait(15) == 0
    assert "Traceback" not in server.log


def test_workers_share_the_clients(start_server: StartServer) -> None:
    server = start_server(handler=TEST_HANDLER, workers=2)
    workers = server.wait_for_workers(2)

    def served_by() -> int:
        with LineClient(server.address) as client:
            return int(client.request("pid"))

    assert_workers_share(workers, served_by)


def test_stop_lets_every_worker_finish_its_requests(start_server: StartServer) -> None:
    # Finding each worker can take a while: clients found early must not time out.
    server = start_server(handler=TEST_HANDLER, workers=2, idle_timeout=60)
    workers = server.wait_for_workers(2)
    connections = server.connect_to_each(workers)
    for sock in connections:
        sock.sendall(b"sleep 1\n")
    server.wait_for_log("(?s)sleep started.*sleep started")
    server.process.send_signal(signal.SIGTERM)
    for sock in connections:
        with sock, sock.makefile("rb") as replies:
            assert replies.readline() == b"slept 1\n"
    assert server.process.wait(15) == 0
    assert not [pid for pid in workers if psutil.pid_exists(pid)]


def test_stop_delivers_every_reply_it_made(start_server: StartServer) -> None:
    """Replies already made reach the client, even while it is still sending."""
    server = start_server(handler=TEST_HANDLER)
    with LineClient(server.address) as client:
        pipelined = b"sleep 1\n" + b"more\n" * 50_000
        sending = threading.Thread(target=client.send, args=(pipelined,))
        sending.start()
        server.wait_for_log("sleep started")
        server.process.send_signal(signal.SIGTERM)
        replies = client.read_until_closed()
        sending.join()
    assert replies[0] == "slept 1"
    assert set(replies[1:]) <= {"more"}
    assert server.process.wait(15) == 0


def test_stop_closes_idle_clients(start_server: StartServer) -> None:
    server = start_server(shutdown_timeout=60)
    with LineClient(server.address) as idle:
        assert idle.request("hello") == "hello"
        server.process.send_signal(signal.SIGTERM)
        assert idle.is_closed_by_server()
    # Well inside the shutdown timeout: nothing is left to wait for.
    assert server.process.wait(15) == 0
    assert "Traceback" not in server.log


def test_stop_answers_a_request_on_its_way(start_server: StartServer) -> None:
    """A request that a client (or a load balancer) sent as the stop began is
    answered: only then is the connection closed."""
    server = start_server(shutdown_timeout=60)
    with LineClient(server.address) as client:
        client.send(b"just in ")
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log("stopping")
        client.send(b"time\n")
        assert client.read_line() == "just in time"
        assert client.is_closed_by_server()
    assert server.process.wait(15) == 0


def test_stop_closes_the_port(start_server: StartServer) -> None:
    """New clients are refused, so that a load balancer tries another server."""
    server = start_server(handler=TEST_HANDLER)
    with LineClient(server.address) as busy:
        busy.send(b"sleep 2\n")
        server.wait_for_log("sleep started")
        server.process.send_signal(signal.SIGTERM)
        server.wait_until_refused()
        assert busy.read_line() == "slept 2"
    assert server.process.wait(15) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_gives_up_on_requests_after_the_shutdown_timeout(
    start_server: StartServer, workers: int
) -> None:
    server = start_server(workers=workers, handler=TEST_HANDLER, shutdown_timeout=0.5)
    with LineClient(server.address) as client:
        client.send(b"sleep 60\n")
        server.wait_for_log("sleep started")
        assert server.stop() == 1  # an orchestrator sees the requests cut off
    assert "1 connections still busy after 0.5s; exiting with status 1" in server.log


def test_leaks_no_threads_or_files(start_server: StartServer) -> None:
    # A pool starts its threads on demand: with one, the count cannot drift.
    one_worker = {"pool_size": 1} if "pool_size" in SETTINGS else {}
    server = start_server(handler=TEST_HANDLER, max_line_bytes=1000, **one_worker)

    def rude_clients() -> tuple[int, int]:
        for _ in range(5):
            with LineClient(server.address) as client:
                assert client.request("hello") == "hello"
                assert client.request("crash") == "ERROR internal error"
            with LineClient(server.address) as client:
                client.send(b"x" * 2000)
                assert client.read_line().startswith("ERROR line too long")
            with LineClient(server.address) as client:
                client.send(b"\xff\n")
                client.send(b"half a line")
            client = LineClient(server.address)
            client.send(b"half a line")
            client.reset()
        # Answered after the others were taken in: the server has seen them all.
        with LineClient(server.address) as client:
            assert client.request("hello") == "hello"
        return server.settled()

    first = rude_clients()
    assert rude_clients() == first


def test_flags_override_environment(start_server: StartServer) -> None:
    server = start_server("--max-line-bytes", "10", max_line_bytes=1000)
    with LineClient(server.address) as client:
        client.send(b"x" * 20 + b"\n")
        assert client.read_line() == "ERROR line too long (limit 10 bytes)"


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("port", "http", "a whole number from 0 to 65535"),
        ("idle_timeout", "-1", "a number from 0.001 to 86400"),
        ("log_level", "loud", "one of DEBUG, INFO, WARNING, ERROR"),
        ("max_line_bytes", "1e3", "a whole number from 1 to 16777216"),
        ("max_line_bytes", "1_000", "a whole number from 1 to 16777216"),
        ("host", "", "a value, not an empty one"),
    ],
)
def test_a_bad_variable_stops_it_with_one_clear_line(
    name: str, value: str, allowed: str
) -> None:
    result = run_server_command(env={env_var(name): value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"{env_var(name)}={value!r}: expected {allowed}" in result.stderr
