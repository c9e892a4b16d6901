"""Membership on the asyncio node (in memory): an id added back on an empty disk, an
uncommitted removal, a leader's reads while it removes itself."""

from __future__ import annotations

import asyncio
import io
import logging

from test_node import STEADY, Cluster, run

from raftlog.core.types import ConfState, Entry, EntryKind, HardState, Member, NodeId, encode_conf
from raftlog.server.eventlog import EventLog
from raftlog.server.node import NodeRemoved, RaftNode, ServerConfig
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.storage.memory import MemoryStorage
from raftlog.testing.waiting import eventually_async


def _joiner(c: Cluster, i: NodeId, joined_at: int) -> RaftNode:
    """A fresh node joining (empty storage); max_batch=1 puts a Ready boundary after
    every entry it replays."""
    cfg = ServerConfig(
        node_id=i,
        voters=frozenset(),
        joining=True,
        joined_at=joined_at,
        timing=c.timing,
        seed=int(i),
        max_batch=1,
        members={n: Member(n) for n in c.ids},
    )
    c.out[i] = io.StringIO()
    c.sms[i] = ReplicatedLog()
    node = RaftNode(
        cfg,
        MemoryStorage(),
        c.net.factory(i),
        c.sms[i],
        EventLog(i, stream=c.out[i], level=logging.DEBUG),
    )
    c.nodes[i] = node
    c.tasks[i] = asyncio.create_task(node.run())
    return node


def test_an_id_added_back_on_an_empty_disk_catches_up_and_keeps_running() -> None:
    """Node 4 joins, is promoted, removed, then its id is added back on an empty disk."""

    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        four = NodeId(4)
        leader = await c.leader()
        # A change waits for an entry of the leader's term to commit (one proposal's
        # commit shows it has): asked at once, it was refused under load.
        await leader.propose(b"first", timeout=20)
        added = await leader.add_learner(Member(four, "x:1"), timeout=5)
        first = _joiner(c, four, added.index)
        await _caught_up_at_the_leader(leader, four)
        await leader.promote(four, timeout=5)
        await asyncio.gather(*(leader.propose(b"e%d" % j, timeout=20) for j in range(200)))
        await leader.remove_member(four, timeout=5)
        await eventually_async(c.tasks[four].done, what="the first node 4 stops")
        assert first.removed
        # Added back at once: the leader still holds the old node's progress (kept to
        # tell it of its removal); the new one must start from scratch.
        again = await leader.add_learner(Member(four, "x:1"), timeout=5)
        second = _joiner(c, four, again.index)
        await eventually_async(
            lambda: (c.tasks[four].done(), second.applied, leader.applied),
            20,
            what="the second node 4 to catch up or stop (stopped, its applied, the leader's)",
            until=lambda seen: seen[0] or seen[1] >= seen[2],
        )
        assert not c.tasks[four].done() and not second.removed
        await _caught_up_at_the_leader(leader, four)
        await leader.promote(four, timeout=5)
        await c.close()

    run(main())


async def _caught_up_at_the_leader(leader: RaftNode, node: NodeId) -> None:
    """Wait until the leader knows the node holds its committed log: what a promotion
    asks. (The node's own applied index gets there first; its acknowledgement may still
    be on the way, and a promotion in between is refused: "it holds up to 0".)"""
    await eventually_async(
        lambda: (leader.replication().matches.get(node, 0), leader.commit),
        20,
        what=f"the leader to know node {node} caught up (its match index, the commit)",
        until=lambda seen: seen[0] >= seen[1] > 0,
    )


def _storage_with(conf_index_committed: bool) -> MemoryStorage:
    """Node 5's disk: voters 1-5, then a configuration without 5 at index 3."""
    storage = MemoryStorage()
    five = ConfState(voters=frozenset(NodeId(i) for i in range(1, 6)))
    four = ConfState(voters=frozenset(NodeId(i) for i in range(1, 5)))
    storage.append(
        [
            Entry(1, 1, EntryKind.NOOP),
            Entry(2, 1, EntryKind.CONF_CHANGE, encode_conf(five)),
            Entry(3, 1, EntryKind.CONF_CHANGE, encode_conf(four)),
        ]
    )
    storage.set_hard_state(
        HardState(term=1, vote=NodeId(1), commit=3 if conf_index_committed else 2)
    )
    return storage


def _start_five(storage: MemoryStorage, joined_at: int = 0) -> BaseException | None:
    result: list[BaseException | None] = []

    async def main() -> None:
        c = Cluster(n=5, timing=STEADY, joined_at=joined_at)
        c.storage[NodeId(5)] = storage
        node = c.start(NodeId(5))
        try:
            await asyncio.wait_for(asyncio.shield(c.tasks[NodeId(5)]), 1.0)
            result.append(None)
        except TimeoutError:
            result.append(None)  # still running: it took part
        except NodeRemoved as exc:
            result.append(exc)
        node.stop()
        await c.close()

    run(main())
    return result[0]


def test_a_committed_removal_is_refused_at_start() -> None:
    assert isinstance(_start_five(_storage_with(conf_index_committed=True)), NodeRemoved)


def test_an_uncommitted_removal_does_not_lock_the_node_out() -> None:
    """The removal may still be replaced by another leader's entries: the node starts."""
    assert _start_five(_storage_with(conf_index_committed=False)) is None


def test_a_removal_from_before_the_node_joined_is_not_its_own() -> None:
    """An id removed and added back replays its earlier life's removal: the node knows
    the index it joined at, and a removal before it does not stop it."""
    assert _start_five(_storage_with(conf_index_committed=True), joined_at=4) is None
