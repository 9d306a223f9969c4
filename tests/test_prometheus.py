"""A real Prometheus (Debian's package) scrapes a running cell and reads, through
its HTTP API, exactly the requests a client sent: one cell per protocol, one of
them with two worker processes, whose counts the supervisor sums."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import clean_environment, missing, run
from .test_containers import CLIENTS

SENT = 25
WAIT_SECONDS = 60.0
# The cells, their workers, and what each counts a client's request as.
CASES = [
    ("tcp", "asyncio", 2, 'sum({package}_requests_total{{outcome="ok"}})'),
    ("http", "threadpool", 1, 'sum({package}_requests_total{{outcome="2xx"}})'),
    ("websocket", "threaded", 1, 'sum({package}_messages_total{{outcome="ok"}})'),
]
SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: cell
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """Start Prometheus scraping a metrics port; its address."""
    if shutil.which("prometheus") is None:
        missing("no prometheus", "apt install prometheus")
    started: list[subprocess.Popen[bytes]] = []

    def start(metrics_port: int) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(SCRAPE_CONFIG.format(port=metrics_port))
        address = f"127.0.0.1:{free_port()}"
        log = (tmp_path / "prometheus.log").open("wb")
        started.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address={address}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return address

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def query(prometheus: str, expression: str) -> float | None:
    """The value of an instant query, or None while it has none."""
    url = f"http://{prometheus}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression}
    )
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer: Any = json.load(response)
    except OSError:  # not listening yet
        return None
    results = answer["data"]["result"]
    return float(results[0]["value"][1]) if results else None


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS:g}s")
        time.sleep(0.2)


def serving(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize(("protocol", "model", "workers", "counted"), CASES)
def test_a_real_prometheus_reads_every_request_sent(
    bake: Any,
    prometheus: Callable[[int], str],
    protocol: str,
    model: str,
    workers: int,
    counted: str,
) -> None:
    result = bake(protocol=protocol, concurrency=model)
    project, package = result.project_path, result.context["package_name"]
    run([sys.executable, "-m", "venv", ".venv"], project)
    run([project / ".venv/bin/pip", "install", "-q", "."], project)
    port, metrics_port = free_port(), free_port()
    command = [project / ".venv/bin/python", "-m", package, "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), "--workers", str(workers)]
    server = subprocess.Popen(
        command,
        cwd=project,
        env=clean_environment(),
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("server", lambda: serving(("127.0.0.1", port)))
        address = prometheus(metrics_port)
        expression = counted.format(package=package)
        wait_for("first scrape", lambda: query(address, expression) == 0)
        for _ in range(SENT):
            CLIENTS[protocol](("127.0.0.1", port))
        wait_for(f"{expression} = {SENT}", lambda: query(address, expression) == SENT)
    finally:
        server.terminate()
        assert server.wait(30) == 0
