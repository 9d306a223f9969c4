"""A handler for the tests: it does what the default one never does."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
GATHER_TIMEOUT_SECONDS = 10.0

_arrived = threading.Condition()
_gathered = 0


def handle(line: str) -> str:
    """Echo, except for three commands.

    ``crash`` raises; ``sleep S`` sleeps S seconds; ``gather N`` waits until N
    requests are in the handler at once.
    """
    command, _, argument = line.partition(" ")
    if command == "crash":
        raise RuntimeError("crash requested")
    if command == "sleep":
        log.warning("sleep started")
        time.sleep(float(argument))
        return f"slept {argument}"
    if command == "gather":
        return f"gathered {gather(int(argument))}"
    return line


def gather(expected: int) -> int:
    """Wait until `expected` requests have arrived (or give up); return how many did."""
    global _gathered
    with _arrived:
        _gathered += 1
        _arrived.notify_all()
        _arrived.wait_for(lambda: _gathered >= expected, GATHER_TIMEOUT_SECONDS)
        return _gathered
