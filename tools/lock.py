"""Write the uv.lock that each rendered project ships, one per set of dependencies.

A project's lock depends on its protocol and on whether its model is asyncio
(the uvloop extra), not on the other answers: six locks cover the twelve cells.
Each lives in the layer that sets those dependencies, with the project's own name
as a template variable. Run after a dependency in the rendered pyproject.toml
changes (the template's tests fail until then), and now and then with
``--upgrade`` to take new releases:

    python tools/lock.py [--upgrade]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
VARIANTS = TEMPLATE / "{{cookiecutter.__directory}}" / "_variants"
# A name that appears nowhere else in a lock: it becomes the template variable.
PLACEHOLDER = "locked-placeholder-project"
SLUG = "{{ cookiecutter.project_slug }}"
# The layer holding each lock, and a cell that uses it.
LOCKS = {
    f"{protocol}-{layer}": (protocol, model)
    for protocol in ("tcp", "http", "websocket")
    for layer, model in (("asyncio", "asyncio"), ("threads", "threadpool"))
}


def lock_path(layer: str) -> Path:
    return VARIANTS / layer / "uv.lock"


def render(protocol: str, model: str, output: Path) -> Path:
    """A project of this cell, named by the placeholder, with no git repository."""
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(output),
            extra_context={
                "project_name": PLACEHOLDER,
                "protocol": protocol,
                "concurrency": model,
                "git_init": False,
            },
        )
    )


def relock(layer: str, upgrade: bool) -> None:
    protocol, model = LOCKS[layer]
    with tempfile.TemporaryDirectory() as scratch:
        # The project comes with the current lock, whose versions uv keeps
        # unless told to upgrade.
        project = render(protocol, model, Path(scratch))
        uv = shutil.which("uv") or sys.exit("uv is not installed: pip install uv")
        subprocess.run(
            [uv, "lock", *(["--upgrade"] if upgrade else [])], cwd=project, check=True
        )
        text = (project / "uv.lock").read_text()
    lock_path(layer).write_text(text.replace(PLACEHOLDER, SLUG))
    print(f"{lock_path(layer).relative_to(TEMPLATE)}: locked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument(
        "--upgrade", action="store_true", help="take the newest allowed releases"
    )
    arguments = parser.parse_args()
    for layer in LOCKS:
        relock(layer, arguments.upgrade)


if __name__ == "__main__":
    main()
