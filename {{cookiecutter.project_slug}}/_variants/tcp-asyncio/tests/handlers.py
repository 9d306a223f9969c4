"""A handler for the tests: it does what the default one never does."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)
GATHER_TIMEOUT_SECONDS = 10.0

_arrived = asyncio.Condition()
_gathered = 0


async def handle(line: str) -> str:
    """Echo, except for three commands.

    ``crash`` raises; ``sleep S`` sleeps S seconds; ``gather N`` waits until N
    requests are in the handler at once.
    """
    command, _, argument = line.partition(" ")
    if command == "crash":
        raise RuntimeError("crash requested")
    if command == "sleep":
        log.warning("sleep started")
        await asyncio.sleep(float(argument))
        return f"slept {argument}"
    if command == "gather":
        return f"gathered {await gather(int(argument))}"
    return line


async def gather(expected: int) -> int:
    """Wait until `expected` requests have arrived (or give up); return how many did."""
    global _gathered
    async with _arrived:
        _gathered += 1
        _arrived.notify_all()
        try:
            async with asyncio.timeout(GATHER_TIMEOUT_SECONDS):
                await _arrived.wait_for(lambda: _gathered >= expected)
        except TimeoutError:
            pass
        return _gathered
