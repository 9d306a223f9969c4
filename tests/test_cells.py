"""Each cell, installed as a user installs it, type-checks and passes its own tests.

The project is installed into a fresh virtual environment from its own
pyproject.toml, so a dependency it forgets to declare fails here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import CELLS, run

SUMMARY = re.compile(r"^=+ (?P<counts>.*) in [\d.]+s", re.MULTILINE)


def run_own_suite(venv: Path, project: Path) -> str:
    """Run the project's tests the way its README says; return the summary."""
    output = run([venv / "bin" / "pytest"], cwd=project)
    counts = SUMMARY.findall(output)[-1]
    assert re.fullmatch(r"\d+ passed", counts), output
    return counts


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_cell_installs_and_passes_its_own_suite(
    bake: Any, tmp_path: Path, protocol: str, model: str
) -> None:
    project = bake(protocol=protocol, concurrency=model).project_path
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    run([*pip, ".[test,dev]"], cwd=project)
    run([venv / "bin" / "mypy"], cwd=project)  # strict, as the project configures it
    print(f"{protocol}-{model}: {run_own_suite(venv, project)}")
    if model == "asyncio":
        # Again on uvloop, which the project uses when it is installed.
        run([*pip, ".[uvloop]"], cwd=project)
        print(f"{protocol}-{model} on uvloop: {run_own_suite(venv, project)}")
