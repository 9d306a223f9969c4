"""Every combination of answers renders a complete, clean project."""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from .helpers import CONTEXT, MODELS, PROTOCOLS, assert_lint_clean

JINJA = re.compile(r"{{|}}|{%|%}|{#|#}")
EVERY_ANSWER = [
    pytest.param(protocol, model, docker, id=f"{protocol}-{model}-docker={docker}")
    for protocol, model, docker in itertools.product(PROTOCOLS, MODELS, [True, False])
]
# The files every cell has, and those that belong to some models only.
COMMON_FILES = {
    "README.md",
    "pyproject.toml",
    ".gitignore",
    ".github/workflows/ci.yml",
    ".pre-commit-config.yaml",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/config.py",
    "src/{package}/healthcheck.py",
    "src/{package}/logs.py",
    "src/{package}/server.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_command.py",
    "tests/serverprocess.py",
    "tests/test_config.py",
}
PROTOCOL_FILES = {
    "tcp": {
        "src/{package}/handler.py",
        "src/{package}/protocol.py",
        "src/{package}/probe.py",
        "tests/handlers.py",
        "tests/test_handler.py",
        "tests/lineclient.py",
        "tests/test_protocol.py",
        "tests/test_server.py",
    },
    "http": {
        "src/{package}/app.py",
        "src/{package}/limits.py",
        "src/{package}/probe.py",
        "tests/apps.py",
        "tests/test_app.py",
        "tests/test_server.py",
    },
    "websocket": {
        "src/{package}/handler.py",
        "src/{package}/limits.py",
        "src/{package}/pages.py",
        "src/{package}/demo.html",
        "src/{package}/probe.py",
        "tests/handlers.py",
        "tests/test_handler.py",
        "tests/wsclient.py",
        "tests/test_server.py",
    },
}
# The same for every protocol: each model brings the same modules and tests.
MODEL_FILES = {
    "asyncio": {
        "src/{package}/eventloop.py",
        "tests/gathering.py",
        "tests/test_concurrency.py",
        "tests/test_event_loop.py",
    },
    "threadpool": {
        "src/{package}/base.py",
        "src/{package}/threads.py",
        "src/{package}/pool.py",
        "tests/gathering.py",
        "tests/test_concurrency.py",
        "tests/test_pool.py",
    },
    "threaded": {
        "src/{package}/base.py",
        "src/{package}/threads.py",
        "tests/gathering.py",
        "tests/test_concurrency.py",
    },
    "blocking": {
        "src/{package}/base.py",
        "src/{package}/threads.py",
        "tests/gathering.py",
        "tests/test_blocking.py",
    },
}
DOCKER_FILES = {"Dockerfile", ".dockerignore"}


def files_of(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize(("protocol", "model", "docker"), EVERY_ANSWER)
def test_every_answer_renders_exactly_its_files(
    bake: Any, protocol: str, model: str, docker: bool
) -> None:
    result = bake(protocol=protocol, concurrency=model, include_docker=docker)
    assert result.exit_code == 0, result.exception
    package = result.context["package_name"]
    expected = COMMON_FILES | PROTOCOL_FILES[protocol] | MODEL_FILES[model]
    if docker:
        expected |= DOCKER_FILES
    assert files_of(result.project_path) == {
        name.format(package=package) for name in expected
    }


@pytest.mark.parametrize(("protocol", "model", "docker"), EVERY_ANSWER)
def test_no_template_syntax_is_left(
    bake: Any, protocol: str, model: str, docker: bool
) -> None:
    project = bake(protocol=protocol, concurrency=model, include_docker=docker)
    for path in project.project_path.rglob("*"):
        if path.is_file():
            assert not JINJA.search(path.read_text()), path


@pytest.mark.parametrize(("protocol", "model", "docker"), EVERY_ANSWER)
def test_rendered_code_is_lint_clean_and_formatted(
    bake: Any, protocol: str, model: str, docker: bool
) -> None:
    project = bake(protocol=protocol, concurrency=model, include_docker=docker)
    assert_lint_clean(project.project_path)


def test_the_defaults_render_a_working_project(bake: Any) -> None:
    """What ``cookiecutter --no-input`` gives: the first choice of every prompt."""
    result = bake()
    assert result.exit_code == 0, result.exception
    assert result.project_path.name == "my-server"
    context = result.context
    assert (context["protocol"], context["concurrency"]) == (PROTOCOLS[0], MODELS[0])
    assert context["port"] == "9000"
    pyproject = tomllib.loads((result.project_path / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"my-server": "my_server.__main__:main"}


def test_names_derive_from_the_project_name(bake: Any) -> None:
    result = bake(project_name="Order Book_Feed")
    assert result.exit_code == 0, result.exception
    assert result.context["project_slug"] == "order-book-feed"
    assert result.context["package_name"] == "order_book_feed"
    assert (result.project_path / "src/order_book_feed/server.py").is_file()


def test_long_names_stay_lint_clean(bake: Any) -> None:
    result = bake(project_name="A Very Long Name For The Internal Market Data Feed")
    assert result.exit_code == 0, result.exception
    assert_lint_clean(result.project_path)


@pytest.mark.parametrize(
    "text",
    [
        'A "quoted" \\ backslashed description',
        "It's '''triple''' and \"\"\"triple\"\"\" quoted",
        "__import__('os').system('touch /tmp/pwned')",
    ],
)
def test_free_text_answers_reach_files_as_data(bake: Any, text: str) -> None:
    result = bake(description=text, author=text)
    assert result.exit_code == 0, result.exception
    pyproject = tomllib.loads((result.project_path / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == text
    assert pyproject["project"]["authors"] == [{"name": text}]
    assert text in (result.project_path / "README.md").read_text()


def test_ports_default_by_protocol() -> None:
    """The default port follows the protocol chosen before it."""
    assert "cookiecutter.protocol" in CONTEXT["port"]
    assert list(CONTEXT).index("protocol") < list(CONTEXT).index("port")


def test_every_prompt_is_worded_for_people() -> None:
    questions = {name for name in CONTEXT if not name.startswith("_")}
    prompts = CONTEXT["__prompts__"]
    assert questions == set(prompts)
    for name in ("protocol", "concurrency"):
        assert set(prompts[name]) - {"__prompt__"} == set(CONTEXT[name])
