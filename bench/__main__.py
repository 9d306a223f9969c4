"""python -m bench: every cell of the template, measured side by side.

Renders and installs the selected cells, then runs each workload against each
cell in turn (the server pinned to CPU 0, this load generator to CPU 1 where the
machine allows) and prints a table per workload; writes the raw results as JSON
and, where matplotlib is installed, a chart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import load
from .cells import Cell, Server, install, running
from .handlers import for_cell

PROTOCOLS = ["tcp", "http", "websocket"]
MODELS = ["asyncio", "threadpool", "threaded", "blocking"]
FAST = {"tcp": "ping", "http": "/", "websocket": "ping"}
WAIT = {"tcp": "wait", "http": "/wait", "websocket": "wait"}
# The models whose connection cap is only a cap; a pool's workers are its capacity.
UNQUEUED = {"asyncio", "threaded"}


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    clients: int
    per_request: bool = False
    io_bound: bool = False
    idle: int = 0


def workloads(quick: bool) -> list[Workload]:
    many = 500 if not quick else 200
    return [
        Workload("persistent-1", "fast handler, 1 connection", 1),
        Workload("persistent-50", "fast handler, 50 connections", 50),
        Workload(f"persistent-{many}", f"fast handler, {many} connections", many),
        Workload("per-request", "connect, request, close; 50 clients", 50, True),
        Workload("io-bound", "handler waits 50 ms; 100 clients", 100, io_bound=True),
        Workload(
            "idle",
            f"{1000 if quick else 10000} idle connections, then 1 probe client",
            1,
            idle=1000 if quick else 10000,
        ),
    ]


async def run(
    server: Server, protocol: str, workload: Workload, path: str, seconds: float
) -> dict[str, Any]:
    """Hold the workload's idle connections, if any, while its clients run."""
    idle = await load.hold_idle(protocol, server.address, workload.idle)
    try:
        cpu, started = server.cpu_seconds(), time.monotonic()
        tally = await load.drive(
            protocol,
            server.address,
            clients=workload.clients,
            seconds=seconds,
            path=path,
            per_request=workload.per_request,
        )
        elapsed = time.monotonic() - started
        cpu = (server.cpu_seconds() - cpu) / elapsed
    finally:
        for connection in idle:
            connection.writer.transport.abort()
    latencies = sorted(tally.latencies)
    return {
        "idle held": len(idle),
        "requests": len(latencies),
        "requests/s": round(len(latencies) / elapsed),
        "p50 ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99 ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
        if latencies
        else None,
        "errors": tally.errors,
        "peak RSS MB": round(server.peak_rss_mb(), 1),
        "CPU %": round(cpu * 100),
    }


def measure(
    cell: Cell, python: Path, workload: Workload, seconds: float
) -> dict[str, Any]:
    handler = for_cell(cell.protocol, cell.model) if workload.io_bound else None
    path = (WAIT if workload.io_bound else FAST)[cell.protocol]
    settings = {}
    if workload.idle and cell.model in UNQUEUED:
        # Raised for the measurement: how many it can hold, not where its cap is.
        settings["max_connections"] = workload.idle + 10
    with running(cell, python, handler=handler, **settings) as server:
        measured = asyncio.run(run(server, cell.protocol, workload, path, seconds))
    return {"cell": cell.name, "workload": workload.name, **measured}


def table(rows: list[dict[str, Any]], workload: Workload) -> str:
    columns = [
        "cell",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "peak RSS MB",
        "CPU %",
    ]
    if workload.idle:
        columns.insert(1, "idle held")
    lines = [f"\n{workload.name}: {workload.what}", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def summary(results: list[dict[str, Any]], cells: list[Cell]) -> str:
    """One row per cell: requests/s under each workload; idle: held, and peak RSS."""
    names = list(dict.fromkeys(row["workload"] for row in results))
    by = {(row["cell"], row["workload"]): row for row in results}
    lines = [
        "| cell | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for cell in cells:
        values = []
        for name in names:
            row = by[cell.name, name]
            value = f"{row['requests/s']:,}"
            if row["errors"]:
                value += f" ({row['errors']:,} refused or failed)"
            if name == "idle":
                value = f"{row['idle held']:,} held, {row['peak RSS MB']} MB; " + value
            values.append(value)
        lines.append(f"| {cell.name} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def chart(results: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: pip install matplotlib to draw one", file=sys.stderr)
        return
    shown = ["persistent-50", "per-request", "io-bound"]
    figure, axes = plt.subplots(1, len(PROTOCOLS), figsize=(15, 4.5), sharey=False)
    for axis, protocol in zip(axes, PROTOCOLS, strict=True):
        width = 0.8 / len(shown)
        for index, workload in enumerate(shown):
            values = [
                next(
                    (
                        r["requests/s"]
                        for r in results
                        if r["cell"] == f"{protocol}-{model}"
                        and r["workload"] == workload
                    ),
                    0,
                )
                for model in MODELS
            ]
            axis.bar(
                [m + index * width for m in range(len(MODELS))],
                values,
                width,
                label=workload,
            )
        axis.set_xticks([m + width for m in range(len(MODELS))], MODELS)
        axis.set_title(protocol)
        axis.set_ylabel("requests/s")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"chart: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="1 s per run, smaller loads"
    )
    parser.add_argument("--seconds", type=float, help="seconds per run (default 10)")
    parser.add_argument(
        "--cells", help="comma-separated, e.g. tcp-asyncio,http-threaded"
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--chart", type=Path, default=Path("bench-results.png"))
    args = parser.parse_args(argv)
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    every = [Cell(p, m) for p in PROTOCOLS for m in MODELS]
    if args.cells:
        wanted = set(args.cells.split(","))
        if unknown := wanted - {cell.name for cell in every}:
            parser.error(f"no such cell: {', '.join(sorted(unknown))}")
        every = [cell for cell in every if cell.name in wanted]
    # Thousands of idle connections need as many descriptors, here and in the server.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the server has CPU 0
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        print(f"installing {len(every)} cells...", file=sys.stderr)
        python = install(every, Path(workdir))
        for workload in workloads(args.quick):
            rows = []
            for cell in every:
                print(f"  {workload.name:15} {cell.name}", file=sys.stderr)
                rows.append(measure(cell, python, workload, seconds))
            results.extend(rows)
            print(table(rows, workload), flush=True)
    print("\nsummary: requests/s per workload\n" + summary(results, every))
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {args.json}")
    chart(results, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
