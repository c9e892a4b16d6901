"""Helpers for the process-level tests."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Coroutine, Sequence
from typing import Any

CLUSTER_PORTS = (0, 1, 2, 1000, 1001, 1002)
"""The ports `raftlog cluster --nodes 3 --base-port BASE` takes, from BASE."""


def run(coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
    """Run a coroutine with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


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
