"""The benchmark runs end to end in its quick mode: every cell and its baselines,
every workload.

It checks that the harness measures, not how fast anything is: speed is for the
full run on a quiet machine (see the README).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import CELLS, PROTOCOLS, TEMPLATE, run

WORKLOADS = {"persistent-1", "persistent-50", "per-request", "io-bound", "idle"}
# Other servers of the HTTP pool's model, beside its cells.
HTTP_POOL_PEERS = ("http-threadpool waitress", "http-threadpool granian")
# With one worker process and with two: the cells only (an engine bare has none).
CPU_BOUND = {"cpu-bound-1", "cpu-bound-2"}


def bench(tmp_path: Path, *options: str) -> tuple[list[dict[str, Any]], str]:
    results = tmp_path / "results.json"
    output = run(
        [sys.executable, "-m", "bench", "--quick", "--json", results, *options],
        cwd=TEMPLATE,
    )
    return json.loads(results.read_text()), output


def test_quick_benchmark_measures_every_cell_and_its_baselines(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    rows, output = bench(tmp_path, "--chart", str(chart))
    measured = {(row["target"], row["workload"]) for row in rows}
    for cell in CELLS:
        for target in (cell.id, f"{cell.id} bare"):
            assert {(target, workload) for workload in WORKLOADS} <= measured
        assert {(cell.id, workload) for workload in CPU_BOUND} <= measured
    for other in ("tcp-threaded naive", "http-threaded naive", *HTTP_POOL_PEERS):
        assert {(other, workload) for workload in WORKLOADS} <= measured
    # Each cell again with its metrics off, under the keep-alive load only.
    without = {t for t, _ in measured if t.endswith(" without metrics")}
    assert without == {f"{cell.id} without metrics" for cell in CELLS}
    assert {w for t, w in measured if t in without} == {"persistent-50"}
    # And serving TLS: keep-alive clients, and a handshake per request.
    tls = {t for t, _ in measured if t.endswith(" with TLS")}
    assert tls == {f"{cell.id} with TLS" for cell in CELLS}
    assert {w for t, w in measured if t in tls} == {"persistent-50", "per-request"}
    for row in rows:
        if row["kind"] == "with TLS":  # answered over TLS
            assert row["requests"] > 0, row
        # One client, or a few that each model serves in turn: none is refused.
        if row["workload"] in {"persistent-1", *CPU_BOUND}:
            assert row["requests"] > 0, row
            assert row["errors"] == 0, row
            assert row["peak RSS MB"] > 0, row
    idle = {
        row["target"]: row["idle held"] for row in rows if row["workload"] == "idle"
    }
    for protocol in PROTOCOLS:
        # One connection at a time: the others wait in the backlog, not held.
        assert idle[f"{protocol}-blocking"] <= 1
        assert idle[f"{protocol}-asyncio"] > idle[f"{protocol}-blocking"]
    assert "| target | requests/s |" in output
    assert "what the hardening costs" in output
    assert "what metrics cost, persistent-50" in output
    assert "what TLS costs" in output
    assert "against other servers, persistent-50" in output
    assert "what a second worker process adds" in output
    assert chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("client", ["asyncio", "wrk"])
def test_each_http_client_measures(tmp_path: Path, client: str) -> None:
    if client == "wrk" and not shutil.which("wrk"):
        pytest.skip("wrk is not installed (Debian's wrk package; .ci/run installs it)")
    rows, _ = bench(
        tmp_path,
        "--cells=http-blocking",
        "--workloads=persistent-1,per-request",
        "--no-baselines",
        f"--http-client={client}",
        "--seconds=1",  # wrk counts whole seconds
        "--chart",
        str(tmp_path / "chart.png"),
    )
    assert [(row["target"], row["workload"]) for row in rows] == [
        ("http-blocking", "persistent-1"),
        ("http-blocking", "per-request"),
    ]
    for row in rows:
        assert row["client"] == client
        assert row["requests"] > 0, row
        assert row["errors"] == 0, row
        assert row["p50 ms"] <= row["p99 ms"], row
