"""Fixtures of the template's tests."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from .helpers import TEMPLATE, missing


@pytest.fixture
def bake(cookies: Any) -> Any:
    """Render the template with some answers; return pytest-cookies' result."""

    def bake(**answers: Any) -> Any:
        return cookies.bake(extra_context=answers, template=str(TEMPLATE))

    return bake


def docker_available() -> str | None:
    """Why the container tests cannot run here, or None if they can."""
    if shutil.which("docker") is None:
        return "no docker command"
    result = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return None if result.returncode == 0 else "no Docker engine answers"


@pytest.fixture(scope="session")
def docker() -> None:
    """A Docker engine to run the container tests on: where there is none, they
    skip and say how to get one, or fail where TEMPLATE_REQUIRE_DOCKER is set."""
    if (problem := docker_available()) is not None:
        missing(
            problem,
            'start Docker, or run eval "$(tests/docker/start-engine.sh)" '
            "(Debian, as root, with docker.io and debootstrap)",
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Image size and build time of each cell built by the container tests; the
    timings of each cell's replicas behind HAProxy, and the requests that its
    scale-down sent and lost."""
    built = measured(terminalreporter, "passed", "image MB")
    if built:
        terminalreporter.section("container images")
        for cell, numbers in built:
            terminalreporter.write_line(
                f"{cell:22} {numbers['image MB']:>5} MB"
                f"  built in {numbers['build seconds']:>5} s"
            )
    scaled = measured(terminalreporter, "passed", "lost")
    scaled += measured(terminalreporter, "failed", "lost")
    if scaled:
        terminalreporter.section("replicas behind HAProxy (seconds)")
        terminalreporter.write_line(
            f"{'':22} {'build':>5} {'up':>5} {'scale':>5} {'down':>5} {'all':>5}"
            "  requests while scaling down"
        )
        for cell, numbers in sorted(scaled, key=lambda cell_numbers: cell_numbers[0]):
            terminalreporter.write_line(
                f"{cell:22} {numbers['build seconds']:>5} {numbers['up seconds']:>5}"
                f" {numbers['scale down seconds']:>5}"
                f" {numbers.get('down seconds', '-'):>5} {numbers['seconds']:>5}"
                f"  {numbers['requests']:>5} sent, {numbers['lost']} lost"
            )
        total = sum(numbers["seconds"] for _, numbers in scaled)
        terminalreporter.write_line(
            f"{'all cells, one after another':>46} {total:>5.0f}"
        )


def measured(
    terminalreporter: Any, outcome: str, mark: str
) -> list[tuple[str, dict[str, Any]]]:
    """The cell and the recorded numbers (and its duration, as seconds) of each
    test with this outcome that recorded `mark`, by cell."""
    return sorted(
        (
            (
                report.nodeid.partition("[")[2].rstrip("]"),
                dict(report.user_properties, seconds=round(report.duration, 1)),
            )
            for report in terminalreporter.stats.get(outcome, [])
            if any(name == mark for name, _ in report.user_properties)
        ),
        key=lambda cell_numbers: cell_numbers[0],
    )
