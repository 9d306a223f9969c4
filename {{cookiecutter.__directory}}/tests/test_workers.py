"""Several worker processes on one port: a dead one is replaced, a stop ends them
all, and a second server on the port fails (see workers.py). That they share the
clients and finish in-flight work on a stop is tested with each protocol."""

from __future__ import annotations

import os
import signal
import socket

import psutil

from {{ cookiecutter.package_name }}.probe import round_trip

from .serverprocess import ServerProcess, StartServer, run_server_command

TIMEOUT_SECONDS = 10.0


def test_a_killed_worker_loses_only_its_clients_and_is_replaced(
    start_server: StartServer,
) -> None:
    # Finding each worker can take a while: clients found early must not time out.
    server = start_server(workers=2, idle_timeout=60)
    killed, survivor = server.wait_for_workers(2)
    to_killed, to_survivor = server.connect_to_each([killed, survivor])
    with to_killed, to_survivor:
        os.kill(killed, signal.SIGKILL)
        assert connection_ended(to_killed)
        round_trip(to_survivor)
        server.wait_for_log(
            rf"worker \d \(pid {killed}\) was killed by SIGKILL; starting another"
        )
        (replacement,) = set(server.wait_for_workers(3)) - {killed, survivor}
        (to_replacement,) = server.connect_to_each([replacement])
        with to_replacement:
            round_trip(to_replacement)
    assert server.stop() == 0


def test_a_worker_stopped_alone_leaves_the_port_to_the_others(
    start_server: StartServer,
) -> None:
    server = start_server(workers=2)
    stopped, _ = server.wait_for_workers(2)
    os.kill(stopped, signal.SIGTERM)
    server.wait_for_log(rf"worker \d \(pid {stopped}\) exited .*; starting another")
    for _ in range(10):  # new clients, handshake and all
        with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
            round_trip(sock)
    assert server.stop() == 0


def connection_ended(sock: socket.socket) -> bool:
    """Whether the server's end of `sock` has gone (closed or reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_stop_ends_every_worker_and_exits_0(start_server: StartServer) -> None:
    server = start_server(workers=3)
    processes = [psutil.Process(pid) for pid in server.wait_for_workers(3)]
    assert server.stop() == 0
    assert not [worker for worker in processes if worker.is_running()]
    assert "stopping on SIGTERM: 3 workers" in server.log


def test_workers_stop_when_the_supervisor_is_killed(
    start_server: StartServer,
) -> None:
    server = start_server(workers=2)
    workers = [psutil.Process(pid) for pid in server.wait_for_workers(2)]
    server.process.kill()
    _, alive = psutil.wait_procs(workers, timeout=TIMEOUT_SECONDS)
    assert not alive


def test_a_second_server_on_the_same_port_fails_clearly(
    start_server: StartServer,
) -> None:
    server = start_server(workers=2)
    host, port = server.address
    result = run_server_command("--port", str(port), "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"cannot listen on {host}:{port}: Address already in use" in result.stderr
    with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
        round_trip(sock)  # the first server is still serving


def test_one_worker_is_the_server_alone(server: ServerProcess) -> None:
    assert psutil.Process(server.process.pid).children() == []
    assert "worker processes" not in server.log
