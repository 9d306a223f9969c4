"""Unit tests of the handler: plain calls, no server."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.handler import handle


def test_echoes_text_as_text() -> None:
    assert handle("héllo wörld ✓") == "héllo wörld ✓"


def test_echoes_binary_as_binary() -> None:
    assert handle(b"\x00\xff") == b"\x00\xff"
