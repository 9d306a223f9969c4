"""The real server as a subprocess: its address, its log, and ways to stop it."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil
import pytest

from {{ cookiecutter.package_name }}.config import env_var
from {{ cookiecutter.package_name }}.server import Settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"
SETTINGS = frozenset(field.name for field in dataclasses.fields(Settings))
READY = re.compile(r"listening on \[?([^\s\]]+)\]?:(\d+)")
# The ready line each worker process logs, unlike the supervisor's (workers.py).
WORKER_READY = re.compile(r"\.(?!workers\[)\w+\[(\d+)\]: listening on ")
TRIES = 50  # connections made before a worker that should get one is not found
CLIENTS = 200  # made one after another, to see how the workers share them
# Runs the server with a handler from the tests in place of the project's own.
AS_MAIN = f"import runpy; runpy.run_module({PACKAGE!r}, run_name='__main__')"
WITH_HANDLER = (
    "import sys; from importlib import import_module; "
    f"from {PACKAGE}.__main__ import main; "
    "module, _, name = sys.argv.pop(1).partition(':'); "
    "sys.exit(main(sys.argv[1:], getattr(import_module(module), name)))"
)


# As a metrics exporter or an error reporter does when it is imported: a thread
# that the kernel may hand a signal to (see test_stop_lets_requests_in_flight_finish).
STARTS_A_THREAD = (
    "import threading, time; "
    "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()"
)


def capacity(clients: int) -> dict[str, int]:
    """The settings that let this server's model serve `clients` at once."""
    return {
        name: clients for name in ("pool_size", "max_connections") if name in SETTINGS
    }


class ServerProcess:
    """A running server: its address, its log so far, and ways to stop it."""

    @classmethod
    def start(
        cls,
        *flags: str,
        handler: str | None = None,
        environ: dict[str, str] | None = None,
        before: str = "",
        **settings: object,
    ) -> ServerProcess:
        """Start the server on a free port and wait until it is ready; `before` is
        Python code that the process runs before it imports the server."""
        if unknown := set(settings) - SETTINGS:
            raise TypeError(f"this server has no setting {', '.join(sorted(unknown))}")
        env = {**os.environ, **(environ or {}), "HOST": "127.0.0.1", "PORT": "0"}
        # Servers run side by side in the tests: metrics only where a test asks.
        env.setdefault(env_var("metrics_port"), "0")
        env.update({env_var(name): str(value) for name, value in settings.items()})
        if handler is not None:
            command = [sys.executable, "-c", f"{before}\n{WITH_HANDLER}", handler]
        elif before:
            command = [sys.executable, "-c", f"{before}\n{AS_MAIN}"]
        else:
            command = [sys.executable, "-m", PACKAGE]
        command += flags
        return cls(command, env)

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        # Its temporary files (the workers' metrics) go where kill() removes them,
        # whatever a test does to the server.
        self.temporary = tempfile.mkdtemp(prefix="server-")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "TMPDIR": self.temporary},
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        ready = self.wait_for_log(READY)
        self.address = (ready[1], int(ready[2]))

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._lines.append("")  # the end of the log: the process closed stderr
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 15
    ) -> re.Match[str]:
        """The first match of `pattern` in the log, waiting for it to be written."""
        found: list[re.Match[str]] = []

        def written() -> bool:
            if match := re.search(pattern, "".join(self._lines)):
                found.append(match)
            return bool(found) or self._lines[-1:] == [""]

        with self._changed:
            self._changed.wait_for(written, timeout)
        if not found:
            pytest.fail(f"the server never logged {pattern!r}; its log:\n{self.log}")
        return found[0]

    def wait_for_workers(self, count: int, timeout: float = 15) -> list[int]:
        """The process ids of the first `count` workers to serve, once they do."""
        self.wait_for_log("(?s)" + ".*".join([WORKER_READY.pattern] * count), timeout)
        return [int(pid) for pid in WORKER_READY.findall(self.log)[:count]]

    def worker_serving(self, sock: socket.socket, timeout: float = 15) -> int:
        """The process id of the worker that has accepted `sock`'s connection."""
        client = sock.getsockname()[:2]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in psutil.Process(self.process.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    ends = (c.raddr for c in worker.net_connections("tcp4"))
                    if any(end and tuple(end) == client for end in ends):
                        return worker.pid
            time.sleep(0.01)
        pytest.fail(f"no worker accepted the connection from {client}")

    def connect_to_each(self, workers: list[int]) -> list[socket.socket]:
        """A connection to each of `workers`, in their order; those that reach a
        worker already connected to are closed."""
        found: dict[int, socket.socket] = {}
        for _ in range(TRIES):
            sock = socket.create_connection(self.address, timeout=15)
            if (pid := self.worker_serving(sock)) in found or pid not in workers:
                sock.close()
            else:
                found[pid] = sock
            if len(found) == len(workers):
                return [found[pid] for pid in workers]
        for sock in found.values():
            sock.close()
        pytest.fail(f"{TRIES} connections never reached each of {workers}")

    def settled(self, timeout: float = 15) -> tuple[int, int]:
        """The server's threads and open files, once it holds no client's
        connection (a closing one drains a moment first) and both counts keep
        still (a thread ends a moment after its client)."""
        process = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        counts: list[tuple[int, int]] = []
        while time.monotonic() < deadline:
            sockets = process.net_connections("tcp")
            held = [c for c in sockets if c.status != psutil.CONN_LISTEN]
            counts.append((process.num_threads(), process.num_fds()))
            if not held and counts[-3:] == [counts[-1]] * 3:
                break
            time.sleep(0.1)
        return counts[-1]

    def wait_until_refused(self, timeout: float = 15) -> None:
        """Until the server refuses a new client: it has closed its port."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(self.address, timeout=timeout).close()
            except (ConnectionRefusedError, ConnectionResetError):
                # Refused; or reset, caught in the listen backlog as the port closed.
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the port was still open after {timeout}s")
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send `signum`; return the exit status once the process has ended."""
        self.process.send_signal(signum)
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    def kill(self) -> None:
        """End the server and its worker processes, if any, at once."""
        if self.process.poll() is None:
            processes = psutil.Process(self.process.pid).children()
            self.process.kill()
            self.process.wait()
            for worker in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()
            psutil.wait_procs(processes, timeout=15)
        shutil.rmtree(self.temporary, ignore_errors=True)


StartServer = Callable[..., ServerProcess]
Address = tuple[str, int]


def exchange(address: Address, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, then read whatever comes back until the server closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    """Whatever the server sends until it closes the connection."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def assert_workers_share(workers: list[int], served_by: Callable[[], int]) -> None:
    """Make CLIENTS round trips, each returning the pid of the worker that served
    it, and check that every one of `workers` served a real share of them."""
    served = collections.Counter(served_by() for _ in range(CLIENTS))
    assert set(served) == set(workers), served
    # Each round trip ends before the next client comes, so whichever worker is
    # scheduled first takes it: about half each on a quiet machine, as little as
    # a tenth on a busy one. A worker that only now and then gets one fails.
    assert min(served.values()) >= CLIENTS // 40, served


def run_server_command(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the server's command to its end (it is expected to stop at once)."""
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def run_healthcheck(
    host: str, port: int, settings: Mapping[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the health check the Dockerfile runs, against `host` and `port`, with
    the server's other `settings` (its TLS files) in the environment too."""
    env = {env_var(name): str(value) for name, value in (settings or {}).items()}
    return subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.healthcheck"],
        env={**os.environ, **env, "HOST": host, "PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )
