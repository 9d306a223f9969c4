"""What a run prints and draws: a table per workload, a summary per target, what
the hardening costs (each cell against its model bare), what a second worker
process adds, and a chart."""

from __future__ import annotations

import datetime
import platform
import re
import sys
from pathlib import Path
from typing import Any, Protocol

from .targets import WITH_TLS, WITHOUT_METRICS

COLUMNS = ["target", "requests/s", "p50 ms", "p99 ms", "errors", "peak RSS MB", "CPU %"]
# The fast-handler workloads: the server's own cost, which the hardening adds to.
FAST = ["persistent-1", "persistent-50", "per-request"]
# Where the cells stand against other servers of their model: keep-alive clients.
PEER_WORKLOAD = "persistent-50"
# What TLS costs: with keep-alive clients, and with a handshake per request.
TLS_WORKLOADS = ["persistent-50", "per-request"]
# The CPU-bound workload, with one worker process and with two.
ONE_WORKER, TWO_WORKERS = "cpu-bound-1", "cpu-bound-2"


class Workload(Protocol):
    name: str
    what: str
    idle: int


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and (
        model := re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
    ):
        cpu = model[1]
    return f"{cpu}, Python {platform.python_version()}, {datetime.date.today()}"


def text(
    results: list[dict[str, Any]], workloads: list[Workload], seconds: float
) -> str:
    clients = sorted({row["client"] for row in results})
    parts = [f"{machine()}; {seconds:g} s per run; clients: {', '.join(clients)}"]
    for workload in workloads:
        rows = [row for row in results if row["workload"] == workload.name]
        columns = ["target", "idle held", *COLUMNS[1:]] if workload.idle else COLUMNS
        parts.append(f"\n{workload.name}: {workload.what}\n" + markdown(columns, rows))
    parts.append("\nsummary: requests/s per workload\n" + summary(results))
    if any(row["kind"] == "bare" for row in results):
        parts.append(
            "\nwhat the hardening costs: each cell / its model bare\n" + costs(results)
        )
    if cost := metrics_cost(results):
        parts.append(
            f"\nwhat metrics cost, {PEER_WORKLOAD}: each cell / itself with "
            "--metrics-port 0\n" + cost
        )
    if cost := tls_cost(results):
        parts.append(
            "\nwhat TLS costs: each cell serving TLS / itself plain (per-request: "
            "a handshake per request)\n" + cost
        )
    if against := peers(results):
        parts.append(
            f"\nagainst other servers, {PEER_WORKLOAD}: each cell / the other\n"
            + against
        )
    if scaling := workers(results):
        parts.append(
            "\nwhat a second worker process adds: CPU-bound requests/s\n" + scaling
        )
    return "\n".join(parts)


def markdown(columns: list[str], rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def summary(results: list[dict[str, Any]]) -> str:
    """One row per target: requests/s under each workload; idle: held, peak RSS."""
    names = list(dict.fromkeys(row["workload"] for row in results))
    by = {(row["target"], row["workload"]): row for row in results}
    rows = []
    for target in dict.fromkeys(row["target"] for row in results):
        row = {"target": target}
        for name in names:
            if (target, name) not in by:  # a CPU-bound one, for a cell only
                row[name] = ""
                continue
            figures = by[target, name]
            value = f"{figures['requests/s']:,}"
            if figures["errors"]:
                value += f" ({figures['errors']:,} refused or failed)"
            if name == "idle":
                held = f"{figures['idle held']:,} held, {figures['peak RSS MB']} MB; "
                value = held + value
            row[name] = value
        rows.append(row)
    return markdown(["target", *names], rows)


def ratios(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per cell, per fast workload: the cell's requests/s over its bare engine's."""
    by = {(row["target"], row["workload"]): row["requests/s"] for row in results}
    found: dict[str, dict[str, float]] = {}
    for row in results:
        bare = by.get((f"{row['cell']} bare", row["workload"]))
        if row["kind"] == "cell" and row["workload"] in FAST and bare:
            found.setdefault(row["cell"], {})[row["workload"]] = (
                row["requests/s"] / bare
            )
    return found


def costs(results: list[dict[str, Any]]) -> str:
    found = ratios(results)
    names = [name for name in FAST if any(name in r for r in found.values())]
    rows = [
        {"cell": cell, **{n: f"{r[n]:.0%}" if n in r else "" for n in names}}
        for cell, r in found.items()
    ]
    return markdown(["cell", *names], rows)


def metrics_cost(results: list[dict[str, Any]]) -> str:
    """Each cell's requests/s over its own without metrics, under PEER_WORKLOAD;
    empty if none was measured without."""
    by = {
        (row["cell"], row["kind"]): row["requests/s"]
        for row in results
        if row["workload"] == PEER_WORKLOAD
    }
    rows = [
        {
            "cell": cell,
            "with metrics": f"{by[cell, 'cell']:,}",
            "without": f"{without:,}",
            "ratio": f"{by[cell, 'cell'] / without:.0%}",
        }
        for (cell, kind), without in by.items()
        if kind == WITHOUT_METRICS and without and (cell, "cell") in by
    ]
    return markdown(["cell", "with metrics", "without", "ratio"], rows) if rows else ""


def tls_cost(results: list[dict[str, Any]]) -> str:
    """Per cell, under each TLS workload: requests/s plain, with TLS, and their
    ratio; empty if no cell was measured with TLS."""
    by = {(row["target"], row["workload"]): row["requests/s"] for row in results}
    rows = []
    for cell in dict.fromkeys(r["cell"] for r in results if r["kind"] == WITH_TLS):
        row = {"cell": cell}
        for name in TLS_WORKLOADS:
            plain, tls = by.get((cell, name)), by.get((f"{cell} {WITH_TLS}", name))
            ratio = f" ({tls / plain:.0%})" if plain and tls is not None else ""
            row[name] = f"{plain or 0:,} → {tls or 0:,}{ratio}"
        rows.append(row)
    return markdown(["cell", *TLS_WORKLOADS], rows) if rows else ""


def peers(results: list[dict[str, Any]]) -> str:
    """Each cell of a protocol over every other server of that protocol measured
    (a tutorial's pattern, another engine), under PEER_WORKLOAD; empty if none."""
    by = {
        row["target"]: row
        for row in results
        if row["workload"] == PEER_WORKLOAD and row["requests/s"]
    }
    # The cells themselves, or their engine.
    cells = ("cell", WITHOUT_METRICS, WITH_TLS, "bare")
    others = [row for row in by.values() if row["kind"] not in cells]
    rows = []
    for cell in (row for row in by.values() if row["kind"] == "cell"):
        protocol = cell["cell"].split("-")[0]
        mine = [o for o in others if o["cell"].split("-")[0] == protocol]
        if mine:
            ratios = {
                o["target"]: f"{cell['requests/s'] / o['requests/s']:.2f}x"
                for o in mine
            }
            rows.append({"cell": cell["target"], **ratios})
    columns = list(dict.fromkeys(name for row in rows for name in row))
    for row in rows:
        for column in columns:
            row.setdefault(column, "")
    return markdown(columns, rows) if rows else ""


def workers(results: list[dict[str, Any]]) -> str:
    """Per cell: CPU-bound requests/s with one worker process, with two, and
    their ratio; empty unless both were measured."""
    by = {(row["target"], row["workload"]): row["requests/s"] for row in results}
    rows = []
    for cell in dict.fromkeys(row["cell"] for row in results if row["kind"] == "cell"):
        one, two = by.get((cell, ONE_WORKER)), by.get((cell, TWO_WORKERS))
        if one and two:
            rows.append(
                {
                    "cell": cell,
                    "1 worker": one,
                    "2 workers": two,
                    "ratio": f"{two / one:.2f}x",
                }
            )
    return markdown(["cell", "1 worker", "2 workers", "ratio"], rows) if rows else ""


def chart(results: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: pip install matplotlib to draw one", file=sys.stderr)
        return
    protocols = list(dict.fromkeys(row["cell"].split("-")[0] for row in results))
    shown = [
        w
        for w in ["persistent-50", "per-request", "io-bound"]
        if any(r["workload"] == w for r in results)
    ]
    figure, axes = plt.subplots(
        1, len(protocols), figsize=(5 * len(protocols), 4.5), squeeze=False
    )
    for axis, protocol in zip(axes[0], protocols, strict=True):
        cells = [
            r
            for r in results
            if r["kind"] == "cell" and r["cell"].startswith(protocol + "-")
        ]
        models = list(dict.fromkeys(r["cell"].split("-")[1] for r in cells))
        width = 0.8 / max(1, len(shown))
        for index, workload in enumerate(shown):
            for kind, style in (("cell", {}), ("bare", {"fill": False, "hatch": "//"})):
                by = {
                    r["cell"]: r["requests/s"]
                    for r in results
                    if r["kind"] == kind and r["workload"] == workload
                }
                axis.bar(
                    [m + index * width for m in range(len(models))],
                    [by.get(f"{protocol}-{model}", 0) for model in models],
                    width * 0.9,
                    label=workload if kind == "cell" else None,
                    color=f"C{index}",
                    edgecolor=f"C{index}",
                    **style,
                )
        axis.set_xticks(
            [m + width * (len(shown) - 1) / 2 for m in range(len(models))], models
        )
        axis.set_title(f"{protocol}: requests/s (hatched: the model bare)")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"chart: {path}")
