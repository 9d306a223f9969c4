"""The benchmark runs end to end in its quick mode: every cell, every workload.

It checks that the harness measures, not how fast anything is: speed is for the
full run on a quiet machine (see the README).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .helpers import CELLS, TEMPLATE, run

WORKLOADS = {"persistent-1", "persistent-50", "per-request", "io-bound", "idle"}


def test_quick_benchmark_measures_every_cell(tmp_path: Path) -> None:
    results, chart = tmp_path / "results.json", tmp_path / "chart.png"
    output = run(
        [sys.executable, "-m", "bench", "--quick", "--json", results, "--chart", chart],
        cwd=TEMPLATE,
    )
    rows = json.loads(results.read_text())
    measured = {(row["cell"], row["workload"]) for row in rows}
    for cell in CELLS:
        assert {(cell.id, workload) for workload in WORKLOADS} <= measured
    for row in rows:
        if row["workload"] == "persistent-1":  # one client: every model serves it
            assert row["requests"] > 0, row
            assert row["errors"] == 0, row
            assert row["peak RSS MB"] > 0, row
    assert "| cell | requests/s |" in output
    assert chart.read_bytes().startswith(b"\x89PNG")
