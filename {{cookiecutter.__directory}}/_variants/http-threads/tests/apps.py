"""The application plus routes for the tests, to reach what it never does itself."""

from __future__ import annotations

import logging
import os
import time

from flask import Flask

from {{ cookiecutter.package_name }}.app import create_app as create_project_app
from {{ cookiecutter.package_name }}.limits import HttpSettings

from .gathering import gather

log = logging.getLogger(__name__)


def crash() -> str:
    raise RuntimeError("crash requested")


def pid() -> str:
    return str(os.getpid())


def sleep(seconds: str) -> str:
    log.warning("sleep started")
    time.sleep(float(seconds))
    return "slept"


def gather_requests(expected: int) -> str:
    return f"gathered {gather(expected)}"


def create_app(settings: HttpSettings) -> Flask:
    app = create_project_app(settings)
    app.add_url_rule("/crash", view_func=crash)
    app.add_url_rule("/pid", view_func=pid)
    app.add_url_rule("/sleep/<seconds>", view_func=sleep)
    app.add_url_rule("/gather/<int:expected>", view_func=gather_requests)
    return app
