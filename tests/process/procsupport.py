"""Helpers for the process-level tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


def run(coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
    """Run a coroutine with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    """Wait (polling) until ``condition()`` holds, or fail with ``message``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {message}")
        await asyncio.sleep(0.02)
