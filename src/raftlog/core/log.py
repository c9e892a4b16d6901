"""A node's Raft log: the durable part (read through storage) and the unstable tail.

Entries below ``_offset`` are durable and read from storage. ``_unstable[i]`` has log
position ``_offset + i``: appended in memory, handed out in a Ready, and durable only once
the caller has persisted that Ready and called ``stable_to``. When a conflicting append
truncates into the durable part, ``_offset`` moves down: storage still holds the old
entries from there on, and the log reads the unstable ones instead until they are
persisted (storage's append truncates the conflicting suffix).

A snapshot received from the leader replaces the whole log at once: it is *pending* (held
here, handed out in a Ready) until the caller has persisted it and calls
``stable_snapshot_to``; meanwhile the log reads as starting right after it.

Invariants: ``applied <= committed <= last_index()``; committed entries never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from raftlog.core.errors import EntryUnavailable, LogCompacted, RaftError, UsageError
from raftlog.core.storage import LogReader
from raftlog.core.types import Entry, SnapshotMeta

ENTRY_OVERHEAD_BYTES = 16
"""Counted per entry on top of its data when sizing messages and Readies."""


class InvariantViolation(RaftError):
    """The log was asked to do something that would break a Raft safety property (e.g.
    overwrite a committed entry). The node must stop: its state cannot be trusted."""


class AppendOutcome(NamedTuple):
    last_new: int
    """Index of the last entry the message carried (or its prev_log_index if none)."""
    truncated_from: int
    """First index whose existing entry was replaced; 0 if none was."""


def entry_size(entry: Entry) -> int:
    return len(entry.data) + ENTRY_OVERHEAD_BYTES


def limit_size(entries: Sequence[Entry], max_bytes: int) -> Sequence[Entry]:
    """The longest prefix of ``entries`` within ``max_bytes`` (at least one entry)."""
    total = 0
    for i, entry in enumerate(entries):
        total += entry_size(entry)
        if total > max_bytes and i > 0:
            return entries[:i]
    return entries


class RaftLog:
    __slots__ = ("_offset", "_snapshot", "_storage", "_unstable", "applied", "committed")

    def __init__(self, storage: LogReader) -> None:
        self._storage = storage
        self._unstable: list[Entry] = []
        self._offset = storage.last_index() + 1
        self._snapshot: SnapshotMeta | None = None
        # Everything a snapshot covers is committed (and applied, once the caller has
        # restored its state machine from it).
        start = max(storage.first_index() - 1, storage.snapshot().index)
        self.committed = start
        self.applied = start

    # -- reading ---------------------------------------------------------------------

    @property
    def pending_snapshot(self) -> SnapshotMeta | None:
        """A snapshot that replaced this log and is not yet persisted."""
        return self._snapshot

    def first_index(self) -> int:
        if self._snapshot is not None:
            return self._snapshot.index + 1
        return self._storage.first_index()

    def last_index(self) -> int:
        if self._unstable:
            return self._offset + len(self._unstable) - 1
        return self._offset - 1

    def persisted_index(self) -> int:
        """The last index whose entry is durable *and* still part of this log (0 while a
        snapshot that replaced the log is not yet persisted)."""
        if self._snapshot is not None:
            return 0
        return min(self._offset - 1, self._storage.last_index())

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``; 0 for index 0; None if not available."""
        if self._snapshot is not None and index <= self._snapshot.index:
            return self._snapshot.term if index == self._snapshot.index else None
        if index >= self._offset:
            pos = index - self._offset
            if pos < len(self._unstable):
                return self._unstable[pos].term
            return None
        if index == 0:
            return 0
        try:
            return self._storage.term(index)
        except (LogCompacted, EntryUnavailable):
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        if term is None:
            raise InvariantViolation(f"no term for the last index {self.last_index()}")
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (``last_index``, ``last_term``) at least as up-to-date as
        this one (§5.4.1)?"""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def entries(self, lo: int, max_count: int, max_bytes: int) -> list[Entry]:
        """Up to ``max_count`` entries from ``lo``, within ``max_bytes`` (at least one if
        any exist)."""
        hi = min(self.last_index() + 1, lo + max_count)
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise LogCompacted(f"entry {lo} is compacted (first index {self.first_index()})")
        out: list[Entry] = []
        if lo < self._offset:
            stored_hi = min(hi, self._offset)
            out.extend(self._storage.entries(lo, stored_hi, max_bytes))
            if len(out) < stored_hi - lo:
                return out  # storage stopped at the size limit
        if hi > self._offset:
            start = max(lo, self._offset) - self._offset
            out.extend(self._unstable[start : hi - self._offset])
        return list(limit_size(out, max_bytes))

    def stored_snapshot(self) -> SnapshotMeta:
        """The latest snapshot in storage (what a leader sends)."""
        return self._storage.snapshot()

    def snapshot_index(self) -> int:
        """The index the latest snapshot (pending or stored) covers."""
        if self._snapshot is not None:
            return self._snapshot.index
        return self._storage.snapshot().index

    def unstable_entries(self) -> tuple[Entry, ...]:
        return tuple(self._unstable)

    def has_unstable(self) -> bool:
        return bool(self._unstable)

    def has_next_committed(self) -> bool:
        return self.committed > self.applied

    def next_committed(self, max_bytes: int) -> list[Entry]:
        """Committed entries not yet handed out for applying, in index order."""
        if self.committed <= self.applied:
            return []
        return self.entries(self.applied + 1, self.committed - self.applied, max_bytes)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first of ``entries`` that this log lacks or holds with another
        term; 0 if it holds them all."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The last (index, term) at or below ``index`` whose term is at most ``term``.

        Terms never decrease along a log, so every index above the answer has a term
        above ``term``: a leader whose entry at ``index`` has ``term`` cannot match there.
        """
        index = min(index, self.last_index())
        while index > 0:
            found = self.term(index)
            if found is None:
                break  # compacted: the caller probes from here
            if found <= term:
                return index, found
            index -= 1
        return index, self.term(index) or 0

    # -- writing ---------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Add entries at their indexes, replacing any entry at or after the first one."""
        if not entries:
            return
        first = entries[0].index
        if first <= self.committed:
            raise InvariantViolation(
                f"cannot overwrite committed entry {first} (commit {self.committed})"
            )
        if first > self.last_index() + 1:
            raise UsageError(f"gap: appending {first} after last index {self.last_index()}")
        if first == self._offset + len(self._unstable):
            self._unstable.extend(entries)
        elif first <= self._offset:
            self._offset = first
            self._unstable = list(entries)
        else:
            del self._unstable[first - self._offset :]
            self._unstable.extend(entries)

    def maybe_append(
        self,
        prev_index: int,
        prev_term: int,
        commit: int,
        entries: Sequence[Entry],
        *,
        truncate_always: bool = False,
    ) -> AppendOutcome | None:
        """The follower's side of AppendEntries (§5.3). None if the log does not hold
        (``prev_index``, ``prev_term``); otherwise append what is new and say what
        happened. Existing entries are replaced only from the first real conflict, so a
        stale or duplicated message never removes entries.

        ``truncate_always`` is the injected bug ``truncate-on-stale``.
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        old_last = self.last_index()
        truncated_from = 0
        if truncate_always and entries:
            if entries[0].index <= old_last:
                truncated_from = entries[0].index
            self.append(entries)
        else:
            conflict = self.find_conflict(entries)
            if conflict:
                if conflict <= self.committed:
                    raise InvariantViolation(
                        f"entry {conflict} conflicts with a committed entry "
                        f"(commit {self.committed})"
                    )
                if conflict <= old_last:
                    truncated_from = conflict
                self.append(entries[conflict - prev_index - 1 :])
        self.commit_to(min(commit, last_new))
        return AppendOutcome(last_new, truncated_from)

    def commit_to(self, index: int) -> bool:
        """Raise the commit index (it never falls). True if it rose."""
        if index <= self.committed:
            return False
        if index > self.last_index():
            raise InvariantViolation(f"commit {index} is beyond the last index {self.last_index()}")
        self.committed = index
        return True

    def restore(self, snapshot: SnapshotMeta) -> None:
        """Replace the whole log with ``snapshot`` (§7): everything it covers is committed
        and applied (the caller restores its state machine from it before applying
        anything after it). The caller checks it is news (beyond the commit index)."""
        self._snapshot = snapshot
        self._unstable = []
        self._offset = snapshot.index + 1
        self.committed = snapshot.index
        self.applied = snapshot.index

    def stable_snapshot_to(self, index: int) -> None:
        """The pending snapshot up to ``index`` is durable (ignored if superseded)."""
        if self._snapshot is not None and self._snapshot.index == index:
            self._snapshot = None

    def applied_to(self, index: int) -> None:
        if index < self.applied or index > self.committed:
            raise UsageError(f"applied {index} outside [{self.applied}, {self.committed}]")
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (``index``, ``term``) are durable. Ignored if that entry has been
        replaced since it was handed out."""
        if index < self._offset or self.term(index) != term:
            return
        del self._unstable[: index + 1 - self._offset]
        self._offset = index + 1
