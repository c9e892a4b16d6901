"""Membership changes on real processes: nodes join with `raftlog node --join` (and are
promoted once caught up), members are removed (the leader too), a dead node is replaced
by a fresh one at a new address, and a removed node neither comes back nor disturbs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import Any

from procsupport import run

from raftlog.client import AsyncClient, OutcomeUnknown
from raftlog.local.cluster import LocalCluster, LocalNode, free_ports
from raftlog.testing.waiting import eventually_async
from scaffold import STEADY_ARGS, running_cluster

APPEND_TIMEOUT = 30


class Appender:
    """Appends unique values through the client library (exactly-once sessions) until
    stopped; remembers which ones were acknowledged."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.acked: list[str] = []
        self.unknown: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Appender:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            urls = [n.url for n in self.cluster.nodes.values() if n.running and not n.paused]
            async with AsyncClient(urls, timeout=5, retry_for=APPEND_TIMEOUT) as client:
                while not self._stop.is_set():
                    k += 1
                    value = f"v{k}"
                    try:
                        await client.append(value)
                    except OutcomeUnknown:
                        self.unknown.append(value)
                        break  # a new client (and seed list) after trouble
                    self.acked.append(value)
                    if k % 50 == 0:
                        break  # refresh the seeds: members come and go


async def _status(cluster: LocalCluster, i: int) -> dict[str, Any] | None:
    return await cluster.status(i)


async def _until_voter(cluster: LocalCluster, node: int, timeout: float = 60) -> None:
    async def membership() -> tuple[Any, Any, Any]:
        """the leader's voters, configuration index and commit index"""
        leader = await cluster.leader(timeout=timeout)
        s = await _status(cluster, leader) or {}
        return (s.get("voters"), s.get("conf_index"), s.get("commit"))

    await eventually_async(
        membership,
        timeout,
        what=f"node {node} to be a voter (the leader's voters, conf index, commit)",
        until=lambda m: m[0] is not None and node in m[0] and m[1] <= m[2],
        interval=0.1,
    )


async def _remove(cluster: LocalCluster, node: int) -> dict[str, Any]:
    urls = [n.url for i, n in cluster.nodes.items() if n.running and i != node] or [
        cluster.nodes[node].url
    ]
    async with AsyncClient(urls, timeout=10, retry_for=30) as client:
        return await client.remove_member(node)


async def _log(cluster: LocalCluster, i: int) -> list[str]:
    out: list[str] = []
    start = 1
    while True:
        doc = await cluster.get(i, f"/v1/log?consistency=local&from={start}&limit=10000", 30)
        assert isinstance(doc, dict), doc
        out += [e["data"] for e in doc["entries"]]
        if doc["next"] is None:
            return out
        start = doc["next"]


async def _converged(cluster: LocalCluster, ids: list[int], timeout: float = 60) -> list[str]:
    async def logs() -> list[list[str]]:
        return [await _log(cluster, i) for i in ids]

    found = await eventually_async(
        logs,
        timeout,
        what=f"the logs of nodes {ids} to converge",
        until=lambda logs: all(log == logs[0] for log in logs),
        interval=0.2,
    )
    return found[0]


def _check_no_loss(log: list[str], appender: Appender) -> None:
    counts: dict[str, int] = {}
    for value in log:
        counts[value] = counts.get(value, 0) + 1
    lost = [v for v in appender.acked if counts.get(v, 0) != 1]
    assert not lost, f"acknowledged appends lost or doubled: {lost[:10]}"
    assert len(appender.acked) > 50


def test_grow_from_three_to_five_and_shrink_back_under_appends() -> None:
    async def main() -> None:
        async with running_cluster(3, fast=True) as cluster:
            await cluster.leader()
            async with Appender(cluster) as appender:
                for _ in range(2):
                    node = cluster.add_node()
                    await cluster.start_node(node)
                    await _until_voter(cluster, node)
                leader = await cluster.leader()
                s = await _status(cluster, leader)
                assert s is not None and sorted(s["voters"]) == [1, 2, 3, 4, 5]
                # Shrink: remove two of the original members (one of them may lead).
                for node in (1, 2):
                    await _remove(cluster, node)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cluster.wait_exit(node), 30)
                    await cluster.stop(node)
            remaining = [i for i, n in cluster.nodes.items() if n.running]
            assert sorted(remaining) == [3, 4, 5]
            leader = await cluster.leader(among=remaining)
            s = await _status(cluster, leader)
            assert s is not None and sorted(s["voters"]) == [3, 4, 5]
            log = await _converged(cluster, remaining)
            _check_no_loss(log, appender)

    run(main(), timeout=400)


def test_the_leader_removed_hands_over_stops_and_refuses_to_come_back() -> None:
    async def main() -> None:
        async with running_cluster(3, fast=True) as cluster:
            leader = await cluster.leader()
            await cluster.append(leader, "before")
            await _remove(cluster, leader)
            code = await asyncio.wait_for(cluster.wait_exit(leader), 30)
            assert code == 5, cluster.nodes[leader].lines[-5:]
            lines = "\n".join(cluster.nodes[leader].lines)
            assert "stepping down" in lines and "Removed from the cluster" in lines
            others = [i for i in cluster.nodes if i != leader]
            new = await cluster.leader(among=others)
            await cluster.append(new, "after")
            # Started again on its data, it refuses, saying why.
            await cluster.start_node(leader, wait=False)
            code = await asyncio.wait_for(cluster.wait_exit(leader), 30)
            assert code == 3
            assert "was removed from the cluster" in "\n".join(cluster.nodes[leader].lines[-3:])
            assert await _converged(cluster, others) == ["before", "after"]

    run(main(), timeout=200)


def test_a_dead_node_is_replaced_by_a_fresh_one_at_a_new_address() -> None:
    async def main() -> None:
        async with running_cluster(3, fast=True) as cluster:
            leader = await cluster.leader()
            for k in range(20):
                await cluster.append(leader, f"a{k}")
            dead = next(i for i in cluster.nodes if i != leader)
            await cluster.kill(dead)
            fresh = cluster.add_node()
            await cluster.start_node(fresh)
            await _until_voter(cluster, fresh)
            await _remove(cluster, dead)
            alive = [i for i, n in cluster.nodes.items() if n.running]
            leader = await cluster.leader(among=alive)
            s = await _status(cluster, leader)
            assert s is not None and dead not in s["voters"] and fresh in s["voters"]
            await cluster.append(leader, "after")
            log = await _converged(cluster, alive)
            assert log == [f"a{k}" for k in range(20)] + ["after"]

    run(main(), timeout=200)


def test_a_removed_node_that_did_not_hear_of_it_does_not_disturb() -> None:
    async def main() -> None:
        # With two voters left, a stall of either under load would otherwise end the
        # term, and the check would blame the victim.
        async with running_cluster(3, fast=True, extra=STEADY_ARGS) as cluster:
            leader = await cluster.leader()
            victim = next(i for i in cluster.nodes if i != leader)
            await cluster.pause(victim)  # it misses its own removal
            others = [i for i in cluster.nodes if i != victim]
            async with AsyncClient([cluster.nodes[i].url for i in others], retry_for=30) as c:
                await c.remove_member(victim)
            before = await _status(cluster, leader)
            assert before is not None
            await cluster.resume(victim)
            # Its election timer has long run out: it tries to campaign. PreVote and
            # CheckQuorum keep the cluster's leader and term as they are.
            for _ in range(20):
                await asyncio.sleep(0.1)
                s = await _status(cluster, leader)
                assert s is not None and s["state"] == "Leader" and s["term"] == before["term"]
            await cluster.append(leader, "still fine")

    run(main(), timeout=200)


def test_one_command_line_for_every_replica_with_join_peers(tmp_path: Any) -> None:
    """The StatefulSet's way: every pod runs `--peers <the founding three> --join peers`;
    a node listed there starts as a founding member, any other joins."""

    async def main() -> None:
        async with running_cluster(3, fast=True, extra=["--join", "peers"]) as cluster:
            leader = await cluster.leader()
            await cluster.append(leader, "x")
            client_port, peer_port = free_ports(2)
            cluster.nodes[4] = LocalNode(
                4, client_port, peer_port, tmp_path / "node-4", scheme=cluster.nodes[1].scheme
            )
            await cluster.start_node(
                4, ["--join", "peers", "--advertise", "127.0.0.1", "--peer-port", str(peer_port)]
            )
            await _until_voter(cluster, 4)
            assert await _converged(cluster, [1, 2, 3, 4]) == ["x"]

    run(main(), timeout=200)


def test_a_removed_joiner_restarted_with_join_on_its_data_is_not_added_back() -> None:
    """`--join` asks to be added only on a fresh data directory: a node that was removed
    and comes back on its old data refuses to start, and the cluster does not list it."""

    async def main() -> None:
        async with running_cluster(3, fast=True) as cluster:
            node = cluster.add_node()
            await cluster.start_node(node)
            await _until_voter(cluster, node)
            await _remove(cluster, node)
            assert await asyncio.wait_for(cluster.wait_exit(node), 30) == 5
            await cluster.start_node(node, wait=False)  # the same command line: --join
            assert await asyncio.wait_for(cluster.wait_exit(node), 60) == 3
            lines = "\n".join(cluster.nodes[node].lines)
            assert lines.count("was removed from the cluster") == 1, lines[-2000:]
            async with AsyncClient([cluster.nodes[1].url], timeout=10, retry_for=30) as client:
                doc = await client.membership()
            assert sorted(m["id"] for m in doc["members"]) == [1, 2, 3]
            # On a fresh data directory the same id joins again, and stays.
            shutil.rmtree(cluster.nodes[node].data_dir)
            await cluster.start_node(node)
            await _until_voter(cluster, node)
            leader = await cluster.leader()
            await cluster.append(leader, "with the new node 4")
            assert cluster.nodes[node].running
            assert await _converged(cluster, [1, 2, 3, node]) == ["with the new node 4"]

    run(main(), timeout=200)


def test_a_join_finding_itself_already_a_learner_at_its_address_starts() -> None:
    """The add's answer was lost (or the node stopped before it started): asked again on
    the same empty data directory, it finds itself a learner at its own address, which
    is safe to start empty, and goes on."""

    async def main() -> None:
        async with running_cluster(3, fast=True) as cluster:
            node = cluster.add_node()
            me = cluster.nodes[node]
            async with AsyncClient([cluster.nodes[1].url], timeout=10, retry_for=30) as client:
                await client.add_member(node, f"127.0.0.1:{me.peer_port}", me.url)
            await cluster.start_node(node)
            await _until_voter(cluster, node)
            assert cluster.nodes[node].running

    run(main(), timeout=200)


def test_a_node_down_while_another_joined_follows_it_as_leader() -> None:
    """Node 3 is down while node 4 joins and takes the lead: back, node 3 knows nothing of
    node 4 (not even its address), yet must follow it (it hears it first, then learns its
    address from the configuration entries it sends)."""

    async def main() -> None:
        async with running_cluster(3, fast=True) as cluster:
            leader = await cluster.leader()
            await cluster.append(leader, "before")
            await cluster.stop(3)
            node = cluster.add_node()
            await cluster.start_node(node)
            await _until_voter(cluster, node)
            async with AsyncClient(
                [cluster.nodes[i].url for i in (1, 2)], timeout=10, retry_for=30
            ) as client:
                await client.transfer_leader(node)
            assert await cluster.leader(among=[1, 2, node]) == node
            await cluster.append(node, "under node 4")
            await cluster.start_node(3)
            assert await _converged(cluster, [3, node]) == ["before", "under node 4"]

    run(main(), timeout=200)
