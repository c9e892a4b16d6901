"""An in-memory Storage: the twin of the durable one, for tests and the simulator."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from raftlog.core.errors import EntryUnavailable, LogCompacted, UsageError
from raftlog.core.log import limit_size
from raftlog.core.types import ConfState, Entry, HardState, SnapshotMeta
from raftlog.storage.base import Checkpoint


class MemoryStorage:
    """Keeps everything in a list. ``_entries[i]`` has log position ``_offset + 1 + i``,
    where ``_offset`` is the index of the last compacted entry (0: nothing compacted) and
    ``_offset_term`` its term. Invariant: ``_offset <= checkpoint.meta.index`` once a
    checkpoint exists (compaction never goes past what a snapshot covers)."""

    def __init__(
        self,
        hard_state: HardState | None = None,
        entries: Sequence[Entry] = (),
        conf_state: ConfState | None = None,
        *,
        checkpoint: Checkpoint | None = None,
        log_start: tuple[int, int] = (0, 0),
    ) -> None:
        self._hard_state = hard_state or HardState()
        self._conf_state = conf_state
        self._checkpoint = checkpoint or Checkpoint()
        self._offset, self._offset_term = log_start
        self._entries: list[Entry] = []
        if entries:
            self.append(entries)

    def copy(self) -> MemoryStorage:
        """An independent copy (what a crash leaves: the durable state, read afresh)."""
        return MemoryStorage(
            self._hard_state,
            self._entries,
            self._conf_state,
            checkpoint=self._checkpoint,
            log_start=(self._offset, self._offset_term),
        )

    # -- LogReader -------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState | None]:
        if self._checkpoint.meta.index and self._checkpoint.meta.conf.voters:
            return self._hard_state, self._checkpoint.meta.conf
        return self._hard_state, self._conf_state

    def snapshot(self) -> SnapshotMeta:
        return self._checkpoint.meta

    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    def first_index(self) -> int:
        return self._offset + 1

    def last_index(self) -> int:
        return self._offset + len(self._entries)

    def term(self, index: int) -> int:
        if index < self._offset:
            raise LogCompacted(f"entry {index} is compacted")
        if index == self._offset:
            return self._offset_term
        if index > self.last_index():
            raise EntryUnavailable(f"entry {index} is beyond the last index {self.last_index()}")
        return self._entries[index - self._offset - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> Sequence[Entry]:
        if lo <= self._offset:
            raise LogCompacted(f"entry {lo} is compacted")
        if hi > self.last_index() + 1:
            raise EntryUnavailable(f"entry {hi - 1} is beyond the last index {self.last_index()}")
        start = lo - self._offset - 1
        return limit_size(self._entries[start : hi - self._offset - 1], max_bytes)

    # -- writes ----------------------------------------------------------------------

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None:
        if snapshot is not None:
            self.install(snapshot)
        if entries:
            self.append(entries)
        if hard_state is not None:
            self._hard_state = hard_state

    def sync(self) -> None:
        """Memory is as durable as it gets."""

    async def save_async(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None:
        """``save`` for an asyncio node (nothing to wait for in memory)."""
        self.save(hard_state, entries, snapshot)

    async def compact_async(self, checkpoint: Checkpoint, upto: int) -> None:
        self.compact(checkpoint, upto)

    def install(self, snapshot: Checkpoint) -> None:
        """Replace the whole log with a snapshot: it ends at the snapshot's index."""
        meta = snapshot.meta
        if meta.index < 1 or meta.term < 1:
            raise UsageError(f"cannot install a snapshot at {meta.index}@{meta.term}")
        self._checkpoint = snapshot
        self._entries = []
        self._offset, self._offset_term = meta.index, meta.term

    def compact(self, checkpoint: Checkpoint, upto: int) -> None:
        """Record ``checkpoint`` and drop the entries up to ``upto`` (which it covers)."""
        if checkpoint.meta.index < self._checkpoint.meta.index:
            raise UsageError(
                f"checkpoint {checkpoint.meta.index} is older than {self._checkpoint.meta.index}"
            )
        if upto > checkpoint.meta.index:
            raise UsageError(
                f"cannot compact to {upto}: the snapshot ends at {checkpoint.meta.index}"
            )
        if upto > self.last_index():
            raise UsageError(f"cannot compact to {upto}: the log ends at {self.last_index()}")
        self._checkpoint = checkpoint
        if upto > self._offset:
            term = self.term(upto)
            del self._entries[: upto - self._offset]
            self._offset, self._offset_term = upto, term

    def append(self, entries: Sequence[Entry]) -> None:
        """Store entries, replacing the stored suffix from the first of them."""
        if not entries:
            return
        first = entries[0].index
        for a, b in itertools.pairwise(entries):
            if b.index != a.index + 1:
                raise UsageError(f"entries are not contiguous: {a.index} then {b.index}")
        if first <= self._offset:
            raise UsageError(f"cannot append at {first}: compacted through {self._offset}")
        if first > self.last_index() + 1:
            raise UsageError(f"gap: appending {first} after last index {self.last_index()}")
        del self._entries[first - self._offset - 1 :]
        self._entries.extend(entries)

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def set_conf_state(self, conf_state: ConfState) -> None:
        self._conf_state = conf_state

    def all_entries(self) -> list[Entry]:
        """The entries still in the log (after compaction)."""
        return list(self._entries)

    def log_start(self) -> tuple[int, int]:
        """(index, term) of the last compacted entry ((0, 0): none)."""
        return self._offset, self._offset_term
