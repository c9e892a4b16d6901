"""Helpers for the process-level tests."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Sequence

from raftlog.testing.waiting import eventually_async
from scaffold import run

__all__ = ["CLUSTER_PORTS", "free_base", "run", "until"]

CLUSTER_PORTS = (0, 1, 2, 1000, 1001, 1002)
"""The ports `raftlog cluster --nodes 3 --base-port BASE` takes, from BASE."""


async def until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    """Kept for test files written before the shared helper: prefer
    ``raftlog.testing.waiting.eventually_async`` (it reports the last value seen)."""
    await eventually_async(condition, timeout, what=message)


def free_base(offsets: Sequence[int] = CLUSTER_PORTS) -> int:
    """A base port with BASE+offset free for every offset, below the ephemeral range so
    that ports the OS hands out elsewhere never collide."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        socks: list[socket.socket] = []
        try:
            for offset in offsets:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise AssertionError("no free base port")
