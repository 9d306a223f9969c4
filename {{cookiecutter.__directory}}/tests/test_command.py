"""The command as a user and a container run it, whatever the protocol and model:
its logs, its errors, its health check, its console script."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import psutil

from {{ cookiecutter.package_name }}.config import PROG, flag

from .serverprocess import (
    SETTINGS,
    ServerProcess,
    StartServer,
    run_healthcheck,
    run_server_command,
)

IDLE_SECONDS = 2.0
RFC_3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def test_json_log_format(start_server: StartServer) -> None:
    server = start_server(log_format="json")
    server.wait_for_log(r"listening on \S+ \(")  # the server's own ready line
    entries = [json.loads(line) for line in server.log.splitlines()]  # each one
    assert any(entry["message"].startswith("listening on") for entry in entries)
    for entry in entries:
        assert {"time", "level", "logger", "pid", "message"} <= entry.keys()
        # RFC 3339: a date, a time and its offset from UTC, which parse back.
        assert RFC_3339.fullmatch(entry["time"]), entry["time"]
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)


def test_a_bad_flag_stops_it_with_one_clear_line() -> None:
    result = run_server_command("--port", "70000")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--port='70000': expected a whole number from 0 to 65535" in result.stderr


def test_a_port_in_use_stops_it_with_one_clear_line(server: ServerProcess) -> None:
    host, port = server.address
    result = run_server_command("--port", str(port))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"cannot listen on {host}:{port}: Address already in use" in result.stderr


def test_healthcheck_passes_against_a_live_server(server: ServerProcess) -> None:
    result = run_healthcheck(*server.address)
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = run_healthcheck("127.0.0.1", port)
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


def test_console_script_is_installed_and_lists_every_setting() -> None:
    script = Path(sys.executable).with_name(PROG)
    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for name in SETTINGS:
        assert flag(name) in result.stdout


def test_an_idle_server_takes_no_cpu(server: ServerProcess) -> None:
    """Nothing to do, nothing done: no loop spins while no client is there."""
    process = psutil.Process(server.process.pid)
    time.sleep(0.5)  # past starting up
    before = process.cpu_times()
    time.sleep(IDLE_SECONDS)
    after = process.cpu_times()
    used = after.user + after.system - before.user - before.system
    # A loop that spins takes most of a CPU, however busy the machine is.
    assert used < IDLE_SECONDS / 10, f"{used:.2f}s of CPU in {IDLE_SECONDS}s idle"
