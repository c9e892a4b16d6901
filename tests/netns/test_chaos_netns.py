"""raftlog chaos over network namespaces: partitions cut the network, not the nodes."""

from __future__ import annotations

import asyncio

import pytest

from raftlog.chaos.runner import Chaos, ChaosOptions
from raftlog.local.netcluster import unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"namespace tests skipped: {REASON}")


def test_chaos_in_namespaces_with_real_partitions_passes() -> None:
    options = ChaosOptions(
        nodes=3,
        time_s=25,
        clients=8,
        nemesis=("partition", "kill"),
        seed=7,
        netns=True,
        partition_shapes=("halves", "isolate-leader"),
    )
    result = asyncio.run(asyncio.wait_for(Chaos(options).run(), 240))
    assert result.ok, "\n".join(f"{c.name}: {c.detail}" for c in result.checks)
    assert any(f["kind"] == "partition" for f in result.faults)
    assert result.summary["ops_ok"] > 500
