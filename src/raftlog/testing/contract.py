"""A checker of the Ready contract, for any driver of a Raft core.

A driver (the simulator's node, the server) is wrapped from the outside so that every
action it takes on behalf of a Ready is reported to a :class:`ContractRecorder`: taking
the Ready, writing, syncing, sending, applying, advancing. The recorder raises
:class:`ContractViolation` at the first action out of the order stated in
:mod:`raftlog.core.raft`:

1. the installed snapshot, entries and hard state written (one write) before anything is
   applied or any persisted message is sent; a Ready that changes only the commit index
   (no entries, no ``must_sync``) may skip the write, and a later write may carry that
   hard state; the state machine restored from an installed snapshot after that write and
   before any entry is applied;
2. synced, when ``must_sync``, before any persisted message is sent or entry applied;
3. persisted messages only after that; plain messages at any time; between Readies, only
   the latest hard state may be written (a driver flushing a deferred commit index);
4. committed entries applied in index order, each exactly once per process life (a life
   starts right after the snapshot it was restored from);
5. ``advance`` last, after every persisted message and every committed entry of the Ready;
   no new Ready taken before it.
"""

from __future__ import annotations

import msgspec

from raftlog.core.messages import Message
from raftlog.core.raft import Raft, Ready
from raftlog.core.types import Entry, HardState
from raftlog.storage.base import Checkpoint


class ContractViolation(AssertionError):
    pass


class ContractRecorder:
    def __init__(self, name: str = "node") -> None:
        self.name = name
        self._ready: Ready | None = None
        self._saved = False
        self._synced = False
        self._persisted_left: list[Message] = []
        self._apply_left: list[Entry] = []
        self._last_applied: int | None = 0
        self._restored = False
        self._latest_hard: HardState | None = None
        self.readies = 0
        self.actions: list[str] = []

    @property
    def in_ready(self) -> bool:
        """A Ready has been taken and not yet advanced."""
        return self._ready is not None

    def _fail(self, text: str) -> None:
        raise ContractViolation(f"{self.name}: {text} (actions so far: {self.actions[-8:]})")

    def took(self, rd: Ready) -> None:
        self.actions.append("take")
        if self._ready is not None:
            self._fail("took a new Ready before advancing the previous one")
        self._ready = rd
        self._saved = not rd.entries and not rd.must_sync
        self._synced = not rd.must_sync
        if rd.hard_state is not None:
            self._latest_hard = rd.hard_state
        self._persisted_left = list(rd.persisted_messages)
        self._apply_left = list(rd.committed_entries)
        self._restored = rd.snapshot is None
        self.readies += 1

    def saved(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...] | list[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None:
        self.actions.append("save")
        if self._ready is None:
            # Between Readies a driver may only write down the latest hard state (a
            # deferred commit index, when it stops).
            if entries or snapshot or hard_state is None or hard_state != self._latest_hard:
                self._fail("wrote something outside of a Ready")
            return
        rd = self._ready
        if (snapshot.meta if snapshot is not None else None) != rd.snapshot:
            self._fail(f"wrote snapshot {snapshot}, the Ready has {rd.snapshot}")
        if tuple(entries) != rd.entries:
            self._fail("wrote entries other than the Ready's")
        if hard_state is not None and hard_state != self._latest_hard:
            self._fail(f"wrote hard state {hard_state}, not the latest {self._latest_hard}")
        if rd.must_sync and rd.hard_state is not None and hard_state != rd.hard_state:
            self._fail("left out a hard state that must be durable")
        self._saved = True

    def synced(self) -> None:
        self.actions.append("sync")
        if self._ready is not None:
            if not self._saved:
                self._fail("synced before writing")
            self._synced = True

    def sent(self, msg: Message) -> None:
        # The lease's send times are the server's, stamped on the way out: not the core's.
        stamps = {f: 0 for f in ("sent_ns", "echo_ns") if getattr(msg, f, 0)}
        if stamps:
            msg = msgspec.structs.replace(msg, **stamps)
        rd = self._ready
        if rd is None:
            self.actions.append("send")
            return  # e.g. messages of a Ready whose node crashed mid-way are gone anyway
        if msg in self._persisted_left:
            self.actions.append("send-persisted")
            if not (self._saved and self._synced):
                self._fail(f"sent {msg.describe()} before its Ready was durable")
            self._persisted_left.remove(msg)
        else:
            self.actions.append("send")
            if msg not in rd.messages:
                self._fail(f"sent {msg.describe()}, which is not in the Ready")

    def restored(self, index: int) -> None:
        """The state machine took an installed snapshot's state, up to ``index``."""
        self.actions.append("restore")
        rd = self._current("restored")
        if rd.snapshot is None or rd.snapshot.index != index:
            self._fail(f"restored a snapshot at {index}; the Ready installs {rd.snapshot}")
        if not (self._saved and self._synced):
            self._fail("restored the state machine before the snapshot was durable")
        if self._last_applied is not None and self._apply_left != list(rd.committed_entries):
            self._fail("restored the state machine after applying entries")
        self._restored = True
        self._last_applied = index

    def applied(self, entry: Entry) -> None:
        self.actions.append("apply")
        self._current("applied")
        if not (self._saved and self._synced):
            self._fail(f"applied entry {entry.index} before the Ready was durable")
        if not self._restored:
            self._fail(f"applied entry {entry.index} before restoring the installed snapshot")
        if not self._apply_left or self._apply_left[0] != entry:
            self._fail(f"applied entry {entry.index} out of order or not in the Ready")
        if self._last_applied is not None and entry.index != self._last_applied + 1:
            self._fail(f"applied {entry.index} after {self._last_applied}")
        self._apply_left.pop(0)
        self._last_applied = entry.index

    def advanced(self, rd: Ready) -> None:
        self.actions.append("advance")
        if rd is not self._ready:
            self._fail("advanced a Ready it did not take")
        if self._persisted_left:
            self._fail(f"advanced before sending {len(self._persisted_left)} persisted messages")
        if self._apply_left:
            self._fail(f"advanced before applying {len(self._apply_left)} entries")
        if not (self._saved and self._synced):
            self._fail("advanced before the Ready was durable")
        if not self._restored:
            self._fail("advanced without restoring the installed snapshot")
        self._ready = None

    def crashed(self) -> None:
        """A crash: the Ready in hand is abandoned."""
        self.actions.append("crash")
        self._ready = None
        self._last_applied = None

    def restarted(self, applied: int = 0) -> None:
        """A new process: it applies from right after ``applied`` (the snapshot it was
        restored from; 0 if none)."""
        self.actions.append("restart")
        self._ready = None
        self._last_applied = applied

    def _current(self, what: str) -> Ready:
        if self._ready is None:
            self._fail(f"{what} outside of a Ready")
            raise AssertionError  # unreachable
        return self._ready


def watch_core(core: Raft, recorder: ContractRecorder) -> None:
    """Wrap ``core.ready`` and ``core.advance`` (on this instance) so that the recorder
    sees every Ready taken and advanced."""
    ready, advance = core.ready, core.advance

    def recorded_ready() -> Ready:
        rd = ready()
        recorder.took(rd)
        return rd

    def recorded_advance(rd: Ready) -> None:
        recorder.advanced(rd)
        advance(rd)

    core.ready = recorded_ready  # type: ignore[method-assign]
    core.advance = recorded_advance  # type: ignore[method-assign]
