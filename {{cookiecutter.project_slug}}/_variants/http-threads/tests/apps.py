"""The application plus routes for the tests, to reach what it never does itself."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from {{ cookiecutter.package_name }}.app import create_app as create_project_app
from {{ cookiecutter.package_name }}.limits import HttpSettings

log = logging.getLogger(__name__)
GATHER_TIMEOUT_SECONDS = 10.0
_arrived = threading.Condition()
_gathered = 0


def crash() -> str:
    raise RuntimeError("crash requested")


def sleep(seconds: str) -> str:
    log.warning("sleep started")
    time.sleep(float(seconds))
    return "slept"


def gather(expected: int) -> str:
    """Wait until `expected` requests are here at once (or give up); say how many."""
    global _gathered
    with _arrived:
        _gathered += 1
        _arrived.notify_all()
        _arrived.wait_for(lambda: _gathered >= expected, GATHER_TIMEOUT_SECONDS)
        return f"gathered {_gathered}"


def create_app(settings: HttpSettings) -> Flask:
    app = create_project_app(settings)
    app.add_url_rule("/crash", view_func=crash)
    app.add_url_rule("/sleep/<seconds>", view_func=sleep)
    app.add_url_rule("/gather/<int:expected>", view_func=gather)
    return app
