"""Each cell works as its README's Quick start says, step by step, in a fresh
environment: once with uv and once with pip.

The commands are read from the rendered README and run as they are written: the
server starts, answers the README's own client session and drains on SIGTERM; the
project's tests pass; lint and strict type checks are clean. The project is
installed from its own pyproject.toml and uv.lock, so a dependency it forgets to
declare, or a lock that no longer matches, fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

from .helpers import CELLS, clean_environment, missing, run

SUMMARY = re.compile(r"^=+ (?P<counts>.*) in [\d.]+s", re.MULTILINE)
QUICK_START = re.compile(r"\n## Quick start\n(?P<text>.*?)\n## ", re.S)
BLOCK = re.compile(r"```(?P<kind>sh|console)\n(?P<body>.*?)\n```", re.S)
LINT = re.compile(r"Lint and type-check \(strict\), as CI does: `(?P<uv>[^`]+)`")
PIP_LINT = re.compile(r"\(with pip: `(?P<install>[^`]+)`, then the same without")
UVLOOP = re.compile(
    r"`(?P<uv>uv run --extra uvloop [^`]+)` \(with pip: `(?P<pip>[^`]+)`\)"
)
# A session "of your own", typed at an interactive client.
INTERACTIVE = re.compile(r"`(?P<command>[^`]+)` is a session of your own")
READY = re.compile(r"listening on \S+ \((?P<model>.*)\)")
METRICS = re.compile(r"curl -s (?P<url>http://\S+/metrics) ")
# Ports of the servers these tests start, one per cell and tool.
PORTS = {
    (cell.id, tool): 22000 + 4 * index + 2 * offset  # and the next for metrics
    for index, cell in enumerate(CELLS)
    for offset, tool in enumerate(("uv", "pip"))
}
TIMEOUT_SECONDS = 60.0


class QuickStart:
    """The commands of a rendered README's Quick start, by what each does."""

    def __init__(self, readme: str) -> None:
        section = QUICK_START.search(readme)
        assert section is not None, "the README has no Quick start"
        text = section["text"]
        blocks = [(m["kind"], m["body"]) for m in BLOCK.finditer(text)]
        kinds = [kind for kind, _ in blocks]
        assert kinds[:3] == ["sh", "sh", "sh"], kinds
        (self.uv_server,), (self.uv_tests,) = (
            body.splitlines() for _, body in blocks[:2]
        )
        self.pip_install, self.pip_server, self.pip_tests = blocks[2][1].splitlines()
        self.session = [body for kind, body in blocks[3:] if kind == "console"]
        assert self.session, "the README shows no client session"
        lint, pip_lint = LINT.search(text), PIP_LINT.search(text)
        assert lint is not None, "no lint command"
        assert pip_lint is not None, "no lint command for pip"
        self.uv_lint = lint["uv"]
        self.pip_lint = [pip_lint["install"], lint["uv"].replace("uv run ", "")]
        self.uvloop = UVLOOP.search(text)
        self.interactive = [m["command"] for m in INTERACTIVE.finditer(text)]
        metrics = METRICS.search(text)
        assert metrics is not None, "the session reads no metrics"
        self.metrics = metrics["url"]


class Terminal:
    """A shell in the project, as the README's reader has one: with uv, or with
    pip and the virtual environment active."""

    def __init__(self, project: Path, tool: str) -> None:
        self.project, self.tool = project, tool

    def environment(self) -> dict[str, str]:
        variables = clean_environment()
        variables.pop("VIRTUAL_ENV", None)  # the template's own, if any
        # uv sits beside this Python; it finds the project's interpreter on PATH
        # and may not download another.
        path = f"{Path(sys.executable).parent}{os.pathsep}{variables['PATH']}"
        variables |= {"PATH": path, "UV_PYTHON_DOWNLOADS": "never"}
        venv = self.project / ".venv"  # pip's, as the README makes it, or uv's
        if self.tool == "pip" or venv.is_dir():
            # The client session runs in the project's environment, as the
            # README says: uv's is where `uv run` would run it.
            variables["VIRTUAL_ENV"] = str(venv)
            variables["PATH"] = f"{venv / 'bin'}{os.pathsep}{path}"
        return variables

    def run(self, command: str) -> str:
        """One command line of the README, in bash; what it printed."""
        return run(["bash", "-c", command], self.project, self.environment())

    def start(self, command: str, **streams: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(
            shlex.split(command), cwd=self.project, env=self.environment(), **streams
        )

    def serve_and_talk(self, command: str, quick_start: QuickStart) -> str:
        """Start the server as the README says, hold its client sessions, stop
        it: it must drain and exit 0. The model its ready line names."""
        server = Server(self.start(command, stderr=subprocess.PIPE, text=True))
        try:
            model = server.wait_ready()
            for block in quick_start.session:
                self.run_session(block)
            for interactive in quick_start.interactive:
                printed = self.type_a_line(interactive)
                assert b"hello" in printed, (interactive, printed)
            check_metrics(quick_start.metrics)
        finally:
            status = server.stop()
        assert status == 0, "".join(server.log)
        return model

    def run_session(self, block: str) -> None:
        """Each ``$ command`` of a console block prints the lines that follow it."""
        for command, *expected in (
            chunk.splitlines() for chunk in ("\n" + block).split("\n$ ")[1:]
        ):
            printed = self.run(command)
            assert printed.rstrip("\n").splitlines() == expected, command

    def type_a_line(self, command: str) -> bytes:
        """What an interactive client prints once "hello" is typed into it, by the
        time it shows an echo; then it is closed, as a user ends it."""
        client = self.start(
            f"bash -c {shlex.quote(f'exec {command}')}",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert client.stdin is not None
        assert client.stdout is not None
        printed = bytearray()
        reader = threading.Thread(target=read_all, args=(client.stdout, printed))
        reader.start()
        client.stdin.write(b"hello\n")
        client.stdin.flush()
        for _ in range(int(TIMEOUT_SECONDS * 10)):
            if b"hello" in printed or client.poll() is not None:
                break
            time.sleep(0.1)
        client.kill()
        client.wait()
        reader.join(TIMEOUT_SECONDS)
        return bytes(printed)

    def run_own_suite(self, command: str) -> str:
        """The project's tests, as the README runs them; the summary."""
        output = self.run(command)
        counts = SUMMARY.findall(output)[-1]
        assert re.fullmatch(r"\d+ passed", counts), output
        return counts


def check_metrics(url: str) -> None:
    """What the metrics listener serves passes Prometheus' own lint."""
    if shutil.which("promtool") is None:
        missing("no promtool", "apt install prometheus (Debian's package ships it)")
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        text = response.read()
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def read_all(stream: IO[bytes], into: bytearray) -> None:
    while chunk := stream.read1():  # type: ignore[attr-defined]
        into.extend(chunk)


class Server:
    """The README's server, until it is stopped; its log, read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.log: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if READY.search(line):
                self.ready.set()
        self.ready.set()  # ended: nothing more to wait for

    def wait_ready(self) -> str:
        """The model the ready line names."""
        self.ready.wait(TIMEOUT_SECONDS)
        found = next((m for m in map(READY.search, self.log) if m), None)
        assert found is not None, "".join(self.log)
        return found["model"]

    def stop(self) -> int:
        """SIGTERM, as an orchestrator sends it; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(TIMEOUT_SECONDS)
        finally:
            self.process.kill()
            self._reader.join(TIMEOUT_SECONDS)


def render(
    bake: Any, protocol: str, model: str, tool: str
) -> tuple[Terminal, QuickStart]:
    port = PORTS[(f"{protocol}-{model}", tool)]
    project = bake(protocol=protocol, concurrency=model, port=port).project_path
    quick_start = QuickStart((project / "README.md").read_text())
    return Terminal(project, tool), quick_start


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_the_uv_quick_start_works(bake: Any, protocol: str, model: str) -> None:
    terminal, quick_start = render(bake, protocol, model, "uv")
    terminal.run("uv lock --check")  # the lock it ships is current
    assert "uvloop" not in terminal.serve_and_talk(quick_start.uv_server, quick_start)
    if model == "asyncio":
        assert quick_start.uvloop is not None
        on_uvloop = terminal.serve_and_talk(quick_start.uvloop["uv"], quick_start)
        assert "uvloop" in on_uvloop
    print(f"{protocol}-{model}, uv: {terminal.run_own_suite(quick_start.uv_tests)}")
    terminal.run(quick_start.uv_lint)


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_the_pip_quick_start_works(bake: Any, protocol: str, model: str) -> None:
    terminal, quick_start = render(bake, protocol, model, "pip")
    terminal.run(quick_start.pip_install)
    terminal.serve_and_talk(quick_start.pip_server, quick_start)
    if model == "asyncio":
        # On uvloop, which the project uses once it is installed: the tests too.
        assert quick_start.uvloop is not None
        terminal.run(quick_start.uvloop["pip"])
        on_uvloop = terminal.serve_and_talk(quick_start.pip_server, quick_start)
        assert "uvloop" in on_uvloop
    print(f"{protocol}-{model}, pip: {terminal.run_own_suite(quick_start.pip_tests)}")
    for command in quick_start.pip_lint:
        terminal.run(command)
