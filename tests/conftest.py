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
