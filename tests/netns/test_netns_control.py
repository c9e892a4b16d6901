"""NetnsCluster as a ClusterControl: the same isolate/heal as on loopback, cut in the
network (blackhole routes between the namespaces; the links stay up, so the client API
stays reachable from the host)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from raftlog.local.clusterbase import wait_for
from raftlog.local.control import ClusterControl
from raftlog.local.netcluster import unavailable_reason
from raftlog.local.netns_cluster import NetnsCluster

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"namespace tests skipped: {REASON}")


def test_isolating_the_leader_elects_another_and_healing_brings_it_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with NetnsCluster(3, state_dir=tmp_path / "netns") as cluster:
            assert isinstance(cluster, ClusterControl)
            await cluster.start()
            old = await cluster.leader(timeout=60)
            before = await cluster.status(old)
            assert before is not None
            await cluster.isolate(old)
            state = await cluster.state()
            assert [n.id for n in state.nodes if n.isolated] == [old]
            assert all(n.running and not n.paused for n in state.nodes)
            others = [i for i in cluster.node_ids() if i != old]
            # Its client API stays reachable from the host; the others elect a leader.
            assert await cluster.status(old) is not None
            new = await cluster.leader(timeout=60, among=others)
            after = await cluster.status(new)
            assert after is not None and after["term"] > before["term"]
            await cluster.append(new, "while isolated")

            await cluster.cut(*others)
            state = await cluster.state()
            assert state.cuts == [tuple(sorted(others))]  # the isolation's links not listed
            await cluster.heal()
            state = await cluster.state()
            assert state.cuts == [] and not any(n.isolated for n in state.nodes)

            async def follows() -> bool:
                s = await cluster.status(old)
                try:
                    lead = await cluster.leader(timeout=5)
                except TimeoutError:  # no leader this moment: ask again
                    return False
                return s is not None and s["state"] == "Follower" and s["leader"] == lead

            await wait_for(follows, 60, f"node {old} did not follow after the heal")

            async def caught_up() -> bool:
                log = await cluster.log(old)
                return log is not None and "while isolated" in log

            await wait_for(caught_up, 60, "the old leader did not catch up")
            assert any("Node started" in line for line in cluster.lines(old))

    asyncio.run(asyncio.wait_for(main(), 240))
