"""A handler for the tests: it does what the default one never does."""

from __future__ import annotations

import asyncio
import logging
import os

from {{ cookiecutter.package_name }}.handler import Message

from .gathering import gather

log = logging.getLogger(__name__)


async def handle(message: Message) -> Message | None:
    """Echo, except for five text commands.

    ``crash`` raises; ``pid`` answers the serving process's id; ``sleep S`` sleeps S
    seconds; ``gather N`` waits until N messages are in the handler at once;
    ``quiet`` gets no reply.
    """
    command, _, argument = str(message).partition(" ")
    if command == "crash":
        raise RuntimeError("crash requested")
    if command == "pid":
        return str(os.getpid())
    if command == "sleep":
        log.warning("sleep started")
        await asyncio.sleep(float(argument))
        return f"slept {argument}"
    if command == "gather":
        return f"gathered {await gather(int(argument))}"
    if command == "quiet":
        return None
    return message
