"""What the template's tests share: the option matrix, read from cookiecutter.json."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

TEMPLATE = Path(__file__).resolve().parent.parent
CONTEXT: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())
PROTOCOLS: list[str] = CONTEXT["protocol"]
MODELS: list[str] = CONTEXT["concurrency"]
# Every protocol x concurrency cell, generated: a choice added to cookiecutter.json
# is tested without touching the tests.
CELLS = [
    pytest.param(protocol, model, id=f"{protocol}-{model}")
    for protocol, model in itertools.product(PROTOCOLS, MODELS)
]
# The default, and the longest name (50 characters) the template takes.
NAMES = ["My Server", "A Very Long Name For The Internal Market Data Feed"]


def load_hook(name: str) -> ModuleType:
    """Import a hook as the plain Python module it is before rendering."""
    spec = importlib.util.spec_from_file_location(
        name, TEMPLATE / "hooks" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_lint_clean(project: Path) -> None:
    """ruff finds nothing to fix and nothing to reformat."""
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run(
            command, cwd=project, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def assert_yaml_lint_clean(path: Path) -> None:
    """yamllint's default rules find nothing in a rendered YAML file."""
    # A long project name makes lines that no line break can shorten: those may
    # overflow.
    config = YamlLintConfig(
        "{extends: default, rules: {line-length: "
        "{allow-non-breakable-inline-mappings: true}}}"
    )
    problems = list(linter.run(path.read_text(), config, str(path)))
    assert not problems, f"{path.name}: {[str(p) for p in problems]}"


def missing(problem: str, remedy: str) -> NoReturn:
    """End a container test that cannot run here: fail where TEMPLATE_REQUIRE_DOCKER
    is set, or else skip, saying how to get what is missing."""
    if os.environ.get("TEMPLATE_REQUIRE_DOCKER"):
        pytest.fail(f"container tests required, but {problem}")
    pytest.skip(f"{problem}: {remedy}")


def run(
    command: list[str | Path], cwd: Path, variables: dict[str, str] | None = None
) -> str:
    """Run a command of a rendered project, with some more environment variables;
    its output, or a failed test."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=clean_environment() | (variables or {}),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def clean_environment() -> dict[str, str]:
    """This environment, without what would leak this pytest's settings into a
    project's own run."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "PYTHONPATH", "COV_"))
    }
