"""The Ready contract (see raftlog.core.raft), checked on the simulator's driver.

The driver is wrapped from the outside: its disk, its core's ready()/advance(), and what it
sends and applies are reported to a ContractRecorder, which fails at the first action out
of order. The server's driver is checked by the same recorder in its own tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from raftlog.core.messages import (
    AppendEntriesResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from raftlog.core.raft import Ready
from raftlog.core.types import ConfState, Entry, HardState, NodeId, SnapshotMeta
from raftlog.sim.cluster import Cluster, SimOptions, _run_phases
from raftlog.sim.harness import Harness
from raftlog.sim.node import CrashPoint, SimNode
from raftlog.storage.base import Checkpoint
from raftlog.testing.contract import ContractRecorder, ContractViolation, watch_core


class _RecordingDisk:
    def __init__(self, inner: Any, recorder: ContractRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Checkpoint | None = None,
    ) -> None:
        self._recorder.saved(hard_state, entries, snapshot)
        self._inner.save(hard_state, entries, snapshot)

    def sync(self) -> None:
        self._recorder.synced()
        self._inner.sync()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def instrument(node: SimNode) -> ContractRecorder:
    recorder = ContractRecorder(f"node {node.id}")
    node.disk = _RecordingDisk(node.disk, recorder)  # type: ignore[assignment]
    watch_core(node.raft, recorder)
    restart = node.restart

    def recorded_restart() -> None:  # a new process: a new core to watch
        restart()
        recorder.restarted(node.applied_index)
        watch_core(node.raft, recorder)

    node.restart = recorded_restart  # type: ignore[method-assign]
    return recorder


class _ContractCluster(Cluster):
    def __init__(self, seed: int, options: SimOptions) -> None:
        super().__init__(seed, options)
        self.recorders = {n.id: instrument(n) for n in self.nodes.values()}

    def send(self, node: SimNode, msg: Message) -> None:
        self.recorders[node.id].sent(msg)
        super().send(node, msg)

    def applied(self, node: SimNode, entry: Entry, position: int) -> None:
        self.recorders[node.id].applied(entry)
        super().applied(node, entry, position)

    def restored(self, node: SimNode, index: int) -> None:
        recorder = self.recorders[node.id]
        if recorder.in_ready:  # an installed snapshot (not a restart's restore)
            recorder.restored(index)
        super().restored(node, index)

    def crashed(self, node: SimNode, point: CrashPoint | None, lost_writes: int) -> None:
        self.recorders[node.id].crashed()
        super().crashed(node, point, lost_writes)


@pytest.mark.parametrize("seed", range(6))
def test_simulator_driver_obeys_the_ready_contract_under_faults(seed: int) -> None:
    cluster = _ContractCluster(seed, SimOptions(nodes=3 + 2 * (seed % 2), steps=2500))
    _run_phases(cluster)
    for node in cluster.initial:  # (spare nodes may never have joined)
        assert cluster.recorders[node].readies > 50


def test_harness_driver_obeys_the_ready_contract() -> None:
    h = Harness()
    recorders = {}
    for node in h.nodes.values():
        recorders[node.id] = instrument(node)
    original_send, original_applied = h.send, h.applied

    def send(node: SimNode, msg: Message) -> None:
        recorders[node.id].sent(msg)
        original_send(node, msg)

    def applied(node: SimNode, entry: Entry, position: int) -> None:
        recorders[node.id].applied(entry)
        original_applied(node, entry, position)

    for node in h.nodes.values():
        node.observer = _Proxy(h, send=send, applied=applied)
    h.campaign(1)
    h.stabilize()
    for i in range(5):
        h.propose(1, f"v{i}".encode())
    h.stabilize()
    assert all(r.readies >= 3 for r in recorders.values())
    assert [e.data for e in h.applied_log[h.ids[1]] if e.data] == [
        f"v{i}".encode() for i in range(5)
    ]


class _Proxy:
    def __init__(self, inner: Harness, **overrides: Callable[..., None]) -> None:
        self._inner = inner
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._inner, name)


class _AcksTooEarly(SimNode):
    """A broken driver: sends acknowledgements before writing them down."""

    def _handle(self, rd: Ready) -> None:
        for msg in rd.persisted_messages:
            self.observer.send(self, msg)
        super()._handle(rd)


def test_the_contract_checker_catches_a_driver_that_acks_before_writing() -> None:
    h = Harness()
    node = h.nodes[h.ids[1]]
    broken = _AcksTooEarly(node.id, node.config, random.Random(1), h, early_send=1.0)
    h.nodes[node.id] = broken
    recorder = instrument(broken)
    broken.observer = _Proxy(h, send=lambda n, m: (recorder.sent(m), h.send(n, m)))
    h.campaign(1)
    with pytest.raises(ContractViolation, match="before its Ready was durable"):
        h.stabilize()


def test_the_contract_checker_catches_applying_before_writing() -> None:
    recorder = ContractRecorder()
    entry = Entry(1, 1, data=b"x")
    rd = Ready(
        hard_state=HardState(1, 0, 1),
        snapshot=None,
        entries=(entry,),
        must_sync=True,
        messages=(),
        persisted_messages=(),
        committed_entries=(entry,),
        read_states=(),
        dropped_reads=(),
        soft_state=None,
        events=(),
    )
    recorder.took(rd)
    with pytest.raises(ContractViolation, match="applied entry 1 before the Ready was durable"):
        recorder.applied(entry)


def test_durability_promising_messages_always_wait_for_the_write() -> None:
    """Votes, vote requests and append acknowledgements are never in ``messages``."""
    promised = (RequestVote, RequestVoteResponse, AppendEntriesResponse)
    seen = 0

    class Watch(Cluster):
        def ready(self, node: SimNode, rd: Ready) -> None:
            nonlocal seen
            for msg in rd.messages:
                assert not isinstance(msg, promised), msg.describe()
            seen += sum(isinstance(m, promised) for m in rd.persisted_messages)
            super().ready(node, rd)

    for seed in range(3):
        _run_phases(Watch(seed, SimOptions(nodes=3, steps=1500)))
    assert seen > 100


def _install_ready(after: Entry) -> Ready:
    return Ready(
        hard_state=HardState(2, 0, 10),
        snapshot=SnapshotMeta(10, 2, ConfState(frozenset({NodeId(1), NodeId(2)}))),
        entries=(),
        must_sync=True,
        messages=(),
        persisted_messages=(),
        committed_entries=(after,),
        read_states=(),
        dropped_reads=(),
        soft_state=None,
        events=(),
    )


def test_the_contract_checker_catches_mistakes_with_an_installed_snapshot() -> None:
    after = Entry(11, 2, data=b"y")
    # Applying the entry after the snapshot without restoring the state machine first.
    recorder = ContractRecorder()
    rd = _install_ready(after)
    recorder.took(rd)
    assert rd.snapshot is not None
    recorder.saved(rd.hard_state, [], Checkpoint(rd.snapshot, "f"))
    recorder.synced()
    with pytest.raises(ContractViolation, match="before restoring"):
        recorder.applied(after)
    # Restoring before the snapshot is durable.
    recorder = ContractRecorder()
    recorder.took(rd)
    with pytest.raises(ContractViolation, match="before the snapshot was durable"):
        recorder.restored(10)
    # Leaving the snapshot out of the write.
    recorder = ContractRecorder()
    recorder.took(rd)
    with pytest.raises(ContractViolation, match="wrote snapshot None"):
        recorder.saved(rd.hard_state, [])
    # The right order passes, and applying resumes right after the snapshot.
    recorder = ContractRecorder()
    recorder.took(rd)
    recorder.saved(rd.hard_state, [], Checkpoint(rd.snapshot, "f"))
    recorder.synced()
    recorder.restored(10)
    recorder.applied(after)
    recorder.advanced(rd)
