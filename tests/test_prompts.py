"""Answers typed at the prompts are text, never template code, and ``cookiecutter
--replay`` renders the same project again from the answers it recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from .helpers import CONTEXT, TEMPLATE, clean_environment

# Typed at the prompts; the rest keep their defaults.
TYPED: dict[str, Any] = {
    "project_name": "Quote Feed",
    "description": "{{ 7*7 }} {% if true %}x{% endif %} {{ cookiecutter.author }}",
    "author": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "protocol": "websocket",
    "concurrency": "threadpool",
    "include_docker": False,
}


def keyboard(answers: dict[str, Any]) -> str:
    """What a user types at cookiecutter's prompts, in their order: an empty line
    keeps the default, a choice is its number, a yes/no is y or n."""
    lines = []
    for name, default in CONTEXT.items():
        if name.startswith("_"):
            continue
        if name not in answers:
            lines.append("")
        elif isinstance(default, list):
            lines.append(str(default.index(answers[name]) + 1))
        elif isinstance(default, bool):
            lines.append("y" if answers[name] else "n")
        else:
            lines.append(answers[name])
    return "\n".join(lines) + "\n"


def cookiecutter(
    tmp_path: Path, *arguments: str | Path, typed: str = ""
) -> subprocess.CompletedProcess[str]:
    """cookiecutter with a user configuration of its own, so that its replay files
    stay in this test's directory."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(tmp_path / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(tmp_path / 'replay'))}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--config-file", config, *arguments],
        input=typed,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_typed_answers_are_text_not_template_code(tmp_path: Path) -> None:
    typed = cookiecutter(
        tmp_path, TEMPLATE, "-o", tmp_path / "typed", typed=keyboard(TYPED)
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr
    project = tmp_path / "typed" / "quote-feed"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["description"] == TYPED["description"]
    assert pyproject["authors"] == [{"name": TYPED["author"]}]
    assert f"\n{TYPED['description']}\n" in (project / "README.md").read_text()
    # The choices took effect too: what was typed is what was rendered.
    assert (project / "src/quote_feed/pages.py").is_file()
    assert (project / "src/quote_feed/pool.py").is_file()
    assert not (project / "Dockerfile").exists()


def test_replay_renders_the_same_project_again(tmp_path: Path) -> None:
    first = cookiecutter(
        tmp_path, TEMPLATE, "-o", tmp_path / "first", typed=keyboard(TYPED)
    )
    assert first.returncode == 0, first.stdout + first.stderr
    again = cookiecutter(tmp_path, "--replay", TEMPLATE, "-o", tmp_path / "again")
    assert again.returncode == 0, again.stdout + again.stderr
    rendered = tree(tmp_path / "first")
    assert "quote-feed/src/quote_feed/pool.py" in rendered
    assert tree(tmp_path / "again") == rendered
