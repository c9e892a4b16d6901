"""A simulated node: one Raft core, a simulated disk, and a state machine, driven through
the Ready contract exactly as the server drives a real node.

A crash can be armed to strike in the middle of handling a Ready, at one of the points
where a real process could die: after the messages that need no durability went out but
before the write; after the write but before the fsync; after the fsync but before the
acknowledgements went out.

Snapshots work as in the server: the state machine is captured at its applied index, the
file is written "in the background" (the cluster decides when the write completes, while
the node goes on applying), and only then is the log compacted, by the shared rule of
:mod:`raftlog.core.compaction`. A restart restores the state machine from the latest
checkpoint's file and applies the log after it. A snapshot from the leader arrives with
its bytes staged beside the InstallSnapshot message.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from raftlog.core.compaction import plan_compaction
from raftlog.core.config import Config
from raftlog.core.messages import Message
from raftlog.core.raft import Raft, Ready
from raftlog.core.types import Entry, EntryKind, NodeId, ReadState, SnapshotMeta
from raftlog.sim.disk import SimDisk
from raftlog.storage.base import Checkpoint

_state_decoder = msgspec.msgpack.Decoder(list[bytes])


def snapshot_file_name(index: int, term: int) -> str:
    return f"snap-{index:020d}-{term:020d}"


@dataclass(frozen=True)
class SnapshotPolicy:
    """When a simulated node snapshots: every ``entries`` applied entries (0: never),
    keeping ``keep_entries`` in the log for followers a little behind."""

    entries: int = 0
    keep_entries: int = 0


@dataclass
class Capture:
    """A snapshot being written: the state as of ``meta.index``."""

    meta: SnapshotMeta
    data: bytes
    life: int


class CrashPoint(enum.Enum):
    AFTER_SEND = "before the write (messages may have gone out)"
    AFTER_SAVE = "after the write, before fsync"
    AFTER_SYNC = "after fsync, before the acknowledgements"


class NodeObserver(Protocol):
    """What a node tells the world around it (the cluster, or a test harness)."""

    def send(self, node: SimNode, msg: Message) -> None: ...

    def ready(self, node: SimNode, rd: Ready) -> None:
        """A Ready was taken (for traces and checks), before it is handled."""
        ...

    def applied(self, node: SimNode, entry: Entry, position: int) -> None:
        """``entry`` was applied; ``position`` counts the client entries applied so far
        (0 for a no-op)."""
        ...

    def read_ready(self, node: SimNode, read: ReadState) -> None:
        """A confirmed read may be served now (the state machine has applied its index)."""
        ...

    def read_dropped(self, node: SimNode, context: bytes) -> None: ...

    def crashed(self, node: SimNode, point: CrashPoint | None, lost_writes: int) -> None: ...

    def snapshot_started(self, node: SimNode, capture: Capture) -> None:
        """A snapshot was captured; call ``node.finish_snapshot(capture)`` once its file is
        written (at once, or later while the node goes on)."""
        ...

    def restored(self, node: SimNode, index: int) -> None:
        """The state machine was replaced by a snapshot's state as of ``index``."""
        ...


class ApplyOrderError(Exception):
    """The node was handed a committed entry out of index order."""


class SimNode:
    def __init__(
        self,
        node_id: NodeId,
        config: Config,
        rng: random.Random,
        observer: NodeObserver,
        *,
        early_send: float = 0.75,
        snapshots: SnapshotPolicy | None = None,
    ) -> None:
        self.id = node_id
        self.early_send = early_send
        self.snapshots = snapshots or SnapshotPolicy()
        self.staged: dict[tuple[int, int], bytes] = {}
        """Snapshot bytes that arrived with an InstallSnapshot, by (index, term)."""
        self._snapshotting = False
        """How often ``messages`` go out before the write rather than after it."""
        self.config = config
        self.rng = rng
        self.observer = observer
        self.disk = SimDisk()
        self.alive = True
        self.paused = False
        self.crash_at: CrashPoint | None = None
        """An armed crash strikes at this point of the next Ready that ``crash_when``
        accepts (any Ready if None)."""
        self.crash_when: Callable[[Ready], bool] | None = None
        self.lives = 1
        self.state_machine: list[bytes] = []
        self.applied_index = 0
        self._waiting_reads: list[ReadState] = []
        self.raft: Raft = Raft(config, self.disk.volatile, rng)

    # -- the Ready contract ----------------------------------------------------------

    def process_ready(self) -> None:
        """Handle Readies until the core has nothing more to say (or the node crashes)."""
        while self.alive and self.raft.has_ready():
            self._handle(self.raft.ready())

    def _handle(self, rd: Ready) -> None:
        observer = self.observer
        observer.ready(self, rd)
        strike = self.crash_at if self.crash_when is None or self.crash_when(rd) else None
        # Messages that need no durability may go out before the write or after it; both
        # orders happen in a real node, so the simulation tries both.
        early = self.early_send >= 1.0 or self.rng.random() < self.early_send
        if early:
            for msg in rd.messages:
                observer.send(self, msg)
        if strike is CrashPoint.AFTER_SEND:
            self.crash(strike)
            return
        installed: Checkpoint | None = None
        if rd.snapshot is not None:  # 1a. the snapshot's file first, then the log
            installed = self._stage_install(rd.snapshot)
        self.disk.save(rd.hard_state, rd.entries, installed)  # 1. one atomic write
        if strike is CrashPoint.AFTER_SAVE:
            self.crash(strike)
            return
        if rd.must_sync:  # 2. durable
            self.disk.sync()
        if strike is CrashPoint.AFTER_SYNC:
            self.crash(strike)
            return
        if installed is not None:  # the state machine takes the snapshot's state
            self._restore(installed)
        if not early:
            for msg in rd.messages:
                observer.send(self, msg)
        for msg in rd.persisted_messages:  # 3. acknowledgements, now that they are true
            observer.send(self, msg)
        for entry in rd.committed_entries:  # 4. apply in order, exactly once
            self._apply(entry)
        self._waiting_reads.extend(rd.read_states)
        self._serve_reads()
        for context in rd.dropped_reads:
            observer.read_dropped(self, context)
        self.raft.advance(rd)  # 5.
        self._maybe_snapshot()

    # -- snapshots -------------------------------------------------------------------

    def stage(self, meta: SnapshotMeta, data: bytes) -> None:
        """An InstallSnapshot's bytes arrived (before the message is stepped)."""
        self.staged[(meta.index, meta.term)] = data
        while len(self.staged) > 8:
            del self.staged[next(iter(self.staged))]

    def _stage_install(self, meta: SnapshotMeta) -> Checkpoint:
        data = self.staged[(meta.index, meta.term)]
        name = snapshot_file_name(meta.index, meta.term)
        self.disk.write_file(name, data)
        return Checkpoint(meta, name)

    def _restore(self, checkpoint: Checkpoint) -> None:
        self.state_machine = _state_decoder.decode(self.disk.files[checkpoint.file])
        self.applied_index = checkpoint.meta.index
        self.observer.restored(self, checkpoint.meta.index)

    def _maybe_snapshot(self) -> None:
        every = self.snapshots.entries
        if not every or self._snapshotting:
            return
        if self.applied_index - self.disk.volatile.snapshot().index < every:
            return
        term = self.raft.log.term(self.applied_index)
        if term is None:
            return
        meta = SnapshotMeta(self.applied_index, term, self.raft.conf_at(self.applied_index))
        self._snapshotting = True
        data = msgspec.msgpack.encode(self.state_machine)
        self.observer.snapshot_started(self, Capture(meta, data, self.lives))

    def finish_snapshot(self, capture: Capture) -> None:
        """The snapshot's file is written: record it and compact the log."""
        if not self.alive or capture.life != self.lives:
            return  # the process died meanwhile: the write never finished
        self._snapshotting = False
        if capture.meta.index <= self.disk.volatile.snapshot().index:
            return  # a newer snapshot (from the leader) arrived meanwhile
        log = self.raft.log
        plan = plan_compaction(
            captured=capture.meta.index,
            applied=self.applied_index,
            keep_entries=self.snapshots.keep_entries,
            first_index=self.disk.volatile.first_index(),
            bugs=self.config.bugs,
        )
        term = log.term(plan.snapshot_index)
        if term is None:
            return
        meta = SnapshotMeta(plan.snapshot_index, term, capture.meta.conf)
        name = snapshot_file_name(meta.index, meta.term)
        self.disk.write_file(name, capture.data)
        # Never past what the log holds durably (a leader may have unstable entries).
        upto = min(plan.compact_to, log.persisted_index(), self.disk.volatile.last_index())
        self.disk.compact(Checkpoint(meta, name), max(upto, 0))

    def _apply(self, entry: Entry) -> None:
        if entry.index != self.applied_index + 1:
            raise ApplyOrderError(
                f"node {self.id} was handed entry {entry.index} after applying {self.applied_index}"
            )
        self.applied_index = entry.index
        position = 0
        if entry.kind is EntryKind.NORMAL:
            self.state_machine.append(entry.data)
            position = len(self.state_machine)
        self.observer.applied(self, entry, position)

    def _serve_reads(self) -> None:
        if not self._waiting_reads:
            return
        still: list[ReadState] = []
        for read in self._waiting_reads:
            if read.index <= self.applied_index:
                self.observer.read_ready(self, read)
            else:
                still.append(read)
        self._waiting_reads = still

    # -- faults ----------------------------------------------------------------------

    def crash(self, point: CrashPoint | None = None) -> None:
        """The process dies: memory is gone, unsynced writes (mostly) lost."""
        self.alive = False
        self.crash_at = None
        self.crash_when = None
        lost = self.disk.crash(self.rng)
        self._waiting_reads = []
        self.observer.crashed(self, point, lost)

    def restart(self) -> None:
        """A new process on the same disk: the state machine is restored from the latest
        checkpoint's file, and the log after it is applied again."""
        self.alive = True
        self.paused = False
        self.lives += 1
        self.state_machine = []
        self.applied_index = 0
        self.staged = {}
        self._snapshotting = False
        checkpoint = self.disk.volatile.checkpoint()
        if checkpoint.meta.index:
            self._restore(checkpoint)
        self.raft = Raft(self.config, self.disk.volatile, self.rng)
