"""Every combination of answers renders a complete, clean project."""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from .helpers import CONTEXT, MODELS, PROTOCOLS, assert_lint_clean

JINJA = re.compile(r"{{|}}|{%|%}|{#|#}")
EVERY_ANSWER = [
    pytest.param(protocol, model, docker, id=f"{protocol}-{model}-docker={docker}")
    for protocol, model, docker in itertools.product(PROTOCOLS, MODELS, [True, False])
]
# The files every cell has, and those that belong to some models only.
COMMON_FILES = {
    "README.md",
    "LICENSE",
    "pyproject.toml",
    "uv.lock",
    ".gitignore",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".pre-commit-config.yaml",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/config.py",
    "src/{package}/healthcheck.py",
    "src/{package}/logs.py",
    "src/{package}/metrics.py",
    "src/{package}/server.py",
    "src/{package}/tls.py",
    "src/{package}/workers.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/counted.py",
    "tests/test_command.py",
    "tests/serverprocess.py",
    "tests/test_config.py",
    "tests/test_metrics.py",
    "tests/test_stop.py",
    "tests/test_tls.py",
    "tests/test_workers.py",
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
        "tests/crowds.py",
        "tests/test_descriptors.py",
        "tests/gathering.py",
        "tests/test_concurrency.py",
        "tests/test_event_loop.py",
    },
    "threadpool": {
        "src/{package}/conversation.py",
        "src/{package}/threads.py",
        "src/{package}/pool.py",
        "tests/crowds.py",
        "tests/test_descriptors.py",
        "tests/gathering.py",
        "tests/test_concurrency.py",
        "tests/test_pool.py",
    },
    "threaded": {
        "src/{package}/conversation.py",
        "src/{package}/threads.py",
        "src/{package}/connection.py",
        "tests/crowds.py",
        "tests/test_descriptors.py",
        "tests/gathering.py",
        "tests/test_concurrency.py",
    },
    "blocking": {
        "src/{package}/conversation.py",
        "src/{package}/threads.py",
        "src/{package}/connection.py",
        "tests/gathering.py",
        "tests/test_blocking.py",
    },
}
# What a protocol adds in its thread models only: the bridge to WSGI, and the
# tests of the parts without I/O.
THREAD_MODEL_FILES = {
    "http": {"src/{package}/wsgi.py", "tests/test_wsgi.py", "tests/test_drain.py"},
    "websocket": {"tests/test_conversation.py"},
}
# The Kubernetes manifests and the replicas behind HAProxy run the image, so they
# come with the Dockerfile.
DOCKER_FILES = {
    "Dockerfile",
    ".dockerignore",
    "deploy/compose.yaml",
    "deploy/haproxy.cfg",
    "deploy/prometheus.yml",
    "deploy/k8s/kustomization.yaml",
    "deploy/k8s/deployment.yaml",
    "deploy/k8s/service.yaml",
    "deploy/k8s/hpa.yaml",
    "deploy/k8s/pdb.yaml",
    "deploy/k8s/tls/kustomization.yaml",
    "deploy/k8s/tls/deployment.yaml",
}


def files_of(project: Path) -> set[str]:
    """The project's own files: not git's, which the hook makes it a repository."""
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file()
        and not {"__pycache__", ".git"} & set(path.relative_to(project).parts)
    }


@pytest.mark.parametrize(("protocol", "model", "docker"), EVERY_ANSWER)
def test_every_answer_renders_exactly_its_files(
    bake: Any, protocol: str, model: str, docker: bool
) -> None:
    result = bake(protocol=protocol, concurrency=model, include_docker=docker)
    assert result.exit_code == 0, result.exception
    package = result.context["package_name"]
    expected = COMMON_FILES | PROTOCOL_FILES[protocol] | MODEL_FILES[model]
    if model != "asyncio":
        expected |= THREAD_MODEL_FILES.get(protocol, set())
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
    for name in files_of(project.project_path):
        path = project.project_path / name
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


# Free text a user might type, or paste from somewhere hostile: each payload tries
# to create the file "{marker}" stands for, which would exist had it run as code.
FREE_TEXT = [
    'A "quoted" \\ backslashed description',
    "It's '''triple''' and \"\"\"triple\"\"\" quoted",
    "Ends with a backslash \\",
    "__import__('os').system('touch {marker}')",
    '"""; __import__("os").system("touch {marker}"); r"""',
    "\\\"}}; import os; os.system('touch {marker}')  # a comment",
    "*Not* a list: [a link](javascript:alert(1)) | a | pipe |",
]


def outline(readme: str) -> list[str]:
    """The README's headings, in order: what a runaway block would swallow."""
    tokens = MarkdownIt("commonmark").parse(readme)
    return [
        tokens[index + 1].content
        for index, token in enumerate(tokens)
        if token.type == "heading_open"
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("text", FREE_TEXT)
def test_free_text_answers_reach_files_as_data(
    bake: Any, tmp_path: Path, text: str, protocol: str
) -> None:
    marker = tmp_path / "payload-ran"
    text = text.replace("{marker}", str(marker))
    result = bake(
        protocol=protocol,
        project_name=text,
        project_slug="free-text",
        description=text,
        author=text,
    )
    assert result.exit_code == 0, result.exception
    assert not marker.exists(), "an answer ran as code"
    project = result.project_path
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == text
    assert pyproject["project"]["authors"] == [{"name": text}]
    # In the README the name is the title, the description the paragraph after
    # it, and every heading of a plain render follows.
    readme = (project / "README.md").read_text()
    tokens = MarkdownIt("commonmark").parse(readme)
    assert [token.type for token in tokens[:5]] == [
        "heading_open",
        "inline",
        "heading_close",
        "paragraph_open",
        "inline",
    ]
    assert (tokens[1].content, tokens[4].content) == (text, text)
    plain = bake(protocol=protocol, project_slug="free-text").project_path
    assert outline(readme)[1:] == outline((plain / "README.md").read_text())[1:]
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    assert set(workflow["jobs"]) == {"test", "docker"}
    assert_lint_clean(project)


def test_ports_default_by_protocol() -> None:
    """The default port follows the protocol chosen before it."""
    assert "cookiecutter.protocol" in CONTEXT["port"]
    assert list(CONTEXT).index("protocol") < list(CONTEXT).index("port")


def test_every_prompt_is_worded_for_people() -> None:
    questions = {name for name in CONTEXT if not name.startswith("_")}
    prompts = CONTEXT["__prompts__"]
    assert questions == set(prompts)
    for name in ("license", "protocol", "concurrency"):
        assert set(prompts[name]) - {"__prompt__"} == set(CONTEXT[name])
    for model in CONTEXT["concurrency"]:  # each says when to pick it
        assert "; pick it " in prompts["concurrency"][model], model
    # The default first, then from newest to oldest.
    versions = [tuple(map(int, v.split("."))) for v in CONTEXT["python_version"]]
    assert versions == sorted(versions, reverse=True)
