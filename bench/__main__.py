"""python -m bench: every cell of the template, measured side by side with its
engine bare and with the naive pattern of tutorials.

Renders and installs the selected cells, then starts each target once and runs
every workload against it in turn (the server pinned to CPU 0, the load generator
to CPU 1 where the machine allows); the CPU-bound workloads run each cell again with
one worker process and with two, free to use every CPU. Prints a table per
workload, a summary, what the hardening costs and what a second worker adds;
writes the raw results as JSON and, where matplotlib is installed, a chart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import load, report
from .targets import (
    WITH_TLS,
    WITHOUT_METRICS,
    Server,
    Target,
    install,
    make_certificate,
    running,
)

PROTOCOLS = ["tcp", "http", "websocket"]
MODELS = ["asyncio", "threadpool", "threaded", "blocking"]
# What a client asks for: a fast answer, one that waits 50 ms, one that computes
# for 10 ms (handlers.py).
REQUESTS = {
    "fast": {"tcp": "ping", "http": "/", "websocket": "ping"},
    "wait": {"tcp": "wait", "http": "/wait", "websocket": "wait"},
    "burn": {"tcp": "burn", "http": "/burn", "websocket": "burn"},
}
# The models whose connection cap is raised for the idle workload, which measures
# what a model can hold, not where its cap is.
CAPPED = {"asyncio", "threadpool", "threaded"}
# The tutorials' patterns: a thread per client in both.
NAIVE = {"tcp", "http"}
# Other servers of a model, by protocol and model (bench/bare/peers.py).
PEERS = {("http", "threadpool"): ["waitress", "granian"]}
SAMPLE_SECONDS = 0.05
IDLE_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    clients: int
    per_request: bool = False
    request: str = "fast"
    idle: int = 0
    workers: int = 0  # > 0: the cells alone, with this many worker processes


def workloads(quick: bool) -> list[Workload]:
    many, idle = (200, 1000) if quick else (500, 10_000)
    return [
        Workload("persistent-1", "fast handler, 1 connection", 1),
        Workload("persistent-50", "fast handler, 50 connections", 50),
        Workload(f"persistent-{many}", f"fast handler, {many} connections", many),
        Workload("per-request", "connect, request, close; 50 clients", 50, True),
        Workload("io-bound", "handler waits 50 ms; 100 clients", 100, request="wait"),
        Workload("idle", f"{idle:,} idle connections, then 1 client", 1, idle=idle),
        *(
            Workload(
                f"cpu-bound-{workers}",
                f"handler computes 10 ms; 4 clients, a connection per request; "
                f"{workers} worker process{'es' if workers > 1 else ''}",
                4,
                per_request=True,
                request="burn",
                workers=workers,
            )
            for workers in (1, 2)
        ),
    ]


def targets(cells: list[str], baselines: bool) -> list[Target]:
    """The cells, each followed by itself with its metrics off, itself serving
    TLS, and its engine bare; then the naive patterns, and the other servers of a
    cell's model."""
    chosen: list[Target] = []
    for name in cells:
        protocol, model = name.split("-")
        chosen.append(Target(protocol, model))
        if baselines:
            chosen.append(Target(protocol, model, WITHOUT_METRICS))
            chosen.append(Target(protocol, model, WITH_TLS))
            chosen.append(Target(protocol, model, "bare"))
    if baselines:
        protocols = {target.protocol for target in chosen} & NAIVE
        chosen += [Target(p, "threaded", "naive") for p in PROTOCOLS if p in protocols]
        cells_chosen = {(target.protocol, target.model) for target in chosen}
        chosen += [
            Target(protocol, model, peer)
            for (protocol, model), peers in PEERS.items()
            if (protocol, model) in cells_chosen
            for peer in peers
        ]
    return chosen


@contextlib.contextmanager
def peak_rss(server: Server) -> Iterator[list[float]]:
    """Sample the server's resident memory while the block runs; its peak in [0]."""
    peak = [server.rss_mb()]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], server.rss_mb())
            await asyncio.sleep(SAMPLE_SECONDS)

    sampler = asyncio.get_running_loop().create_task(sample())
    try:
        yield peak
    finally:
        sampler.cancel()
        peak[0] = max(peak[0], server.rss_mb())


async def run(
    server: Server, target: Target, workload: Workload, seconds: float, wrk: bool
) -> dict[str, Any]:
    """Hold the workload's idle connections, if any, while its clients run."""
    path = REQUESTS[workload.request][target.protocol]
    with peak_rss(server) as peak:
        idle = await load.hold_idle(
            target.protocol, server.address, workload.idle, server.descriptors
        )
        await asyncio.sleep(0.1)  # the server closes those it refused
        held = server.connections() if workload.idle else 0
        try:
            cpu, started = server.cpu_seconds(), time.monotonic()
            figures = await load.drive(
                target.protocol,
                server.address,
                clients=workload.clients,
                seconds=seconds,
                path=path,
                per_request=workload.per_request,
                tls=load.client_context() if target.kind == WITH_TLS else None,
                # wrk waits for the kernel to give up on a connection a full
                # server never accepts: the probe beside idle ones is ours.
                use_wrk=wrk and not workload.idle,
            )
            cpu = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
        finally:
            for connection in idle:
                connection.writer.transport.abort()
    await asyncio.sleep(0.1)  # the server sees its clients go before the next run
    return {
        "idle held": held,
        "requests": figures.requests,
        "requests/s": figures.per_second,
        "p50 ms": figures.p50_ms,
        "p99 ms": figures.p99_ms,
        "errors": figures.errors,
        "peak RSS MB": round(peak[0], 1),
        "CPU %": round(cpu * 100),
        "client": figures.client,
    }


class Progress:
    """One line on stderr per run: where the benchmark is, and what it measured."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()

    def __call__(self, row: dict[str, Any]) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done)
        print(
            f"[{self.done:3}/{self.total}, {elapsed:4.0f} s, ~{left:4.0f} s left] "
            f"{row['target']:24} {row['workload']:15} {row['requests/s']:>8,} req/s"
            + (f", {row['errors']:,} errors" if row["errors"] else ""),
            file=sys.stderr,
            flush=True,
        )


def runs(target: Target, chosen: list[Workload]) -> list[Workload]:
    """The workloads a target runs: every one, but a cell measured again runs only
    what shows the difference: without metrics, keep-alive clients; with TLS,
    those and a connection (so a handshake) per request."""
    if target.kind == WITHOUT_METRICS:
        return [w for w in chosen if w.name == report.PEER_WORKLOAD]
    if target.kind == WITH_TLS:
        return [w for w in chosen if w.name in report.TLS_WORKLOADS]
    return chosen


def measure(
    target: Target,
    python: Path,
    chosen: list[Workload],
    seconds: float,
    wrk: bool,
    progress: Progress,
    certificate: dict[str, str],
) -> list[dict[str, Any]]:
    """Start the target and run the workloads against it, the idle one on a
    server of its own, and each CPU-bound one on a server with its worker
    processes (a cell's only: the engines bare have no such setting)."""
    settings: dict[str, object] = {}
    if target.kind == "cell" and (idle := max(w.idle for w in chosen)):
        # Idle connections stay while thousands more are opened (a bare engine has
        # no idle timeout), and a model holds what it can, not what its cap says.
        settings["idle_timeout"] = IDLE_TIMEOUT_SECONDS
        if target.model in CAPPED:
            settings["max_connections"] = idle + 10
    if target.kind == WITH_TLS:
        settings.update(certificate)
    rows = []
    # The idle workload on a server of its own: what idle clients cost, not what
    # the loads before them left behind.
    shared = [w for w in chosen if not w.idle and not w.workers]
    groups = [(shared, settings), ([w for w in chosen if w.idle], settings)]
    if target.kind == "cell":
        groups += [([w], {"workers": w.workers}) for w in chosen if w.workers]
    for group, server_settings in groups:
        if not group:
            continue
        # Worker processes get every CPU: one core is what a single one can use.
        pinned = not group[0].workers
        with running(target, python, pinned, **server_settings) as server:
            for workload in group:
                figures = load.run(run(server, target, workload, seconds, wrk))
                row = {
                    "target": target.name,
                    "cell": target.cell,
                    "kind": target.kind,
                    "workload": workload.name,
                    **figures,
                }
                progress(row)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="0.3 s per run, smaller loads"
    )
    parser.add_argument("--seconds", type=float, help="seconds per run (default 10)")
    cells = [f"{p}-{m}" for p in PROTOCOLS for m in MODELS]
    parser.add_argument(
        "--cells", help="comma-separated, e.g. tcp-asyncio,http-threaded"
    )
    parser.add_argument("--workloads", help="comma-separated, e.g. persistent-1,idle")
    parser.add_argument(
        "--no-baselines", action="store_true", help="the cells only, no bare or naive"
    )
    parser.add_argument(
        "--http-client",
        choices=["wrk", "asyncio"],
        help="what drives the HTTP cells (default: wrk where installed, for runs "
        "of 1 s or more: it counts whole seconds)",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--chart", type=Path, default=Path("bench-results.png"))
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 10.0)
    if args.http_client == "wrk" and not shutil.which("wrk"):
        parser.error("--http-client=wrk: no wrk installed")
    wrk = args.http_client == "wrk" or (
        args.http_client is None and seconds >= 1 and shutil.which("wrk") is not None
    )
    chosen = workloads(args.quick)
    if args.cells:
        cells = pick(parser, "cell", args.cells, cells)
    if args.workloads:
        names = pick(parser, "workload", args.workloads, [w.name for w in chosen])
        chosen = [workload for workload in chosen if workload.name in names]
    measured = targets(cells, baselines=not args.no_baselines)
    # Thousands of idle connections need as many descriptors, here and in the server.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the server has CPU 0
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        print(f"installing {len(cells)} cells...", file=sys.stderr)
        python = install([t for t in measured if t.kind == "cell"], Path(workdir))
        certificate = make_certificate(Path(workdir))
        progress = Progress(sum(len(runs(t, chosen)) for t in measured))
        for target in measured:
            results += measure(
                target,
                python,
                runs(target, chosen),
                seconds,
                wrk,
                progress,
                certificate,
            )
    print(report.text(results, chosen, seconds))
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {args.json}")
    report.chart(results, args.chart)
    return 0


def pick(
    parser: argparse.ArgumentParser, what: str, given: str, known: list[str]
) -> list[str]:
    wanted = given.split(",")
    if unknown := sorted(set(wanted) - set(known)):
        parser.error(
            f"no such {what}: {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return [name for name in known if name in wanted]


if __name__ == "__main__":
    sys.exit(main())
