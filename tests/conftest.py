"""Fixtures of the template's tests."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import TEMPLATE


@pytest.fixture
def bake(cookies: Any) -> Any:
    """Render the template with some answers; return pytest-cookies' result."""

    def bake(**answers: Any) -> Any:
        return cookies.bake(extra_context=answers, template=str(TEMPLATE))

    return bake


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Image size and build time of each cell built by the container tests."""
    built = [
        (report.nodeid.partition("[")[2].rstrip("]"), dict(report.user_properties))
        for report in terminalreporter.stats.get("passed", [])
        if any(name == "image MB" for name, _ in report.user_properties)
    ]
    if built:
        terminalreporter.section("container images")
        for cell, numbers in sorted(built):
            terminalreporter.write_line(
                f"{cell:22} {numbers['image MB']:>5} MB"
                f"  built in {numbers['build seconds']:>5} s"
            )
