"""A project made with cruft takes in later template changes and keeps its own edits.

What a user does, step by step: ``cruft create`` from a git repository of the
template, commit, edit the code, then, once the template has moved on, ``cruft
check`` and ``cruft update``. The template repository is made here from the files
this checkout tracks, as they are on disk, so the test exercises the template as
it is now, and needs no network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .helpers import TEMPLATE, clean_environment, run

PROJECT = "{{cookiecutter.__directory}}"
# One cell per protocol (the files a user edits differ by protocol), each on another
# concurrency model.
CELLS = [
    pytest.param("tcp", "threaded", id="tcp-threaded"),
    pytest.param("http", "threadpool", id="http-threadpool"),
    pytest.param("websocket", "blocking", id="websocket-blocking"),
]
PROTOCOLS = [
    pytest.param(protocol, id=protocol) for protocol in ("tcp", "http", "websocket")
]
PACKAGE = "update_check"
NAME = "Update Check"
SUMMARY = re.compile(r"^=+ (?P<counts>.*) in [\d.]+s", re.MULTILINE)


def git_environment(home: Path) -> dict[str, str]:
    """Git with a known identity, and none of this machine's settings."""
    (home / "gitconfig").touch()
    return clean_environment() | {
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


class Session:
    """Commands run as the user runs them, in one environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.environment = git_environment(tmp_path)

    def call(self, *command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            env=self.environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def ok(self, *command: str | Path, cwd: Path) -> str:
        result = self.call(*command, cwd=cwd)
        assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    def cruft(
        self, *arguments: str | Path, cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        return self.call(sys.executable, "-m", "cruft", *arguments, cwd=cwd)

    def commit(self, repository: Path, message: str) -> None:
        self.ok("git", "add", "-A", cwd=repository)
        self.ok("git", "commit", "-q", "-m", message, cwd=repository)

    def template_repository(self) -> Path:
        """A git repository holding this template's tracked files, as on disk."""
        repository = self.tmp / "template"
        tracked = self.ok("git", "ls-files", "-z", cwd=TEMPLATE).split("\0")
        for name in filter(None, tracked):
            source = TEMPLATE / name
            if source.is_file():  # a tracked file deleted on disk stays deleted
                target = repository / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)  # with its mode
        self.ok("git", "init", "-q", "-b", "main", cwd=repository)
        self.commit(repository, "The template at its current commit")
        return repository

    def create(self, template: Path, protocol: str, model: str, into: str) -> Path:
        """``cruft create``, then the project's first commit, as its README says."""
        answers = {"project_name": NAME, "protocol": protocol, "concurrency": model}
        output = self.tmp / into
        result = self.cruft(
            "create",
            template,
            "--no-input",
            "--output-dir",
            output,
            "--extra-context",
            json.dumps(answers),
            cwd=self.tmp,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        project = output / "update-check"
        # A git repository already, made by the template: nothing committed yet.
        assert self.ok("git", "status", "--porcelain", cwd=project)
        self.commit(project, "Render from the template")
        return project


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of ``old``: an edit that cannot silently miss."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# What a user adds: a command, message or route, its test, and a line of README.
MARCO_TEST = """

def test_answers_marco_with_polo() -> None:
    assert handle("marco") == "polo"
"""
USER_CODE: dict[str, Callable[[Path], None]] = {
    "tcp": lambda project: (
        edit(
            project / f"src/{PACKAGE}/handler.py",
            "    return line\n",
            '    if line == "marco":\n        return "polo"\n    return line\n',
        ),
        append(project / "tests/test_handler.py", MARCO_TEST),
    ),
    "websocket": lambda project: (
        edit(
            project / f"src/{PACKAGE}/handler.py",
            "    return message\n",
            '    if message == "marco":\n        return "polo"\n    return message\n',
        ),
        append(project / "tests/test_handler.py", MARCO_TEST),
    ),
    "http": lambda project: (
        edit(
            project / f"src/{PACKAGE}/app.py",
            '    @app.get("/healthz")\n',
            '    @app.get("/marco")\n'
            "    def marco() -> Response:\n"
            '        return Response("polo\\n", mimetype="text/plain")\n'
            "\n"
            '    @app.get("/healthz")\n',
        ),
        append(
            project / "tests/test_app.py",
            "\n\ndef test_answers_marco_with_polo() -> None:\n"
            '    assert client().get("/marco").text == "polo\\n"\n',
        ),
    ),
}
USER_TESTS = {
    "tcp": "tests/test_handler.py::test_answers_marco_with_polo",
    "websocket": "tests/test_handler.py::test_answers_marco_with_polo",
    "http": "tests/test_app.py::test_answers_marco_with_polo",
}


def user_edit(protocol: str, project: Path) -> None:
    USER_CODE[protocol](project)
    append(project / "README.md", "\n## Marco\n\n`marco` answers `polo`.\n")


def template_change(template: Path) -> None:
    """A new setting, its test and its row in every README's table of settings."""
    project = template / PROJECT
    edit(
        project / "src/{{cookiecutter.package_name}}/config.py",
        '    log_format: str = setting("text", "log format", choices=LOG_FORMATS)\n',
        '    log_format: str = setting("text", "log format", choices=LOG_FORMATS)\n'
        '    log_utc: bool = setting(False, "log times in UTC, not local time")\n',
    )
    append(
        project / "tests/test_config.py",
        "\n\ndef test_log_times_are_local_unless_utc_is_asked_for() -> None:\n"
        "    assert load(Settings, [], {}).log_utc is False\n"
        '    assert load(Settings, ["--log-utc", "yes"], {}).log_utc is True\n',
    )
    for readme in project.glob("_variants/*/README.md"):
        row = next(
            line for line in readme.read_text().splitlines() if "`--log-format`" in line
        )
        edit(
            readme,
            row + "\n",
            row + "\n| `--log-utc` | `{{ prefix }}LOG_UTC` | `false` "
            "| log times in UTC, not local time |\n",
        )


TEMPLATE_TEST = "tests/test_config.py::test_log_times_are_local_unless_utc_is_asked_for"


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a project but git's and cruft's own records."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
        and ".git" not in path.relative_to(root).parts
        and path.name != ".cruft.json"
    }


def unmerged(session: Session, project: Path) -> list[str]:
    return session.ok(
        "git", "diff", "--name-only", "--diff-filter=U", cwd=project
    ).split()


@pytest.mark.parametrize(("protocol", "model"), CELLS)
def test_update_brings_the_template_change_and_keeps_the_users_edit(
    tmp_path: Path, protocol: str, model: str
) -> None:
    session = Session(tmp_path)
    template = session.template_repository()
    project = session.create(template, protocol, model, into="work")
    assert session.cruft("check", cwd=project).returncode == 0

    user_edit(protocol, project)
    session.commit(project, "Answer marco")
    template_change(template)
    session.commit(template, "Add a log_utc setting")
    head = session.ok("git", "rev-parse", "HEAD", cwd=template).strip()

    behind = session.cruft("check", cwd=project)
    assert behind.returncode == 1
    assert "out of date" in behind.stdout
    update = session.cruft("update", "-y", cwd=project)
    assert update.returncode == 0, update.stdout + update.stderr
    assert "conflicts" not in update.stdout + update.stderr

    # Exactly what the new template renders, with the user's edit on top of it.
    expected = session.create(template, protocol, model, into="fresh")
    user_edit(protocol, expected)
    assert tree(project) == tree(expected)
    assert unmerged(session, project) == []
    assert not list(project.rglob("*.rej"))
    assert json.loads((project / ".cruft.json").read_text())["commit"] == head
    check = session.cruft("check", cwd=project)
    assert check.returncode == 0, check.stdout + check.stderr
    session.commit(project, "Update from the template")

    # The project's whole suite passes, the new tests of both sides among it.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    run([venv / "bin/python", "-m", "pip", "install", "--quiet", ".[test]"], project)
    output = run([venv / "bin/pytest", "-v", "-p", "no:cacheprovider"], cwd=project)
    assert re.fullmatch(r"\d+ passed", SUMMARY.findall(output)[-1]), output
    for test in (USER_TESTS[protocol], TEMPLATE_TEST):
        assert f"{test} PASSED" in output, output


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_edit_and_a_change_of_the_same_line_is_a_conflict_not_a_loss(
    tmp_path: Path, protocol: str
) -> None:
    session = Session(tmp_path)
    template = session.template_repository()
    project = session.create(template, protocol, "threaded", into="work")
    config = f"src/{PACKAGE}/config.py"
    # The user sets the drain to 10 s; the template changes the same default.
    edit(project / config, "        30.0,\n", "        10.0,\n")
    session.commit(project, "Drain for 10 s")
    edit(
        template / PROJECT / "src/{{cookiecutter.package_name}}/config.py",
        "        30.0,\n",
        "        20.0,\n",
    )
    readme = template / PROJECT / f"_variants/{protocol}/README.md"
    edit(readme, "SHUTDOWN_TIMEOUT` | `30` |", "SHUTDOWN_TIMEOUT` | `20` |")
    session.commit(template, "Drain for 20 s")

    update = session.cruft("update", "-y", cwd=project)
    reported = update.stdout + update.stderr
    # cruft 2.16 leaves the merge to `git apply -3`: it names the file and says
    # "with conflicts", yet exits 0 and records the update as done. Hence the
    # README's advice: read `git status` after every update.
    assert update.returncode == 0, reported
    assert f"Applied patch to '{config}' with conflicts." in reported
    assert f"U {config}" in reported
    assert unmerged(session, project) == [config]
    assert (
        "<<<<<<< ours\n        10.0,\n=======\n        20.0,\n>>>>>>> theirs\n"
        in (project / config).read_text()
    )
    # What did not conflict arrived.
    assert "SHUTDOWN_TIMEOUT` | `20` |" in (project / "README.md").read_text()
    assert session.cruft("check", cwd=project).returncode == 0

    # Resolved as the README says: keep a side, drop the markers, commit it all.
    edit(
        project / config,
        "<<<<<<< ours\n        10.0,\n=======\n        20.0,\n>>>>>>> theirs\n",
        "        10.0,\n",
    )
    session.commit(project, "Update from the template; keep the 10 s drain")
    assert session.ok("git", "status", "--porcelain", cwd=project) == ""
    compile((project / config).read_text(), config, "exec")


# What the update tests above run and see, which the READMEs must tell the user.
UPDATE_WORDS = (
    "cruft create",
    "cruft check",
    "cruft update -y",
    "git status",
    "<<<<<<< ours",
    ">>>>>>> theirs",
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_readme_says_how_to_update_and_resolve_a_conflict(
    bake: Any, protocol: str
) -> None:
    readme = (bake(protocol=protocol).project_path / "README.md").read_text()
    section = readme.partition("\n## Keeping up with the template\n")[2]
    section = section.partition("\n## ")[0]
    for words in (*UPDATE_WORDS, ".rej", "cruft link"):
        assert words in section, words


def test_the_template_readme_says_how_to_keep_a_project_up_to_date() -> None:
    readme = (TEMPLATE / "README.md").read_text()
    section = readme.partition("\n## Keeping a project up to date\n")[2]
    section = section.partition("\n## ")[0]
    for words in UPDATE_WORDS:
        assert words in section, words
