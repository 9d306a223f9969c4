"""The metrics listener (metrics.py): a scrape reads what the server did, with one
process or several, and however its workers come and go."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .counted import HANDLED, request
from .serverprocess import ServerProcess, StartServer, run_server_command

TIMEOUT_SECONDS = 10.0
PACKAGE = "{{ cookiecutter.package_name }}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample the metrics listener on `port` serves now, by name and labels."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def read(port: int, name: str, labels: dict[str, str] | None = None) -> float:
    """One sample of this server's own, by its name without the package's."""
    return scrape(port)[f"{PACKAGE}_{name}", frozenset((labels or {}).items())]


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_SECONDS) -> None:
    """Until `condition` holds: a connection's end is counted once the server
    has seen it end, a moment after the client has."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g}s"
        time.sleep(0.05)


def send_requests(server: ServerProcess, count: int) -> None:
    for _ in range(count):
        with socket.create_connection(server.address, TIMEOUT_SECONDS) as sock:
            request(sock)


def test_a_scrape_reads_every_request_sent(start_server: StartServer) -> None:
    port = free_port()
    server = start_server(metrics_port=port)
    assert read(port, *HANDLED) == 0
    send_requests(server, 5)
    assert read(port, *HANDLED) == 5
    assert read(port, "connections_accepted_total") == 5
    assert read(port, "connections_open") == 0
    assert read(port, "received_bytes_total") > 0
    assert read(port, "sent_bytes_total") > 0
    samples = scrape(port)
    assert ("process_open_fds", frozenset()) in samples  # the library's own
    assert server.stop() == 0


def test_two_workers_are_summed_in_one_scrape(start_server: StartServer) -> None:
    port = free_port()
    server = start_server(workers=2, metrics_port=port)
    for sock in server.connect_to_each(server.wait_for_workers(2)):
        with sock:
            request(sock)  # one for each worker, at least
    send_requests(server, 8)
    assert read(port, *HANDLED) == 10
    assert server.stop() == 0


def test_a_replaced_worker_keeps_the_totals_and_drops_its_gauges(
    start_server: StartServer,
) -> None:
    port = free_port()
    server = start_server(workers=2, metrics_port=port, idle_timeout=60)
    killed, survivor = server.wait_for_workers(2)
    for sock in server.connect_to_each([killed, survivor]):
        with sock:
            request(sock)
    held = server.connect_to_each([killed, survivor])  # idle: open, not done
    try:
        assert read(port, "connections_open") == 2
        os.kill(killed, signal.SIGKILL)
        server.wait_for_log(rf"worker \d \(pid {killed}\) was killed by SIGKILL")
        server.wait_for_workers(3)  # its replacement
        assert read(port, *HANDLED) == 2  # the killed worker's request still counts
        assert read(port, "connections_open") == 1  # only the survivor's
    finally:
        for sock in held:
            sock.close()
    assert server.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_metrics_port_in_use_stops_the_server_clearly(workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server_command(
            "--port", "0", "--metrics-port", str(port), "--workers", workers
        )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert (
        f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"
        in result.stderr
    )


def test_metrics_off_cost_nothing() -> None:
    """With --metrics-port 0 the server keeps no figure: the library is not even
    imported, and every update is a call that does nothing."""
    code = (
        f"import sys; from {PACKAGE} import metrics; "
        "meters = metrics.Meters(on=False); "
        "meters.finished(meters.started(), metrics.OUTCOMES[0]); "
        "meters.connections_open.inc(); meters.errors['timeout'].inc(); "
        "print('prometheus_client' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "False\n"
