"""What is measured: the cells, rendered and installed into one virtual
environment, and their baselines (``bare/``); each run on a free port.

Every selected cell is rendered from the template in this repository into a
temporary folder and installed (without build isolation, so that each install
takes a second) into one virtual environment with the dependencies of all of
them, uvloop included: the asyncio cells run as they would in production, and the
baselines run in the same environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cookiecutter.main import cookiecutter

from .handlers import for_cell

TEMPLATE = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
LISTEN = "0A"  # a listening socket's state in /proc/net/tcp
READY = re.compile(r"listening on ([\d.]+):(\d+) \(")
# What every cell's dependencies add up to, and what builds the projects.
DEPENDENCIES = [
    *("aiohttp>=3.10", "flask>=3.0", "h11>=0.16", "websockets>=15", "uvloop>=0.19"),
    "prometheus-client>=0.20",  # every cell's metrics
    *("waitress>=3.0", "granian>=2.5"),  # the HTTP pool's peers
]
BUILD = ["hatchling>=1.21"]


# What a target is: a rendered cell (with its metrics off: what they cost; or
# serving TLS: what that costs), its engine bare, a tutorial's pattern, or another
# server of the cell's model (bare/peers.py).
WITHOUT_METRICS = "without metrics"
WITH_TLS = "with TLS"
PEERS = ("waitress", "granian")
KINDS = ("cell", WITHOUT_METRICS, WITH_TLS, "bare", "naive", *PEERS)


@dataclass(frozen=True)
class Target:
    protocol: str
    model: str
    kind: str = "cell"  # one of KINDS

    @property
    def cell(self) -> str:
        return f"{self.protocol}-{self.model}"

    @property
    def name(self) -> str:
        return self.cell if self.kind == "cell" else f"{self.cell} {self.kind}"

    @property
    def package(self) -> str:
        return f"bench_{self.protocol}_{self.model}"

    def command(self, python: Path) -> list[str]:
        if self.kind == "bare":
            return [str(python), "-m", f"bare.{self.protocol}", self.model]
        if self.kind == "naive":
            return [str(python), "-m", "bare.naive", self.protocol]
        if self.kind in PEERS:
            return [str(python), "-m", "bare.peers", self.kind]
        # The cell's own main, with the handler that also waits (handlers.py).
        return [
            str(python),
            "-c",
            f"import sys; from handlers import {for_cell(self.protocol, self.model)} "
            f"as handler; from {self.package}.__main__ import main; "
            "sys.exit(main([], handler))",
        ]


def install(cells: list[Target], workdir: Path) -> Path:
    """Render and install `cells` into a new virtual environment; its python."""
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *DEPENDENCIES, *BUILD], check=True)
    projects = [
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(workdir),
            extra_context={
                "project_name": cell.package.replace("_", " "),
                "protocol": cell.protocol,
                "concurrency": cell.model,
            },
        )
        for cell in cells
    ]
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", *projects], check=True)
    return python


@dataclass
class Server:
    """A running target: its process and address, and what /proc says of it."""

    process: subprocess.Popen[str]
    address: tuple[str, int]

    def processes(self) -> list[int]:
        """The server's process and its workers, if it has any."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, children)]

    def rss_mb(self) -> float:
        """The memory the server holds now (its resident sets), in MB."""
        total = 0
        for pid in self.processes():
            with contextlib.suppress(OSError):  # a worker that has just ended
                status = Path(f"/proc/{pid}/status").read_text()
                # A zombie (ended, not reaped yet) has no memory and no VmRSS line.
                if resident := re.search(r"VmRSS:\s+(\d+) kB", status):
                    total += int(resident[1])
        return total / 1024

    def cpu_seconds(self) -> float:
        """The CPU time its processes have used."""
        ticks = 0
        for pid in self.processes():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
                utime, stime = fields.split()[11:13]
                ticks += int(utime) + int(stime)
        return ticks / os.sysconf("SC_CLK_TCK")

    def descriptors(self) -> int:
        """How many files the server has open (sockets among them): cheap."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def connections(self) -> int:
        """How many TCP connections on its port the server holds open: its own
        sockets (/proc/PID/fd) that the kernel's table lists on that port."""
        inodes = set()
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if (link := os.readlink(fd)).startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
        count = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            port = int(local.rpartition(":")[2], 16)
            count += inode in inodes and port == self.address[1] and state != LISTEN
        return count


def make_certificate(directory: Path) -> dict[str, str]:
    """A self-signed certificate for the TLS targets, and its key: their settings.
    P-256, as a CA issues most certificates today; the clients check nothing."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return {"tls_cert": str(cert), "tls_key": str(key)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(
    target: Target, python: Path, pinned: bool = True, **settings: object
) -> Iterator[Server]:
    """Start the target on a free port, `pinned` to CPU 0 where it can be, or else
    free to use every CPU (not only the benchmark's own); stop it."""
    command = target.command(python)
    if shutil.which("taskset") and (cpus := os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0" if pinned else f"0-{cpus - 1}", *command]
    prefix = target.package.upper() + "_"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "PYTHONPATH": str(BENCH),
        "BENCH_PACKAGE": target.package,
        **{prefix + name.upper(): str(value) for name, value in settings.items()},
    }
    if target.protocol == "http":
        env[prefix + "ACCESS_LOG"] = "false"  # a log line per request is not the server
    if target.kind in ("cell", WITH_TLS):  # metrics on, as by default
        env.setdefault(prefix + "METRICS_PORT", str(free_port()))
    elif target.kind == WITHOUT_METRICS:
        env[prefix + "METRICS_PORT"] = "0"
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        address = None
        deadline = time.monotonic() + 30
        said = []
        while address is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                raise RuntimeError(
                    f"{target.name} ended before it listened:\n{''.join(said)}"
                )
            said.append(line)
            if match := READY.search(line):
                address = (match[1], int(match[2]))
        if address is None:
            raise RuntimeError(f"{target.name} never said where it listens")
        # Read the rest of its log as it comes, so that it never blocks on a pipe.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        accepting(address, deadline)
        yield Server(process, address)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def accepting(address: tuple[str, int], deadline: float) -> None:
    """Wait until the port accepts: a server may say where it listens just before."""
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
