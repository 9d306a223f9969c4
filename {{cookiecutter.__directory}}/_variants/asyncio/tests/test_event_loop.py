"""The server runs on uvloop when it is installed, on asyncio's own loop otherwise."""

from __future__ import annotations

import importlib.util
import re

from .serverprocess import ServerProcess


def test_names_the_event_loop_it_runs_on(server: ServerProcess) -> None:
    installed = importlib.util.find_spec("uvloop") is not None
    loop = "uvloop" if installed else "the standard event loop"
    server.wait_for_log(re.escape(f"with {loop})"))
