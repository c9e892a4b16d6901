"""The namespace tests share one set of names (node_1..node_3, client, rlbr0): they must
never run at the same time, whichever xdist worker runs them. A lock file serialises them."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCK = Path("/tmp/raftlog-netns-tests.lock")


@pytest.fixture(autouse=True)
def _one_netcluster_at_a_time() -> Iterator[None]:
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
