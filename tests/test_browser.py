"""The demo page of each WebSocket cell, in a real browser: headless Chromium.

Each cell is rendered and installed as a user would, its server started with its
own command, plain and then over TLS; Chromium, driven by Playwright, opens the
page the server serves, sends a message through the page's WebSocket (``ws://``,
then ``wss://``) and sees the echo.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from .certificates import issue, make_ca
from .helpers import CELLS, clean_environment, run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
READY = re.compile(r"listening on ([\d.]+):(\d+)")
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)"
)


@pytest.mark.parametrize(
    ("protocol", "model"), [cell for cell in CELLS if cell.values[0] == "websocket"]
)
def test_the_demo_page_echoes_in_a_browser(
    bake: Any, tmp_path: Path, protocol: str, model: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    result = bake(protocol=protocol, concurrency=model)
    project = result.project_path
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "."], cwd=project)
    command = venv / "bin" / result.context["project_slug"]
    make_ca(tmp_path)
    issue(tmp_path, "server", 1)
    prefix = result.context["package_name"].upper() + "_"
    tls = {prefix + "TLS_CERT": "server.pem", prefix + "TLS_KEY": "server.key"}
    no_metrics = {prefix + "METRICS_PORT": "0"}  # cells run side by side here
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        # Plain, then over TLS: a page served over https:// can only connect with
        # wss:// (a TLS port answers nothing else, and Chromium blocks ws:// there).
        for scheme, variables in (("http", {}), ("https", tls)):
            server = subprocess.Popen(
                [command],
                cwd=tmp_path,
                env={
                    **clean_environment(),
                    **variables,
                    **no_metrics,
                    "HOST": "127.0.0.1",
                    "PORT": "0",
                },
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                host, port = listening_address(server)
                # The test's CA is not the browser's: it is told to take the
                # certificate, which the other TLS tests verify.
                page = browser.new_context(ignore_https_errors=True).new_page()
                page.goto(f"{scheme}://{host}:{port}/")
                expect(page.locator("#status")).to_have_text(
                    "connected", timeout=TIMEOUT_MS
                )
                page.fill("#message", f"hello from Chromium over {scheme} ✓")
                page.click("#send")
                expect(page.locator("#log li.received")).to_have_text(
                    f"hello from Chromium over {scheme} ✓", timeout=TIMEOUT_MS
                )
            finally:
                server.send_signal(signal.SIGTERM)
                assert server.wait(30) == 0
        browser.close()


def listening_address(server: subprocess.Popen[str]) -> tuple[str, int]:
    """The address in the server's ready line."""
    assert server.stderr is not None
    for line in server.stderr:
        if match := READY.search(line):
            # Read the rest as it comes, so that the server never blocks on a full pipe.
            threading.Thread(target=server.stderr.read, daemon=True).start()
            return match[1], int(match[2])
    pytest.fail("the server ended without saying where it listens")
