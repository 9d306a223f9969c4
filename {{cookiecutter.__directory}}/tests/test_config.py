"""Settings: flags over environment over defaults, validated, and documented."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import (
    ConfigError,
    env_var,
    flag,
    load,
)
from {{ cookiecutter.package_name }}.server import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_apply_without_flags_or_environment() -> None:
    assert load(Settings, [], {}) == Settings()


def test_flags_override_the_environment() -> None:
    environ = {"HOST": "0.0.0.0", "PORT": "8000", env_var("log_level"): "debug"}
    settings = load(Settings, ["--port", "8001"], environ)
    assert (settings.host, settings.port, settings.log_level) == (
        "0.0.0.0",
        8001,
        "DEBUG",
    )


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("port", "65536", "a whole number from 0 to 65535"),
        ("port", "8080.5", "a whole number from 0 to 65535"),
        ("shutdown_timeout", "nan", "a number from 0 to 86400"),
        ("idle_timeout", "inf", "a number from 0.001 to 86400"),
        ("idle_timeout", "1e400", "a number from 0.001 to 86400"),
        ("log_format", "xml", "one of text, json"),
        ("workers", "0", "a whole number from 1 to 1024, or auto"),
    ],
)
def test_a_bad_value_names_its_variable_and_what_is_allowed(
    name: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(Settings, [], {env_var(name): value})
    assert str(refused.value) == f"{env_var(name)}={value!r}: expected {allowed}"


def test_auto_workers_are_one_per_usable_cpu() -> None:
    if not hasattr(os, "sched_setaffinity"):  # not on Linux: every CPU is usable
        assert load(Settings, ["--workers", "auto"], {}).workers == os.cpu_count()
        return
    usable = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(usable)})  # as taskset or a cpuset would
        assert load(Settings, ["--workers", "auto"], {}).workers == 1
    finally:
        os.sched_setaffinity(0, usable)


def test_readme_documents_every_setting_with_its_default() -> None:
    rows = {
        line.split("|")[1].strip(" `"): [
            cell.strip(" `") for cell in line.split("|")[2:4]
        ]
        for line in README.read_text().splitlines()
        if line.startswith("| `--")
    }
    expected = {
        flag(field.name): [env_var(field.name), readable(field.default)]
        for field in dataclasses.fields(Settings)
    }
    assert rows == expected


def readable(default: object) -> str:
    """A default as the README writes it."""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    return str(default) or "unset"
