"""Waiting for a condition with a deadline: the one "poll until" of the test suites.

A test never sleeps for a fixed time to let things settle; it waits until what it expects
is true, and fails after a deadline saying what it waited for and what it saw last::

    leader = eventually(find_leader, 10, what="a leader")           # blocking code
    commit = await eventually_async(
        lambda: node.commit, 5, what="node 1 to commit index 3", until=lambda c: c >= 3
    )

``probe`` is called until its value is acceptable (truthy, or accepted by ``until``), and
that value is returned. At the deadline it is called once more, then :class:`NotYet` (an
``AssertionError``, so pytest shows a failure, not an error) is raised with ``what`` and the
last value seen. Exceptions of the types in ``ignore`` count as "not yet" (a node that is
still starting refuses connections); the last one is reported as what was seen. Any other
exception propagates at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
"""Long enough for a 2-core machine shared by several test runs (CI runs loaded)."""
DEFAULT_INTERVAL_S = 0.02


class NotYet(AssertionError):
    """The condition did not hold by the deadline. ``last`` is the last value the probe
    returned (or the last ignored exception it raised)."""

    def __init__(self, what: str, timeout: float, last: object, tries: int) -> None:
        super().__init__(
            f"timed out after {timeout:g} s waiting for {what}; last seen: {_show(last)} "
            f"({tries} tries)"
        )
        self.what = what
        self.last = last
        self.tries = tries


def _show(value: object, limit: int = 2000, items: int = 10) -> str:
    """``value`` for a failure message: an exception as its type and text; a long list
    by its last ``items`` items (a node's log lines: the latest tell most); anything
    longer than ``limit`` characters cut there."""
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}"
    elif isinstance(value, list) and len(value) > items:
        tail = ", ".join(repr(v) for v in value[-items:])
        text = f"[... {len(value) - items} earlier, {tail}]"
    else:
        text = repr(value)
    return text if len(text) <= limit else "..." + text[-limit:]


def _accepted(value: Any, until: Callable[[Any], object] | None) -> bool:
    return bool(until(value) if until is not None else value)


def eventually(
    probe: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    what: str,
    until: Callable[[T], object] | None = None,
    ignore: tuple[type[Exception], ...] = (),
    interval: float = DEFAULT_INTERVAL_S,
) -> T:
    """Call ``probe`` until its value is acceptable; return that value, or raise
    :class:`NotYet` after ``timeout`` seconds (blocking: for code without an event loop)."""
    deadline = time.monotonic() + timeout
    last: object = None
    tries = 0
    while True:
        tries += 1
        try:
            value = probe()
        except ignore as exc:
            last = exc
        else:
            if _accepted(value, until):
                return value
            last = value
        if time.monotonic() >= deadline:
            raise NotYet(what, timeout, last, tries)
        time.sleep(interval)


async def eventually_async(
    probe: Callable[[], T | Awaitable[T]],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    what: str,
    until: Callable[[T], object] | None = None,
    ignore: tuple[type[Exception], ...] = (),
    interval: float = DEFAULT_INTERVAL_S,
) -> T:
    """The twin of :func:`eventually` for asyncio code: ``probe`` may be a plain function
    or a coroutine function, and the loop goes on running between tries."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    tries = 0
    while True:
        tries += 1
        try:
            got = probe()
            value: T = await got if inspect.isawaitable(got) else got
        except ignore as exc:
            last = exc
        else:
            if _accepted(value, until):
                return value
            last = value
        if loop.time() >= deadline:
            raise NotYet(what, timeout, last, tries)
        await asyncio.sleep(interval)


__all__ = ["DEFAULT_TIMEOUT_S", "NotYet", "eventually", "eventually_async"]
