"""A barrier for the concurrency tests: proof that requests run at the same time."""

from __future__ import annotations

import asyncio
import contextlib

TIMEOUT_SECONDS = 10.0

_arrived = asyncio.Condition()
_gathered = 0


async def gather(expected: int) -> int:
    """Wait until `expected` requests have arrived (or give up); return how many did."""
    global _gathered
    async with _arrived:
        _gathered += 1
        _arrived.notify_all()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TIMEOUT_SECONDS):
                await _arrived.wait_for(lambda: _gathered >= expected)
        return _gathered
