"""Assemble the chosen cell from its layers, then drop everything that was not chosen.

Files every project has sit at their final place in the template. The rest is
rendered under ``_variants/``, one folder per layer, each folder mirroring the
project tree. A cell's layers, most general first:

    asyncio/                (asyncio) the event loop, any protocol
    threads/                (thread models) conversations, signals, stop, any protocol
    threadpool/             (threadpool) the I/O loop and the pool, any protocol
    connection/             (threaded, blocking) a thread serves a connection
    concurrent/             (models serving many clients at once) crowds for tests
    <protocol>/             shared by every model of the protocol: limits, tests
    <protocol>-threads/     shared by its thread models: the conversation, handler
    <protocol>-concurrent/  shared by its models serving many clients at once: tests
    <protocol>-<model>/     the model itself: server.py

A layer that a protocol does not need has no folder. Every file comes from exactly
one layer; two layers offering the same path is a template bug and fails loudly.
Then the chosen license becomes LICENSE, and the folder a git repository.
Plain Python otherwise: the template's tests import it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ANSWERS = r"""{{ {
    "protocol": cookiecutter.protocol,
    "concurrency": cookiecutter.concurrency,
    "include_docker": cookiecutter.include_docker,
    "license": cookiecutter.license,
    "git_init": cookiecutter.git_init,
} | tojson }}"""

# For each model: the layers any protocol shares, then those of the protocol.
LAYERS = {
    "asyncio": (("asyncio", "concurrent"), ("concurrent", "asyncio")),
    "threadpool": (
        ("threads", "threadpool", "concurrent"),
        ("threads", "concurrent", "threadpool"),
    ),
    "threaded": (
        ("threads", "connection", "concurrent"),
        ("threads", "concurrent", "threaded"),
    ),
    "blocking": (("threads", "connection"), ("threads", "blocking")),
}
VARIANTS = "_variants"
# One file a license, named by its SPDX identifier.
LICENSES = "_licenses"
# What only a project with a Dockerfile has: the manifests and the replicas
# behind HAProxy run its image.
DOCKER_FILES = (
    "Dockerfile",
    ".dockerignore",
    "deploy/k8s",
    "deploy/compose.yaml",
    "deploy/haproxy.cfg",
    "deploy/prometheus.yml",
)


def layers(protocol: str, concurrency: str) -> list[str]:
    """The layer folders of one cell, most general first."""
    shared, own = LAYERS[concurrency]
    return [*shared, protocol, *(f"{protocol}-{name}" for name in own)]


def assemble(
    project: Path, protocol: str, concurrency: str, include_docker: bool
) -> None:
    """Move the cell's layers into place and delete every other variant."""
    variants = project / VARIANTS
    placed: set[Path] = set()
    for layer in layers(protocol, concurrency):
        source = variants / layer
        if not source.is_dir():
            continue
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            target = project / path.relative_to(source)
            if target in placed:
                raise FileExistsError(
                    f"{target.relative_to(project)} is offered by two layers"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)  # over a file of an earlier render (cookiecutter -f)
            placed.add(target)
    shutil.rmtree(variants)
    if not include_docker:
        for name in DOCKER_FILES:
            path = project / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            if not any(path.parent.iterdir()):  # deploy/ with nothing left
                path.parent.rmdir()


def place_license(project: Path, spdx: str) -> None:
    """Make the chosen license the project's LICENSE ("none": no file)."""
    licenses = project / LICENSES
    if spdx != "none":
        (licenses / spdx).replace(project / "LICENSE")
    shutil.rmtree(licenses)


def init_git(project: Path) -> str | None:
    """Make the project a git repository, with no commit; a note if it cannot."""
    git = shutil.which("git")
    if git is None:
        return "git is not installed: run `git init` here once it is"
    result = subprocess.run(
        [git, "init", "--quiet", "--initial-branch=main"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return f"`git init` failed, run it yourself: {result.stderr.strip()}"
    return None


def main() -> int:
    answers = json.loads(ANSWERS)
    project = Path.cwd()
    assemble(
        project,
        answers["protocol"],
        answers["concurrency"],
        answers["include_docker"],
    )
    place_license(project, answers["license"])
    if answers["git_init"] and (note := init_git(project)) is not None:
        print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
