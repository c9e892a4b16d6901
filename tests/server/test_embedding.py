"""The public embedding API: raftlog.Node and raftlog.BlockingNode, three nodes in one
process over real TCP on loopback, with a state machine of the test's own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import raftlog
from raftlog.core import events as ev
from raftlog.local.cluster import free_ports


class Tally:
    """Counts words; deterministic; snapshots as JSON."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def apply(self, index: int, term: int, data: bytes) -> int:
        word = data.decode()
        self.counts[word] = self.counts.get(word, 0) + 1
        return self.counts[word]

    def snapshot(self) -> raftlog.BytesSnapshot:
        return raftlog.BytesSnapshot(json.dumps(self.counts).encode())

    def restore(self, source: BinaryIO) -> None:
        self.counts = json.loads(source.read())


def _configs(tmp_path: Path, **extra: Any) -> list[raftlog.NodeConfig]:
    ports = free_ports(3)
    members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}
    return [
        raftlog.NodeConfig(
            id=i,
            members=members,
            data_dir=tmp_path / f"n{i}",
            state_machine=Tally(),
            snapshot_entries=10,
            keep_entries=2,
            **extra,
        )
        for i in members
    ]


async def _leader(nodes: list[raftlog.Node], timeout: float = 10) -> raftlog.Node:
    async with asyncio.timeout(timeout):
        while True:
            leaders = [n for n in nodes if n.is_leader]
            if len(leaders) == 1:
                return leaders[0]
            await asyncio.sleep(0.01)


def test_three_embedded_nodes_apply_read_and_report(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = [raftlog.Node(c) for c in _configs(tmp_path)]
        for node in nodes:
            await node.start()
        try:
            leader = await _leader(nodes)
            events = leader.events()
            assert await leader.apply(b"apple") == 1
            assert await leader.apply(b"apple") == 2
            done = await leader.apply_detailed(b"pear")
            assert done.result == 1 and done.index > 0 and done.term == leader.term
            follower = next(n for n in nodes if n is not leader)
            with pytest.raises(raftlog.NotLeader) as refused:
                await follower.apply(b"kiwi")
            assert refused.value.leader_hint == leader.id
            assert await leader.read(lambda sm: sm.counts) == {"apple": 2, "pear": 1}
            with pytest.raises(raftlog.NotLeader):
                await follower.read(lambda sm: sm.counts)  # linearizable: the leader only

            async def follower_has_all() -> None:
                while await follower.read(lambda sm: sm.counts, consistency="local") != {
                    "apple": 2,
                    "pear": 1,
                }:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(follower_has_all(), 10)
            status = await leader.status()
            assert status["state"] == "Leader" and status["voters"] == [1, 2, 3]
            async with asyncio.timeout(5):
                async for event in events:
                    if isinstance(event, ev.EntryCommitted) and event.data == b"pear":
                        break
            # Enough commands for a snapshot and a compaction on every node.
            for k in range(30):
                await leader.apply(f"w{k % 3}".encode())
            status = await leader.status()
            assert status["snapshot_index"] > 0 and status["first_index"] > 1
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_restarted_embedded_node_comes_back_with_its_state(tmp_path: Path) -> None:
    async def main() -> None:
        configs = _configs(tmp_path)
        nodes = [raftlog.Node(c) for c in configs]
        for node in nodes:
            await node.start()
        try:
            leader = await _leader(nodes)
            for k in range(25):
                await leader.apply(f"w{k % 5}".encode())
            follower = next(n for n in nodes if n is not leader)
            await follower.stop()
            assert await leader.apply(b"while-down") == 1
            index = nodes.index(follower)
            configs[index].state_machine = Tally()  # a new process: its memory is gone
            nodes[index] = raftlog.Node(configs[index])
            await nodes[index].start()

            async def caught_up() -> None:
                want = {f"w{k}": 5 for k in range(5)} | {"while-down": 1}
                while nodes[index].state_machine.counts != want:  # type: ignore[union-attr]
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(caught_up(), 10)
        finally:
            for node in nodes:
                await node.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_blocking_wrapper(tmp_path: Path) -> None:
    configs = _configs(tmp_path)
    nodes = [raftlog.BlockingNode(c) for c in configs]
    for node in nodes:
        node.start()
    try:
        leader = None
        for _ in range(1000):
            leaders = [n for n in nodes if n.is_leader]
            if len(leaders) == 1:
                leader = leaders[0]
                break
            asyncio.run(asyncio.sleep(0.01))
        assert leader is not None
        assert leader.apply(b"x") == 1
        assert leader.read(lambda sm: sm.counts["x"]) == 1
        assert leader.status()["state"] == "Leader"
    finally:
        for node in nodes:
            node.stop()


def test_bad_configs_are_refused_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="not among the members"):
        raftlog.Node(raftlog.NodeConfig(id=4, members={1: "127.0.0.1:1"}))
    with pytest.raises(ValueError, match="HOST:PORT"):
        raftlog.Node(raftlog.NodeConfig(id=1, members={1: "nowhere"}))
    with pytest.raises(ValueError, match="snapshot_entries"):
        raftlog.Node(raftlog.NodeConfig(id=1, members={1: "h:1"}, snapshot_entries=0))
