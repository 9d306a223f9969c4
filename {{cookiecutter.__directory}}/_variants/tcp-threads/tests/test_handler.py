"""Unit tests of the handler: plain calls, no server."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.handler import handle


def test_echoes_the_line() -> None:
    assert handle("hello") == "hello"


def test_keeps_unicode_and_blank_lines() -> None:
    assert handle("héllo wörld ✓") == "héllo wörld ✓"
    assert handle("") == ""
