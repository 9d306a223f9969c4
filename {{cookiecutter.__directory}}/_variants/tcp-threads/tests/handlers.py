"""A handler for the tests: it does what the default one never does."""

from __future__ import annotations

import logging
import os
import sys
import time

from .gathering import gather

log = logging.getLogger(__name__)


def handle(line: str) -> str:
    """Echo, except for five commands.

    ``crash`` raises; ``exit`` raises SystemExit; ``pid`` answers the serving
    process's id; ``sleep S`` sleeps S seconds; ``gather N`` waits until N
    requests are in the handler at once.
    """
    command, _, argument = line.partition(" ")
    if command == "crash":
        raise RuntimeError("crash requested")
    if command == "exit":
        sys.exit("exit requested")
    if command == "pid":
        return str(os.getpid())
    if command == "sleep":
        log.warning("sleep started")
        time.sleep(float(argument))
        return f"slept {argument}"
    if command == "gather":
        return f"gathered {gather(int(argument))}"
    return line
