"""LocalCluster as a ClusterControl: partitions made inside real node processes (their
admin endpoint), kept by the cluster across restarts and pauses, and actions on several
nodes at once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from procsupport import run

from raftlog.local.cluster import ADMIN_TOKEN_ENV, FAULT_INJECTION_FLAG, LocalCluster
from raftlog.local.control import ClusterControl, ClusterState, ControlError
from raftlog.local.netns_cluster import NetnsCluster
from raftlog.testing.waiting import eventually_async
from scaffold import running_cluster


def _cluster(n: int = 3) -> LocalCluster:
    return LocalCluster(n, fast=True, node_args=[FAULT_INJECTION_FLAG])


async def _blocked(cluster: LocalCluster, i: int) -> list[int]:
    """What node ``i`` blocks, as it says itself (``held: []`` changes nothing here)."""
    status, doc = await cluster.post(i, "/v1/admin/partition", {"held": []})
    assert status == 200, doc
    found: list[int] = doc["blocked"]
    return found


def _summary(state: ClusterState) -> dict[int, tuple[bool, bool, bool]]:
    return {n.id: (n.running, n.paused, n.isolated) for n in state.nodes}


def test_both_clusters_implement_the_control_interface(tmp_path: Path) -> None:
    local = LocalCluster(3, data_dir=tmp_path / "local")
    netns = NetnsCluster(3, state_dir=tmp_path / "netns")
    assert isinstance(local, ClusterControl) and local.kind == "local"
    assert isinstance(netns, ClusterControl) and netns.kind == "netns"
    assert local.node_ids() == netns.node_ids() == [1, 2, 3]


def test_a_partition_needs_the_admin_endpoint_and_says_so(tmp_path: Path) -> None:
    async def main() -> None:
        cluster = LocalCluster(3, data_dir=tmp_path)
        with pytest.raises(ControlError, match="admin_token"):
            await cluster.isolate(1)
        with pytest.raises(ControlError, match="admin_token"):
            await cluster.cut(1, 2)
        with pytest.raises(ControlError, match="no node 7"):
            await cluster.isolate(7)
        with pytest.raises(ControlError, match="not running"):
            await cluster.pause(1)
        await cluster.heal()  # nothing to heal: nothing to do
        state = await cluster.state()
        assert state.kind == "local" and state.cuts == []
        assert _summary(state) == {i: (False, False, False) for i in (1, 2, 3)}

    run(main(), timeout=30)


def test_with_an_admin_token_partitions_work_without_fault_injection(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_cluster(
            3, fast=True, data_dir=tmp_path, admin_token="s3cret"
        ) as cluster:
            process = cluster.nodes[1].process
            assert process is not None
            environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
            assert f"{ADMIN_TOKEN_ENV}=s3cret".encode() in environ
            await cluster.cut(1, 2)  # through the nodes' admin endpoint, with the token
            assert [await _blocked(cluster, i) for i in (1, 2, 3)] == [[2], [1], []]
            async with (
                aiohttp.ClientSession() as http,
                http.post(cluster.url(1) + "/v1/admin/partition", json={"blocked": []}) as resp,
            ):
                assert resp.status == 401  # without the token: refused
            assert await _blocked(cluster, 1) == [2]
            await cluster.heal()
            assert [await _blocked(cluster, i) for i in (1, 2, 3)] == [[], [], []]

    run(main(), timeout=120)


def test_isolating_the_leader_elects_another_and_healing_brings_it_back() -> None:
    async def main() -> None:
        async with _cluster() as cluster:
            await cluster.start()
            old = await cluster.leader(timeout=60)
            before = await cluster.status(old)
            assert before is not None
            await cluster.isolate(old)
            state = await cluster.state()
            assert [n.id for n in state.nodes if n.isolated] == [old]
            assert state.cuts == []  # an isolation is not listed as cuts
            others = [i for i in cluster.node_ids() if i != old]
            new = await cluster.leader(timeout=60, among=others)
            after = await cluster.status(new)
            assert after is not None and after["term"] > before["term"]
            await cluster.append(new, "while isolated")

            await cluster.heal()
            assert not any(n.isolated for n in (await cluster.state()).nodes)

            async def seen() -> tuple[Any, ...]:
                """node ``old``'s state, leader and term; that leader's state and term
                (node ``new``, or a later leader if an election moved leadership since)"""
                s = await cluster.status(old) or {}
                named = s.get("leader")
                ok = named in cluster.node_ids() and named != old
                lead = (await cluster.status(named) or {}) if ok else {}
                return s.get("state"), named, s.get("term"), lead.get("state"), lead.get("term")

            await eventually_async(
                seen,
                60,
                what=f"node {old} to follow the leader after the heal (its state, leader, "
                "term; that leader's state and term)",
                until=lambda s: (
                    s[0] == "Follower" and s[3] == "Leader" and s[2] is not None and s[2] == s[4]
                ),
            )
            await eventually_async(
                lambda: cluster.log(old),
                60,
                what="the old leader to catch up",
                until=lambda log: log is not None and "while isolated" in log,
            )

    run(main(), timeout=240)


def test_a_cut_link_and_the_state_and_blocks_kept_across_pause_and_restart() -> None:
    async def main() -> None:
        async with _cluster() as cluster:
            await cluster.start()
            await cluster.cut(2, 1)
            state = await cluster.state()
            assert state.cuts == [(1, 2)]
            assert [await _blocked(cluster, i) for i in (1, 2, 3)] == [[2], [1], []]
            # Node 3 bridges the cut: a leader is still elected and appends commit.
            leader = await cluster.leader(timeout=60)
            await cluster.append(leader, "across the cut")

            # Isolated while paused: told when it is resumed.
            await cluster.pause(3)
            await cluster.isolate(3)
            state = await cluster.state()
            assert _summary(state)[3] == (True, True, True)
            assert [await _blocked(cluster, i) for i in (1, 2)] == [[2, 3], [1, 3]]
            await cluster.resume(3)
            assert await _blocked(cluster, 3) == [1, 2]

            # Killed while isolated: it gets its blocks again when it starts.
            await cluster.kill(3)
            assert _summary(await cluster.state())[3] == (False, False, True)
            await cluster.start_node(3)
            assert _summary(await cluster.state())[3] == (True, False, True)
            assert await _blocked(cluster, 3) == [1, 2]

            await cluster.heal()
            state = await cluster.state()
            assert state.cuts == [] and not any(n.isolated for n in state.nodes)
            assert [await _blocked(cluster, i) for i in (1, 2, 3)] == [[], [], []]

    run(main(), timeout=240)


def test_concurrent_actions_on_different_nodes_leave_a_consistent_state() -> None:
    async def main() -> None:
        rng = random.Random(12)
        async with _cluster() as cluster:
            await cluster.start()
            for _round in range(2):
                await cluster.kill(3)
                await cluster.pause(2)
                actions = [
                    cluster.pause(1),
                    cluster.resume(2),
                    cluster.start_node(3),
                    cluster.isolate(3),
                    cluster.cut(1, 2),
                ]
                rng.shuffle(actions)
                await asyncio.gather(*actions)
                state = await cluster.state()
                assert _summary(state) == {
                    1: (True, True, False),
                    2: (True, False, False),
                    3: (True, False, True),
                }
                assert state.cuts == [(1, 2)]
                assert await _blocked(cluster, 2) == [1, 3]
                assert await _blocked(cluster, 3) == [1, 2]
                await cluster.resume(1)
                assert await _blocked(cluster, 1) == [2, 3]

                # Every node killed at once, then started at once: each blocks the same.
                await asyncio.gather(*(cluster.kill(i) for i in cluster.node_ids()))
                assert not any(n.running for n in (await cluster.state()).nodes)
                await asyncio.gather(*(cluster.start_node(i) for i in cluster.node_ids()))
                assert [await _blocked(cluster, i) for i in (1, 2, 3)] == [[2, 3], [1, 3], [1, 2]]
                await asyncio.gather(cluster.heal(), cluster.pause(1), cluster.stop(2))
                state = await cluster.state()
                assert _summary(state) == {
                    1: (True, True, False),
                    2: (False, False, False),
                    3: (True, False, False),
                }
                assert state.cuts == []
                await asyncio.gather(cluster.resume(1), cluster.start_node(2))
                assert [await _blocked(cluster, i) for i in (1, 2, 3)] == [[], [], []]
            await cluster.leader(timeout=60)

    run(main(), timeout=300)
