"""Each project's own CI workflow and pre-commit configuration are valid, and do what
the template's tests prove here: lint, type-check strictly, test, and run the image."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import CELLS, TEMPLATE, clean_environment
from .test_bake import EVERY_ANSWER
from .test_containers import DOCKER_SECTION

WORKFLOW = ".github/workflows/ci.yml"
# An action pinned to a major version (v6), not a branch, a minor version or nothing.
MAJOR_PIN = re.compile(r"[\w.-]+/[\w.-]+@v\d+")
RUFF_PIN = re.compile(r"^ruff==(\S+)$", re.MULTILINE)
# A stand-in for docker: it logs each call; the container it "runs" reports the
# health in $HEALTH after one "starting", and exits with $EXIT_STATUS once stopped.
FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$1" in
  run) touch "$CALLS.running"
       while [ ! -e "$CALLS.stopped" ]; do /bin/sleep 0.05; done
       exit "$EXIT_STATUS" ;;
  ps) if [ -e "$CALLS.running" ]; then echo c0ffee; fi ;;
  inspect) if [ "$(grep -c '^inspect' "$CALLS")" -lt 2 ]; then health=starting
           else health=$HEALTH; fi
           printf '[{"Id": "c0ffee", "State": {"Health": {"Status": "%s"}}}]\\n' \\
             "$health" ;;
  stop) touch "$CALLS.stopped"; echo "$2" ;;
esac
"""
# The workflow's waits, shortened: the fake container answers at once.
FAKE_SLEEP = "#!/bin/sh\nexec /bin/sleep 0.05\n"


def workflow(project: Path) -> dict[Any, Any]:
    document = yaml.safe_load((project / WORKFLOW).read_text())
    assert isinstance(document, dict)
    return document


def runs(job: dict[str, Any]) -> list[str]:
    """The shell scripts of a job's steps, in order."""
    return [step["run"] for step in job["steps"] if "run" in step]


def test_every_workflow_is_valid_against_the_github_schema(
    bake: Any, tmp_path: Path
) -> None:
    files = []
    for protocol, model, docker in (param.values for param in EVERY_ANSWER):
        project = bake(protocol=protocol, concurrency=model, include_docker=docker)
        files.append(project.project_path / WORKFLOW)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *files,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("python", ["3.11", "3.14"])
def test_the_workflow_lints_type_checks_and_tests_on_the_chosen_python(
    bake: Any, python: str
) -> None:
    project = bake(python_version=python).project_path
    test = workflow(project)["jobs"]["test"]
    setup = [step for step in test["steps"] if "setup-uv" in step.get("uses", "")]
    assert [step["with"]["python-version"] for step in setup] == [python]
    assert runs(test) == [
        "uv sync --locked",  # what uv.lock pins, or a failure if it is stale
        "uv run ruff check .",
        "uv run ruff format --check .",
        "uv run mypy",
        "uv run pytest",
    ]


@pytest.mark.parametrize("docker", [True, False])
def test_dependabot_updates_the_lock_the_actions_and_the_base_image(
    bake: Any, docker: bool
) -> None:
    config = bake(include_docker=docker).project_path / ".github" / "dependabot.yml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.dependabot",
            config,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    updates = yaml.safe_load(config.read_text())["updates"]
    ecosystems = {update["package-ecosystem"] for update in updates}
    assert ecosystems == {"uv", "github-actions"} | ({"docker"} if docker else set())


def test_every_action_is_pinned_to_a_major_version(bake: Any) -> None:
    jobs = workflow(bake().project_path)["jobs"]
    actions = [
        step["uses"] for job in jobs.values() for step in job["steps"] if "uses" in step
    ]
    assert actions
    for action in actions:
        assert MAJOR_PIN.fullmatch(action), action


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_mypy_is_strict_over_the_package_and_its_tests(
    bake: Any, protocol: str, model: str
) -> None:
    """What the workflow's bare ``mypy`` checks, and test_cells runs in each cell."""
    project = bake(protocol=protocol, concurrency=model).project_path
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["tool"]["mypy"]["strict"] is True
    assert pyproject["tool"]["mypy"]["files"] == ["src", "tests"]


def test_the_docker_job_exists_only_with_a_dockerfile(bake: Any) -> None:
    for docker in (True, False):
        project = bake(include_docker=docker).project_path
        assert ("docker" in workflow(project)["jobs"]) is docker
        assert (project / "Dockerfile").exists() is docker


@pytest.mark.parametrize("protocol", ["tcp", "http", "websocket"])
def test_the_docker_job_runs_the_readme_commands(bake: Any, protocol: str) -> None:
    project = bake(protocol=protocol).project_path
    commands = DOCKER_SECTION.search((project / "README.md").read_text())
    assert commands is not None
    scripts = runs(workflow(project)["jobs"]["docker"])
    assert scripts[0] == commands["build"]
    assert scripts[1].startswith(commands["run"] + " &\n")


def run_docker_job(
    project: Path, tmp_path: Path, health: str, exit_status: int
) -> tuple[int, list[str]]:
    """Run the docker job's steps as the runner does (bash -e, one script a step),
    against the fake docker; its exit status and the docker calls it made."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name, text in {"docker": FAKE_DOCKER, "sleep": FAKE_SLEEP}.items():
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    environment = clean_environment() | {
        "PATH": f"{fakes}:{clean_environment()['PATH']}",
        "CALLS": str(calls),
        "HEALTH": health,
        "EXIT_STATUS": str(exit_status),
    }
    status = 0
    for script in runs(workflow(project)["jobs"]["docker"]):
        status = subprocess.run(
            ["bash", "-e", "-c", script], cwd=project, env=environment, timeout=60
        ).returncode
        if status:
            break
    return status, calls.read_text().splitlines()


def test_the_docker_job_builds_runs_waits_for_healthy_and_stops(
    bake: Any, tmp_path: Path
) -> None:
    project = bake().project_path
    status, calls = run_docker_job(project, tmp_path, "healthy", 0)
    assert status == 0
    verbs = [call.split()[0] for call in calls]
    assert verbs[0] == "build"
    # `docker run` goes to the background, so a `docker ps` may come before it;
    # its container is looked at only once it runs.
    assert "run" in verbs
    assert verbs.index("run") < verbs.index("inspect")
    assert verbs.count("inspect") == 2  # starting, then healthy
    assert verbs[-1] == "stop"
    assert calls[-1] == "stop c0ffee"


@pytest.mark.parametrize(
    ("health", "exit_status"),
    [("unhealthy", 0), ("healthy", 137)],
    ids=["never-healthy", "killed-not-drained"],
)
def test_the_docker_job_fails_when_the_container_does(
    bake: Any, tmp_path: Path, health: str, exit_status: int
) -> None:
    project = bake().project_path
    status, calls = run_docker_job(project, tmp_path, health, exit_status)
    assert status != 0
    assert calls[-1] == "stop c0ffee"  # and the container is not left running


def test_pre_commit_config_is_valid_and_runs_the_templates_ruff(bake: Any) -> None:
    project = bake().project_path
    config = project / ".pre-commit-config.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", config],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (ruff,) = yaml.safe_load(config.read_text())["repos"]
    assert ruff["repo"] == "https://github.com/astral-sh/ruff-pre-commit"
    assert [hook["id"] for hook in ruff["hooks"]] == ["ruff-check", "ruff-format"]
    # One ruff everywhere: the template's tests, the dev extra and pre-commit.
    (template_ruff,) = RUFF_PIN.findall((TEMPLATE / "requirements-dev.txt").read_text())
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    assert f"ruff=={template_ruff}" in dev
    assert ruff["rev"] == f"v{template_ruff}"


PRE_COMMIT = re.compile(
    r"`(?P<uv>uvx pre-commit install)` \(or `pip install pre-commit && "
    r"(?P<pip>pre-commit install)`\)"
)


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_pre_commit_installs_as_the_readme_says(bake: Any, tool: str) -> None:
    """The project is a git repository from the start, so the hook goes in."""
    project = bake().project_path
    commands = PRE_COMMIT.search((project / "README.md").read_text())
    assert commands is not None
    variables = clean_environment()
    # uvx, and the pre-commit that pip installed, sit beside this Python.
    variables["PATH"] = f"{Path(sys.executable).parent}:{variables['PATH']}"
    subprocess.run(
        ["bash", "-c", commands[tool]], cwd=project, env=variables, check=True
    )
    assert "pre-commit" in (project / ".git" / "hooks" / "pre-commit").read_text()
