"""Bad answers are refused with one clear line, and leave nothing on disk."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import TEMPLATE, load_hook

pre_gen = load_hook("pre_gen_project")

GOOD = {
    "project_name": "My Server",
    "project_slug": "my-server",
    "package_name": "my_server",
    "description": "A server.",
    "author": "Ada",
    "port": "9000",
}
BAD = [
    ("project_slug", "My Server", "project_slug 'My Server': use up to 50 lowercase"),
    ("project_slug", "../escape", "project_slug '../escape': use up to 50 lowercase"),
    (
        "project_slug",
        "srv'; rm -rf ~",
        'project_slug "srv\'; rm -rf ~": use up to 50 lowercase',
    ),
    ("project_slug", "sérveur", "project_slug 'sérveur': use up to 50 lowercase ASCII"),
    ("project_slug", "-server", "project_slug '-server': use up to 50 lowercase"),
    ("package_name", "my-server", "package_name 'my-server': use up to 50 lowercase"),
    ("package_name", "my/server", "package_name 'my/server': use up to 50 lowercase"),
    ("package_name", "9lives", "package_name '9lives': use up to 50 lowercase"),
    ("package_name", "class", "package_name 'class' is a Python keyword"),
    ("package_name", "match", "package_name 'match' is a Python keyword"),
    ("package_name", "socket", "package_name 'socket' would shadow the module"),
    ("package_name", "asyncio", "package_name 'asyncio' would shadow the module"),
    ("package_name", "pytest", "package_name 'pytest' would shadow the module"),
    ("port", "0", "port '0': use a whole number from 1 to 65535"),
    ("port", "65536", "port '65536': use a whole number from 1 to 65535"),
    ("port", "http", "port 'http': use a whole number from 1 to 65535"),
    ("port", "٩٠٠٠", "port '٩٠٠٠': use a whole number from 1 to 65535"),
    ("project_name", "My\aServer", "project_name 'My\\x07Server': use one line"),
    ("description", "two\nlines", "description 'two\\nlines': use one line"),
    ("project_name", "My\tServer", "project_name 'My\\tServer': use one line"),
    ("description", "```sh", "description '```sh': do not start it with ```"),
    ("description", " ~~~", "description ' ~~~': do not start it with ```"),
    ("description", "<!-- hidden", "description '<!-- hidden': do not start it"),
    (
        "project_slug",
        'x"""+__import__("os").system("exit 3")+"""',
        'project_slug \'x"""+__import__',
    ),
    ("author", "x" * 201, "author 'xxxx"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_the_hook_names_the_bad_answer_and_what_is_allowed(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(pre_gen.InvalidAnswer) as refused:
        pre_gen.validate({**GOOD, name: value})
    assert str(refused.value).startswith(message)


def test_the_hook_accepts_good_answers() -> None:
    pre_gen.validate(GOOD)


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_a_bad_answer_renders_nothing(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = subprocess.run(
        [
            "cookiecutter",
            str(TEMPLATE),
            "--no-input",
            "-o",
            str(tmp_path),
            f"{name}={value}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert f"error: {message}" in result.stderr
    assert not any(tmp_path.iterdir())


def test_a_choice_that_does_not_exist_is_refused(bake: Any) -> None:
    result = bake(concurrency="fork")
    assert result.exit_code != 0
    assert "fork provided for choice variable concurrency" in str(result.exception)
    assert "asyncio" in str(result.exception)


# Project names that could reach the file system through the slug made from them,
# and the slug each gives: None where the name is refused.
HOSTILE_NAMES = [
    ("my/server", "my-server"),
    ("../escape", "escape"),
    ("..", None),
    ("/etc", "etc"),
    ("a\\b", "a-b"),
    ("!!!", None),
    ("3D printer", None),
    ("x" * 120, "x" * 50),
    ("x" * 300, None),
]
# Slugs given as they are: each is refused.
HOSTILE_SLUGS = ["my/server", "..", ".", "", "a\\b", "/tmp/x", "x" * 300]


def render_into(tmp_path: Path, answer: str) -> subprocess.CompletedProcess[str]:
    """cookiecutter with one answer, into a folder of its own within tmp_path."""
    (tmp_path / "out").mkdir()
    return subprocess.run(
        [
            "cookiecutter",
            str(TEMPLATE),
            "--no-input",
            "-o",
            str(tmp_path / "out"),
            answer,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def left_on_disk(tmp_path: Path) -> list[str]:
    return sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))


@pytest.mark.parametrize(("name", "slug"), HOSTILE_NAMES)
def test_any_project_name_gives_a_valid_slug_or_a_refusal_leaving_nothing(
    tmp_path: Path, name: str, slug: str | None
) -> None:
    result = render_into(tmp_path, f"project_name={name}")
    if slug is None:
        assert result.returncode != 0
        assert "error: project_" in result.stderr
        assert left_on_disk(tmp_path) == ["out"]
    else:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out" / slug / "src" / slug.replace("-", "_")).is_dir()
        # The project, in the folder it was rendered into, and nothing beside it.
        assert [path.name for path in tmp_path.iterdir()] == ["out"]
        assert [path.name for path in (tmp_path / "out").iterdir()] == [slug]


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
def test_a_hostile_slug_is_refused_leaving_nothing(tmp_path: Path, slug: str) -> None:
    result = render_into(tmp_path, f"project_slug={slug}")
    assert result.returncode != 0
    assert "error: project_slug" in result.stderr
    assert left_on_disk(tmp_path) == ["out"]
