"""Set-up and tear-down the suites share (tests/ is on the import path through its
conftest): run a coroutine under an overall deadline, and a local cluster that is
started on entry and stopped on exit. Waiting for a condition is
:mod:`raftlog.testing.waiting` (``eventually``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

from raftlog.local.cluster import LocalCluster

STEADY_ARGS = ("--election-timeout", "0.5-1.0", "--heartbeat", "0.05")
"""Node arguments for a test that checks nobody disturbed the leader: election timeouts
ten heartbeats long. A busy machine can stall a process for more than --fast's 150 ms,
and such a check is about the protocol (PreVote, CheckQuorum), not about how quiet the
machine is."""


def run(coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
    """Run a coroutine with an overall deadline (a test that hangs fails instead)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@asynccontextmanager
async def running_cluster(
    n: int = 3, *, extra: Sequence[str] = (), **options: Any
) -> AsyncIterator[LocalCluster]:
    """A :class:`LocalCluster` of ``n`` node processes (``options`` as its own), each
    started with ``extra`` arguments and serving HTTP before the body runs; every node is
    stopped (the leader first) and temporary data removed when it ends, failed or not."""
    async with LocalCluster(n, **options) as cluster:
        await cluster.start(extra=extra)
        yield cluster
