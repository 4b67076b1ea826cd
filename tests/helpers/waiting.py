"""Waiting for what a system does by itself (stock coming back after a cancel, an email
being sent): poll a check until it holds or time runs out, and return its last result so
that the caller asserts the exact outcome."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def settles(check: Callable[[], T], timeout: float = 15.0) -> T:
    """Polls check until it returns something truthy; returns its last result."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    """Polls an async check until it returns something truthy; returns its last result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


def until(check: Callable[[], T], timeout: float, what: str) -> T:
    """Polls check each second until it returns something truthy, and returns that; a
    RuntimeError (a podman command that failed) counts as not yet. After timeout seconds,
    TimeoutError saying what did not happen, with the last result or error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except RuntimeError as error:
            last = str(error)[-300:]
        time.sleep(1)
    raise TimeoutError(f"{what} after {timeout:.0f}s: {last}")
