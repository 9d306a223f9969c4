"""The commands at the top of this README work as written: both ways of rendering
a project put it beside the clone, and CI runs the README's test command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import TEMPLATE, clean_environment, run

README = (TEMPLATE / "README.md").read_text()
COMMANDS = re.findall(r"```sh\n(.+?)\n```", README.partition("\n## ")[0])
RENDER_WITH_UV, RENDER_WITH_PIP, RUN_THE_TESTS = COMMANDS


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (TEMPLATE / ".ci" / "run").read_text().rstrip("\n").splitlines()
    assert ci[-1] == RUN_THE_TESTS


def clone(tmp_path: Path) -> Path:
    """The template's tracked files, as a clone of it has them."""
    files = run(["git", "ls-files", "-z"], TEMPLATE).split("\0")
    clone = tmp_path / "cookiecutter-python-server"
    for name in filter(None, files):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE / name, clone / name)
    return clone


@pytest.mark.parametrize(
    "command", [RENDER_WITH_UV, RENDER_WITH_PIP], ids=["uv", "pip"]
)
def test_the_readme_renders_the_defaults_beside_the_clone(
    tmp_path: Path, command: str
) -> None:
    template = clone(tmp_path)
    before = sorted(template.rglob("*"))
    variables = clean_environment()
    variables.pop("VIRTUAL_ENV", None)
    variables["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{variables['PATH']}"
    subprocess.run(
        ["bash", "-c", command], cwd=template, env=variables, check=True, timeout=600
    )
    project = tmp_path / "my-server"
    assert (project / "pyproject.toml").is_file()
    assert (project / ".git").is_dir()
    # Nothing rendered inside the clone: only the virtual environment pip needs.
    after = [path for path in template.rglob("*") if ".venv" not in path.parts]
    assert sorted(after) == [path for path in before if ".venv" not in path.parts]
