"""A simulated node: one Raft core, a simulated disk, and a state machine, driven through
the Ready contract exactly as the server drives a real node.

A crash can be armed to strike in the middle of handling a Ready, at one of the points
where a real process could die: after the messages that need no durability went out but
before the write; after the write but before the fsync; after the fsync but before the
acknowledgements went out.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Protocol

from raftlog.core.config import Config
from raftlog.core.messages import Message
from raftlog.core.raft import Raft, Ready
from raftlog.core.types import Entry, EntryKind, NodeId, ReadState
from raftlog.sim.disk import SimDisk


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
    ) -> None:
        self.id = node_id
        self.early_send = early_send
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
        self.disk.save(rd.hard_state, rd.entries)  # 1. one atomic write
        if strike is CrashPoint.AFTER_SAVE:
            self.crash(strike)
            return
        if rd.must_sync:  # 2. durable
            self.disk.sync()
        if strike is CrashPoint.AFTER_SYNC:
            self.crash(strike)
            return
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
        """A new process on the same disk; the state machine is rebuilt by re-applying."""
        self.alive = True
        self.paused = False
        self.lives += 1
        self.state_machine = []
        self.applied_index = 0
        self.raft = Raft(self.config, self.disk.volatile, self.rng)
