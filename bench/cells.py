"""The cells under test: rendered, installed into one virtual environment, run.

Every selected cell is rendered from the template in this repository into a
temporary folder and installed (without build isolation, so that each install
takes a second) into one virtual environment with the dependencies of all of
them, uvloop included: the asyncio cells run as they would in production.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
READY = re.compile(r"listening on ([\d.]+):(\d+) \(")
# What every cell's dependencies add up to, and what builds the projects.
DEPENDENCIES = ["aiohttp>=3.10", "flask>=3.0", "websockets>=15", "uvloop>=0.19"]
BUILD = ["hatchling>=1.21"]


@dataclass(frozen=True)
class Cell:
    protocol: str
    model: str

    @property
    def name(self) -> str:
        return f"{self.protocol}-{self.model}"

    @property
    def package(self) -> str:
        return f"bench_{self.protocol}_{self.model}"


def install(cells: list[Cell], workdir: Path) -> Path:
    """Render and install `cells` into a new virtual environment; its python."""
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *DEPENDENCIES, *BUILD], check=True)
    for cell in cells:
        project = cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(workdir),
            extra_context={
                "project_name": cell.package.replace("_", " "),
                "protocol": cell.protocol,
                "concurrency": cell.model,
            },
        )
        subprocess.run([*pip, "--no-deps", "--no-build-isolation", project], check=True)
    return python


@dataclass
class Server:
    """A running cell: its process and address."""

    process: subprocess.Popen[str]
    address: tuple[str, int]

    def peak_rss_mb(self) -> float:
        """The most memory the server has held (its high-water mark), in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024  # type: ignore[index]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(
    cell: Cell, python: Path, *, handler: str | None = None, **settings: object
) -> Iterator[Server]:
    """Start the cell on a free port, on CPU 0 where it can be pinned; stop it."""
    if handler is None:
        command = [str(python), "-m", cell.package]
    else:
        command = [
            str(python),
            "-c",
            "import sys; from handlers import " + handler + " as handler; "
            f"from {cell.package}.__main__ import main; sys.exit(main([], handler))",
        ]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0", *command]
    prefix = cell.package.upper() + "_"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "PYTHONPATH": str(BENCH),
        "BENCH_PACKAGE": cell.package,
        **{prefix + name.upper(): str(value) for name, value in settings.items()},
    }
    if cell.protocol == "http":
        env[prefix + "ACCESS_LOG"] = "false"  # a log line per request is not the server
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        address = None
        deadline = time.monotonic() + 30
        while address is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                raise RuntimeError(f"{cell.name} ended before it listened")
            if match := READY.search(line):
                address = (match[1], int(match[2]))
        if address is None:
            raise RuntimeError(f"{cell.name} never said where it listens")
        # Read the rest of its log as it comes, so that it never blocks on a pipe.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield Server(process, address)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
