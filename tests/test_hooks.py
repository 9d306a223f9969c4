"""The post-gen hook assembles a cell from its layers, and only from them."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from .helpers import CONTEXT, MODELS, PROTOCOLS, TEMPLATE, load_hook

post_gen = load_hook("post_gen_project")
VARIANTS = TEMPLATE / "{{cookiecutter.__directory}}" / post_gen.VARIANTS


def test_every_model_has_layers() -> None:
    assert set(post_gen.LAYERS) == set(MODELS)


def test_every_layer_folder_belongs_to_some_cell() -> None:
    used = {
        layer
        for protocol in PROTOCOLS
        for model in MODELS
        for layer in post_gen.layers(protocol, model)
    }
    assert {folder.name for folder in VARIANTS.iterdir()} <= used


def test_every_cell_has_its_own_server(tmp_path: Path) -> None:
    for protocol in PROTOCOLS:
        for model in MODELS:
            assert (VARIANTS / f"{protocol}-{model}").is_dir(), (protocol, model)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_layers_are_merged_and_the_rest_dropped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "",
            ".dockerignore": "",
            "deploy/compose.yaml": "",
            "deploy/haproxy.cfg": "",
            "deploy/prometheus.yml": "",
            "deploy/k8s/kustomization.yaml": "",
            "deploy/k8s/deployment.yaml": "",
            "_variants/tcp/tests/test_server.py": "shared",
            "_variants/tcp-threads/src/pkg/conversation.py": "threads",
            "_variants/tcp-blocking/src/pkg/server.py": "blocking",
            "_variants/tcp-asyncio/src/pkg/server.py": "asyncio",
        },
    )
    post_gen.assemble(tmp_path, "tcp", "blocking", include_docker=False)
    files = {
        str(path.relative_to(tmp_path)): path.read_text()
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    assert files == {
        "tests/test_server.py": "shared",
        "src/pkg/conversation.py": "threads",
        "src/pkg/server.py": "blocking",
    }
    assert not (tmp_path / "deploy").exists()  # no empty folder left behind


def test_two_layers_offering_one_file_is_an_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "_variants/tcp/src/pkg/server.py": "shared",
            "_variants/tcp-asyncio/src/pkg/server.py": "asyncio",
        },
    )
    with pytest.raises(FileExistsError, match=r"src/pkg/server\.py is offered by two"):
        post_gen.assemble(tmp_path, "tcp", "asyncio", include_docker=True)


def test_a_new_render_replaces_the_files_of_an_earlier_one(tmp_path: Path) -> None:
    """``cookiecutter -f`` renders over an existing project."""
    write(
        tmp_path,
        {
            "src/pkg/server.py": "earlier render",
            "_variants/tcp-asyncio/src/pkg/server.py": "asyncio",
        },
    )
    post_gen.assemble(tmp_path, "tcp", "asyncio", include_docker=True)
    assert (tmp_path / "src/pkg/server.py").read_text() == "asyncio"


# The first line of each license's text, as it is published.
LICENSE_TITLES = {
    "MIT": "MIT License",
    "Apache-2.0": "Apache License",
    "BSD-3-Clause": "BSD 3-Clause License",
    "GPL-3.0-or-later": "GNU GENERAL PUBLIC LICENSE",
}


@pytest.mark.parametrize("spdx", CONTEXT["license"])
def test_the_chosen_license_is_the_projects(bake: Any, spdx: str) -> None:
    result = bake(license=spdx, author="Ada Lovelace")
    project = result.project_path
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert not (project / post_gen.LICENSES).exists()
    if spdx == "none":
        assert not (project / "LICENSE").exists()
        assert "license" not in metadata
        return
    text = (project / "LICENSE").read_text()
    assert text.strip().startswith(LICENSE_TITLES[spdx])
    assert metadata["license"] == spdx
    if spdx in {"MIT", "BSD-3-Clause"}:  # the texts that name the holder
        assert "Ada Lovelace" in text


def git(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *arguments], cwd=project, capture_output=True, text=True, check=False
    )


def test_the_project_is_a_git_repository_with_nothing_committed(bake: Any) -> None:
    project = bake().project_path
    assert git(project, "rev-parse", "--show-toplevel").stdout.strip() == str(project)
    assert git(project, "rev-parse", "--verify", "HEAD").returncode != 0  # no commit
    untracked = git(project, "status", "--porcelain").stdout.splitlines()
    assert "?? pyproject.toml" in untracked
    # What the project ignores is not offered to the first commit.
    (project / ".venv").mkdir()
    assert "?? .venv/" not in git(project, "status", "--porcelain").stdout


def test_git_init_can_be_declined(bake: Any) -> None:
    assert not (bake(git_init=False).project_path / ".git").exists()


def test_without_git_the_project_is_rendered_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(post_gen.shutil, "which", lambda name: None)
    assert "git is not installed" in (post_gen.init_git(tmp_path) or "")
    assert not (tmp_path / ".git").exists()
