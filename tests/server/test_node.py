"""The asyncio node, in process: real RaftNodes over the in-memory transport, in real time
with fast timings. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from raftlog.core import events as ev
from raftlog.core.errors import NotLeader, StorageError
from raftlog.core.messages import AppendEntries, Message
from raftlog.core.types import Entry, HardState, NodeId
from raftlog.server import snapfile
from raftlog.server.eventlog import EventLog
from raftlog.server.node import (
    LeadershipLost,
    NodeStopped,
    OutcomeUnknown,
    RaftNode,
    RequestTimeout,
    ServerConfig,
    SnapshotFailed,
)
from raftlog.server.replicated_log import ReplicatedLog
from raftlog.server.timing import Timing
from raftlog.statemachine import BytesSnapshot
from raftlog.storage.memory import MemoryStorage
from raftlog.testing.contract import ContractRecorder, watch_core
from raftlog.testing.waiting import eventually_async
from raftlog.transport.memory import MemoryNetwork

TIMING = Timing(election_min_s=0.15, election_max_s=0.3, heartbeat_s=0.03, tick_s=0.005)
STEADY = Timing(election_min_s=0.6, election_max_s=1.2, heartbeat_s=0.05, tick_s=0.01)
"""For tests about something else than elections: a busy machine that stalls a process for
a few hundred milliseconds does not start one (under TIMING, a stall of 150 ms can move
leadership between a test's ``c.leader()`` and its single ``propose``)."""


def records(sm: ReplicatedLog) -> list[bytes]:
    """The data of every record the replicated log holds."""
    return [r.data for r in sm.read_sync(1, 1 << 30).records]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))


class Cluster:
    def __init__(
        self,
        n: int = 3,
        storage_factory: Callable[[int], Any] | None = None,
        *,
        sm_factory: Callable[[NodeId], Any] = lambda _i: ReplicatedLog(),
        snapshot_dir: Path | None = None,
        timing: Timing = TIMING,
        **config: Any,
    ) -> None:
        self.timing = timing
        self.net = MemoryNetwork()
        self.ids = [NodeId(i) for i in range(1, n + 1)]
        self.storage = {i: (storage_factory or (lambda _i: MemoryStorage()))(i) for i in self.ids}
        self.sm_factory = sm_factory
        self.sms = {i: sm_factory(i) for i in self.ids}
        self.out = {i: io.StringIO() for i in self.ids}
        self.nodes: dict[NodeId, RaftNode] = {}
        self.tasks: dict[NodeId, asyncio.Task[None]] = {}
        self.snapshot_dir = snapshot_dir
        self.config = config

    def make(self, i: NodeId) -> RaftNode:
        config = ServerConfig(
            node_id=i, voters=frozenset(self.ids), timing=self.timing, seed=int(i), **self.config
        )
        events = EventLog(i, stream=self.out[i], level=logging.DEBUG)
        return RaftNode(
            config,
            self.storage[i],
            self.net.factory(i),
            self.sms[i],
            events,
            snapshot_dir=self.snapshot_dir / f"node-{i}" if self.snapshot_dir else None,
        )

    def start(self, i: NodeId) -> RaftNode:
        node = self.nodes[i] = self.make(i)
        self.tasks[i] = asyncio.create_task(node.run())
        return node

    async def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    async def stop(self, i: NodeId) -> None:
        self.nodes[i].stop()
        await self.tasks[i]

    async def close(self) -> None:
        for i, node in self.nodes.items():
            node.stop()
            task = self.tasks[i]
            if not task.done():
                await task

    async def propose(self, data: bytes, seq: int) -> None:
        """Propose through whichever node leads, retrying (in one client session, so a
        retry is applied once) until it commits."""
        for _attempt in range(100):
            leader = await self.leader()
            try:
                await leader.propose(data, timeout=5, client="test", seq=seq)
                return
            except (NotLeader, LeadershipLost, RequestTimeout, OutcomeUnknown, NodeStopped):
                await asyncio.sleep(0.05)
        raise AssertionError(f"{data!r} never committed")

    async def one_behind_the_compaction(self, entries: int) -> NodeId:
        """Stop a follower, commit ``entries`` entries without it until the leader has
        compacted its log past index 30; the follower (still stopped) is returned."""
        leader = await self.leader()
        behind = next(i for i in self.ids if i != leader.id)
        await self.stop(behind)
        for k in range(entries):
            await self.propose(f"v{k}".encode(), k + 1)
        leader = await self.leader()
        await eventually_async(
            self.storage[leader.id].first_index,
            what="compaction past 30",
            until=lambda first: first > 30,
        )
        return behind

    async def leader(self, among: list[NodeId] | None = None) -> RaftNode:
        def leaders() -> list[NodeId]:
            return [
                i
                for i, n in self.nodes.items()
                if n.is_leader and not self.tasks[i].done() and (among is None or i in among)
            ]

        found = await eventually_async(
            leaders,
            what=f"one leader among {among or 'all'}",
            until=lambda ids: len(ids) == 1,
        )
        return self.nodes[found[0]]


def test_three_nodes_elect_a_leader_and_commit_on_every_node() -> None:
    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            leader = await c.leader()
            done = await leader.propose(b"SET 5", timeout=5)
            assert (done.result.index, done.result.term) == (done.index, done.term)
            assert c.sms[leader.id].read_sync(done.index, 1).records[0].data == b"SET 5"
            await leader.propose(b"ADD 1", timeout=5)
            await eventually_async(
                lambda: [records(sm) for sm in c.sms.values()],
                what="every node applying both entries",
                until=lambda logs: all(log == [b"SET 5", b"ADD 1"] for log in logs),
            )
            lines = c.out[leader.id].getvalue()
            assert "Received 2 votes. State: Leader" in lines
            assert "Leader committed 'SET 5'" in lines
            follower = next(i for i in c.ids if i != leader.id)
            assert "Follower committed 'ADD 1'" in c.out[follower].getvalue()
        finally:
            await c.close()

    run(main())


def test_a_follower_refuses_proposals_and_reads_with_the_leader_hint() -> None:
    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            leader = await c.leader()
            follower = next(n for i, n in c.nodes.items() if i != leader.id)
            await eventually_async(
                lambda: follower.leader,
                what=f"the follower to know leader {leader.id}",
                until=lambda known: known == leader.id,
            )
            with pytest.raises(NotLeader) as exc:
                await follower.propose(b"x", timeout=5)
            assert exc.value.leader_hint == leader.id
            with pytest.raises(NotLeader):
                await follower.read_barrier(timeout=5)
        finally:
            await c.close()

    run(main())


def test_read_barrier_covers_every_acknowledged_write() -> None:
    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            leader = await c.leader()
            index = (await leader.propose(b"a", timeout=5)).index
            applied = await leader.read_barrier(timeout=5)
            assert applied >= index
            assert records(c.sms[leader.id])[-1] == b"a"
        finally:
            await c.close()

    run(main())


def test_an_isolated_leader_is_replaced_and_its_proposal_does_not_commit() -> None:
    async def main() -> None:
        c = Cluster()
        await c.start_all()
        try:
            old = await c.leader()
            await old.propose(b"before", timeout=5)
            c.net.isolate(old.id)
            pending = asyncio.create_task(old.propose(b"lost", timeout=None))
            others = [i for i in c.ids if i != old.id]
            new = await c.leader(among=others)
            assert new.id != old.id
            await new.propose(b"after", timeout=5)
            c.net.heal()
            # Its entry is truncated away when it rejoins: the proposer learns at once.
            with pytest.raises(LeadershipLost):
                await pending
            await eventually_async(
                lambda: [records(sm) for sm in c.sms.values()],
                what="the old leader to converge on the new log",
                until=lambda logs: all(log == [b"before", b"after"] for log in logs),
            )
        finally:
            await c.close()

    run(main())


def test_graceful_shutdown_of_the_leader_hands_leadership_over() -> None:
    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            old = await c.leader()
            await old.propose(b"x", timeout=5)
            await old.shutdown(transfer=True)
            await c.tasks[old.id]
            others = [i for i in c.ids if i != old.id]
            new = await c.leader(among=others)
            out = c.out[new.id].getvalue()
            assert "(leadership transfer)" in out  # it campaigned on TimeoutNow, not a timeout
            await new.propose(b"y", timeout=5)
        finally:
            await c.close()

    run(main())


def test_a_stopping_leader_hands_over_to_no_peer_it_cannot_reach() -> None:
    """A leader cut off from every follower (their connections down) stops without a
    hand-over: none would arrive, and it would only wait for one."""

    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            old = await c.leader()
            await old.propose(b"x", timeout=5)
            c.net.isolate(old.id)
            await old.shutdown(transfer=True)
            await c.tasks[old.id]
            assert "handing leadership" not in c.out[old.id].getvalue()
        finally:
            await c.close()

    run(main())


def test_a_stopping_leader_does_not_wait_for_a_successor_that_went_away() -> None:
    """As a whole cluster stops: the follower the leader hands over to goes away before
    it could campaign; the leader notices its connection down and stops at once."""

    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            old = await c.leader()
            await old.propose(b"x", timeout=5)
            for i in c.ids:  # what the leader sends (TimeoutNow too) waits at the followers
                if i != old.id:
                    c.nodes[i].hold_peers({old.id})
            stopping = asyncio.create_task(old.shutdown(transfer=True))
            out = await eventually_async(
                c.out[old.id].getvalue,
                what="the leader to start a hand-over (its log)",
                until=lambda out: "Stopping: handing leadership to node" in out,
            )
            found = re.search(r"handing leadership to node (\d+)", out)
            assert found is not None
            target = NodeId(int(found.group(1)))
            c.net.down(target)  # its process exited: the connection closes
            await stopping
            await c.tasks[old.id]
            out = c.out[old.id].getvalue()
            assert f"Node {target} went away: stopping without a hand-over" in out
        finally:
            c.net.heal()
            await c.close()

    run(main())


class _FailingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    async def save_async(
        self, hard_state: HardState | None, entries: Any, snapshot: Any = None
    ) -> None:
        if self.fail:
            raise StorageError("disk on fire")
        await super().save_async(hard_state, entries, snapshot)


def test_a_storage_error_stops_the_node_loudly() -> None:
    async def main() -> None:
        c = Cluster(storage_factory=lambda _i: _FailingStorage())
        await c.start_all()
        try:
            leader = await c.leader()
            c.storage[leader.id].fail = True
            # The entry was in the leader's log when its write failed: it may or may not
            # be committed by the others, and the proposer is told exactly that.
            with pytest.raises(OutcomeUnknown, match="stopped after accepting it"):
                await leader.propose(b"x", timeout=3)
            with pytest.raises(StorageError, match="disk on fire"):
                await asyncio.wait_for(c.tasks[leader.id], 5)
            assert "Storage failed, stopping the node" in c.out[leader.id].getvalue()
        finally:
            c.storage[c.ids[0]].fail = False
            await c.close()

    run(main())


def test_malformed_peer_messages_are_dropped_and_the_node_serves_on() -> None:
    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            leader = await c.leader()
            follower = next(n for i, n in c.nodes.items() if i != leader.id)
            bad = AppendEntries(
                leader.id, follower.id, leader.term, 0, 0, (Entry(5, 1, data=b"gap"),), 0
            )
            follower._on_message(bad)  # as if the transport delivered it
            await eventually_async(
                lambda: follower.dropped_messages, what="the drop", until=lambda n: n >= 1
            )
            await leader.propose(b"still fine", timeout=5)
            await eventually_async(
                lambda: records(c.sms[follower.id])[-1:],
                what="the follower to apply 'still fine'",
                until=lambda last: last == [b"still fine"],
            )
        finally:
            await c.close()

    run(main())


def test_the_node_driver_obeys_the_ready_contract() -> None:
    """The server's Ready handling, wrapped from the outside like the simulator's."""

    async def main() -> None:
        recorders = {NodeId(i): ContractRecorder(f"node {i}") for i in (1, 2, 3)}

        class RecordingStorage(MemoryStorage):
            def __init__(self, recorder: ContractRecorder) -> None:
                super().__init__()
                self.recorder = recorder

            async def save_async(
                self, hard_state: HardState | None, entries: Any, snapshot: Any = None
            ) -> None:
                self.recorder.saved(hard_state, tuple(entries), snapshot)
                self.recorder.synced()  # each save is durable when it returns
                await super().save_async(hard_state, entries, snapshot)

        c = Cluster(storage_factory=lambda i: RecordingStorage(recorders[NodeId(i)]), timing=STEADY)
        original = c.make

        def make(i: NodeId) -> RaftNode:
            node = original(i)
            recorder = recorders[i]
            watch_core(node._core, recorder)
            send = node.transport.send

            def recorded_send(msg: Message) -> bool:
                recorder.sent(msg)
                return send(msg)

            node.transport.send = recorded_send  # type: ignore[method-assign]
            apply = node._apply

            def recorded_apply(entry: Entry) -> None:
                recorder.applied(entry)
                apply(entry)

            node._apply = recorded_apply  # type: ignore[method-assign]
            return node

        c.make = make  # type: ignore[method-assign]
        await c.start_all()
        try:
            leader = await c.leader()
            await asyncio.gather(*(leader.propose(f"v{k}".encode(), timeout=5) for k in range(50)))
            await leader.read_barrier(timeout=5)
            await eventually_async(
                lambda: [len(records(sm)) for sm in c.sms.values()],
                what="every node to apply the 50 entries",
                until=lambda counts: all(n == 50 for n in counts),
            )
        finally:
            await c.close()
        assert all(r.readies >= 3 for r in recorders.values()), [
            r.readies for r in recorders.values()
        ]

    run(main())


def test_stopping_answers_every_waiting_caller_even_with_a_full_inbox() -> None:
    async def main() -> None:
        c = Cluster(timing=STEADY)
        original = c.make

        def small_inbox(i: NodeId) -> RaftNode:
            node = original(i)
            node._inbox = asyncio.Queue(4)
            return node

        c.make = small_inbox  # type: ignore[method-assign]
        await c.start_all()
        try:
            leader = await c.leader()
            c.net.isolate(leader.id)  # nothing can commit: proposals stay pending
            calls = [asyncio.create_task(leader.propose(f"p{k}".encode())) for k in range(50)]
            await eventually_async(
                lambda: len(leader._proposals), what="a proposal accepted", until=lambda n: n >= 1
            )
            leader.stop()
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
            kinds = {type(r).__name__ for r in results}
            assert kinds <= {"OutcomeUnknown", "NodeStopped"}, kinds
            assert "OutcomeUnknown" in kinds  # accepted ones may still commit elsewhere
        finally:
            await c.close()

    run(main())


def test_held_messages_wait_and_then_arrive_in_order() -> None:
    """The test-only 'hold' fault (the split-vote demo's staging): a held peer's messages
    are kept, not lost, and delivered in their order once released."""

    async def main() -> None:
        c = Cluster(timing=STEADY)
        await c.start_all()
        try:
            leader = await c.leader()
            await leader.propose(b"first", timeout=5)
            held = next(i for i in c.ids if i != leader.id)
            await eventually_async(
                lambda: records(c.sms[held]),
                what="the follower to apply 'first'",
                until=lambda log: len(log) == 1,
            )
            c.nodes[held].hold_peers({leader.id})
            await leader.propose(b"second", timeout=5)  # the other follower acknowledges
            await leader.propose(b"third", timeout=5)
            assert records(c.sms[held]) == [b"first"]
            assert c.nodes[held]._held_messages, "the leader's messages are kept"
            c.nodes[held].hold_peers(set())
            await eventually_async(
                lambda: records(c.sms[held]),
                what="the released messages to be applied in order",
                until=lambda log: log == [b"first", b"second", b"third"],
            )
            assert not c.nodes[held]._held_messages
        finally:
            await c.close()

    run(main())


# -- snapshots ---------------------------------------------------------------------------


class ListMachine:
    """An in-memory state machine (no persisted index): a list of commands, snapshotted
    as JSON. Its state is rebuilt at start from the latest snapshot and the log."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def apply(self, index: int, term: int, data: bytes) -> int:
        self.items.append(data.decode())
        return len(self.items)

    def snapshot(self) -> BytesSnapshot:
        return BytesSnapshot(json.dumps(self.items).encode())

    def restore(self, source: BinaryIO) -> None:
        self.items = json.loads(source.read())


def test_the_log_is_compacted_after_each_snapshot(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(
            sm_factory=lambda _i: ListMachine(),
            snapshot_dir=tmp_path,
            timing=STEADY,
            snapshot_entries=20,
            keep_entries=5,
        )
        await c.start_all()
        try:
            leader = await c.leader()
            for k in range(70):
                await c.propose(f"v{k}".encode(), k + 1)
            leader = await c.leader()
            storage = c.storage[leader.id]
            await eventually_async(
                lambda: storage.snapshot().index,
                what="a snapshot at 60+",
                until=lambda index: index >= 60,
            )
            # Entries up to the snapshot minus the kept ones are gone from the log.
            assert storage.first_index() == storage.snapshot().index - 5 + 1
            files = list((tmp_path / f"node-{leader.id}").glob("snap-*.snap"))
            assert [f.name for f in files] == [storage.checkpoint().file]
            assert "log compacted, now starts at" in c.out[leader.id].getvalue()
        finally:
            await c.close()

    run(main())


def test_a_follower_behind_the_compacted_log_catches_up_by_snapshot(tmp_path: Path) -> None:
    """With a state machine rebuilt from snapshots, and with the replicated log (which
    keeps its own state: the leader writes a snapshot file only when one is needed)."""

    async def main(sm_factory: Callable[[NodeId], Any], name: str) -> None:
        c = Cluster(
            sm_factory=sm_factory,
            snapshot_dir=tmp_path / name,
            timing=STEADY,
            snapshot_entries=20,
            keep_entries=3,
            snapshot_chunk_bytes=64,  # many chunks, even for a small state
        )
        await c.start_all()
        try:
            behind = await c.one_behind_the_compaction(100)
            leader = await c.leader()
            node = c.start(behind)
            expected = [f"v{k}" for k in range(100)]
            # The state is restored in a thread: the node counts the install (and logs
            # it) a moment after the state is there.
            await eventually_async(
                lambda: (_contents(c.sms[behind]), node.snapshots_installed),
                what="the follower's state to be v0..v99, by an installed snapshot",
                until=lambda seen: seen[0] == expected and seen[1] >= 1,
            )
            assert leader.snapshots_sent >= 1
            assert "Installed snapshot" in c.out[behind].getvalue()
            # The follower's log starts after the snapshot, and replication goes on.
            assert c.storage[behind].snapshot().index > 30
            await c.propose(b"after", 101)
            await eventually_async(
                lambda: _contents(c.sms[behind])[-1:],
                what="the follower to apply 'after'",
                until=lambda last: last == ["after"],
            )
        finally:
            await c.close()

    run(main(lambda _i: ListMachine(), "in-memory"))
    run(main(lambda _i: ReplicatedLog(), "replicated-log"))


def _prune_from_thread(node: RaftNode, loop: asyncio.AbstractEventLoop | None) -> None:
    """Prune the node's snapshot files now, from a worker thread (as if a compaction
    finished on the loop at this moment): on its loop, waiting for it."""

    async def prune() -> None:
        node._prune_files()

    assert loop is not None
    asyncio.run_coroutine_threadsafe(prune(), loop).result(10)


def test_a_snapshot_landing_on_a_follower_survives_a_prune_before_it_is_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver renames a finished file to its final name and fsyncs the directory
    before it stages the file; a prune of snapshot files in that window (a compaction or
    an install finishing meanwhile) once deleted it, and the install then stopped the
    node with "cannot read the header: No such file" (seen in CI with the KV example).
    Here the follower prunes in exactly that window, every time."""
    c = Cluster(
        sm_factory=lambda _i: ListMachine(),
        snapshot_dir=tmp_path,
        timing=STEADY,
        snapshot_entries=20,
        keep_entries=3,
    )
    pruned_while_landing: list[str] = []
    real_fsync = snapfile.fsync_directory

    def fsync_and_prune(path: Path) -> None:
        for node in c.nodes.values():
            if node.snapshot_dir == path and node._receiver.landing is not None:
                _prune_from_thread(node, loop)
                pruned_while_landing.append(node._receiver.landing.name)
        real_fsync(path)

    async def main() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        await c.start_all()
        try:
            behind = await c.one_behind_the_compaction(60)
            monkeypatch.setattr(snapfile, "fsync_directory", fsync_and_prune)
            node = c.start(behind)
            expected = [f"v{k}" for k in range(60)]
            await eventually_async(
                lambda: (c.sms[behind].items, node.snapshots_installed),
                what="the follower's state to be v0..v59, by an installed snapshot",
                until=lambda seen: seen[0] == expected and seen[1] >= 1,
            )
            assert node.fatal is None
            assert pruned_while_landing, "the prune never ran in the window"
        finally:
            await c.close()

    loop: asyncio.AbstractEventLoop | None = None
    run(main())


def test_a_snapshot_being_written_survives_a_prune_before_it_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's own snapshot is under its final name once the writing thread renamed it,
    before the compaction records it: a prune in between must keep it, or the
    checkpoint names a file that is gone (found by reading, after the landing bug)."""
    c = Cluster(
        sm_factory=lambda _i: ListMachine(),
        snapshot_dir=tmp_path,
        timing=STEADY,
        snapshot_entries=10,
        keep_entries=3,
    )
    real_write = snapfile.write
    pruned: list[str] = []

    def write_then_prune(directory: Path, *args: Any, **kwargs: Any) -> Path:
        path = real_write(directory, *args, **kwargs)
        for node in c.nodes.values():
            if node.snapshot_dir == directory:
                _prune_from_thread(node, loop)
                pruned.append(path.name)
        return path

    async def main() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(snapfile, "write", write_then_prune)
        await c.start_all()
        try:
            for k in range(25):
                await c.propose(f"v{k}".encode(), k + 1)
            for i in c.ids:
                await eventually_async(
                    lambda i=i: c.storage[i].checkpoint(),  # type: ignore[misc]
                    what=f"node {i} to record a snapshot",
                    until=lambda cp: cp.meta.index >= 10,
                )
                file = c.storage[i].checkpoint().file
                assert (c.nodes[i].snapshot_dir / file).is_file(), f"node {i} lost {file}"
            assert pruned, "no prune ran in the window"
        finally:
            await c.close()

    loop: asyncio.AbstractEventLoop | None = None
    run(main())


def _contents(sm: Any) -> list[str]:
    if isinstance(sm, ListMachine):
        return sm.items
    return [d.decode() for d in records(sm)]


def test_a_restarted_node_rebuilds_its_state_from_snapshot_and_log(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(
            sm_factory=lambda _i: ListMachine(),
            snapshot_dir=tmp_path,
            timing=STEADY,
            snapshot_entries=10,
            keep_entries=2,
        )
        await c.start_all()
        try:
            leader = await c.leader()
            for k in range(35):
                await c.propose(f"v{k}".encode(), k + 1)
            leader = await c.leader()
            other = next(i for i in c.ids if i != leader.id)
            # Where the snapshots fall depends on how the commits were batched (one every
            # 10 applied entries or more): wait for one, not for a given index.
            await eventually_async(
                lambda: (c.storage[other].snapshot().index, len(c.sms[other].items)),
                what="a snapshot, and 35 entries applied",
                until=lambda seen: seen[0] >= 10 and seen[1] == 35,
            )
            assert c.storage[other].first_index() > 1  # compacted: the start needs the file
            await c.stop(other)
            c.sms[other] = ListMachine()  # a new process: its memory is gone
            c.start(other)
            await eventually_async(
                lambda: c.sms[other].items,
                what="the state rebuilt from the snapshot and the log",
                until=lambda items: items == [f"v{k}" for k in range(35)],
            )
        finally:
            await c.close()

    run(main())


def test_a_corrupt_snapshot_file_stops_the_node_naming_it(tmp_path: Path) -> None:
    async def main() -> None:
        c = Cluster(
            sm_factory=lambda _i: ListMachine(),
            snapshot_dir=tmp_path,
            timing=STEADY,
            snapshot_entries=10,
            keep_entries=0,
        )
        await c.start_all()
        try:
            leader = await c.leader()
            for k in range(25):
                await c.propose(f"v{k}".encode(), k + 1)
            leader = await c.leader()
            other = next(i for i in c.ids if i != leader.id)
            await eventually_async(
                lambda: c.storage[other].snapshot().index,
                what="a snapshot at 20+",
                until=lambda index: index >= 20,
            )
            await c.stop(other)
            path = tmp_path / f"node-{other}" / c.storage[other].checkpoint().file
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            c.sms[other] = ListMachine()
            c.start(other)
            with pytest.raises(SnapshotFailed, match="checksum mismatch"):
                await asyncio.wait_for(c.tasks[other], 5)
            assert str(path) in c.out[other].getvalue()
            assert c.sms[other].items == []  # nothing half-applied
        finally:
            await c.close()

    run(main())


def test_entry_events_are_made_only_when_someone_sees_them() -> None:
    """Below the event log's level and with no subscriber, the core reports no event per
    entry (the cost under load); a subscriber turns them back on, and off when it goes."""

    async def main() -> None:
        c = Cluster(timing=STEADY)
        c.make = _quiet(c.make)  # type: ignore[method-assign]
        await c.start_all()
        try:
            leader = await c.leader()
            await leader.propose(b"quiet", timeout=5)
            assert "quiet" not in c.out[leader.id].getvalue()
            assert leader._core.entry_events is False
            stream = leader.subscribe()
            assert leader._core.entry_events is True
            await leader.propose(b"seen", timeout=5)
            kinds = set()
            while not stream.queue.empty():
                event = stream.queue.get_nowait()
                kinds.add(type(event).__name__)
                if isinstance(event, ev.EntryCommitted):
                    assert event.data == b"seen"
            assert {"ProposalReceived", "EntryCommitted"} <= kinds
            stream.close()
            assert leader._core.entry_events is False
        finally:
            await c.close()

    def _quiet(make: Callable[[NodeId], RaftNode]) -> Callable[[NodeId], RaftNode]:
        def quiet(i: NodeId) -> RaftNode:
            node = make(i)
            node.events.level = logging.WARNING
            node._want_entry_events()
            return node

        return quiet

    run(main())
