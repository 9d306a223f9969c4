"""A barrier for the concurrency tests: proof that requests run at the same time."""

from __future__ import annotations

import threading

TIMEOUT_SECONDS = 10.0

_arrived = threading.Condition()
_gathered = 0


def gather(expected: int) -> int:
    """Wait until `expected` requests have arrived (or give up); return how many did."""
    global _gathered
    with _arrived:
        _gathered += 1
        _arrived.notify_all()
        _arrived.wait_for(lambda: _gathered >= expected, TIMEOUT_SECONDS)
        return _gathered
