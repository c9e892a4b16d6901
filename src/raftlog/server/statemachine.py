"""State machines a node applies committed entries to.

The contract (as hashicorp/raft's FSM): ``apply`` is called once per committed client
entry, in index order, on every node; it must be deterministic (same entries, same
results) and must not fail for reasons outside the entry itself. What it returns is handed
back to the client that proposed the entry (on the node that proposed it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from raftlog.core.types import Entry


class StateMachine(Protocol):
    def apply(self, entry: Entry) -> object:
        """Apply one committed client entry (``EntryKind.NORMAL``)."""
        ...


class LogRecord(msgspec.Struct, frozen=True):
    """One client entry of the replicated log, as clients read it."""

    index: int
    term: int
    data: bytes


class ReplicatedLog:
    """The state machine of raftlog the service: the ordered log of client entries.

    ``records[i]`` is the (i+1)-th client entry committed; its ``index`` is its Raft log
    index (no-op entries of new leaders take indexes too, so client indexes have gaps).
    """

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def apply(self, entry: Entry) -> LogRecord:
        record = LogRecord(entry.index, entry.term, entry.data)
        self.records.append(record)
        return record

    def read(self, start_index: int = 1, limit: int = 100) -> Sequence[LogRecord]:
        """Records with Raft index >= ``start_index``, at most ``limit`` of them."""
        lo, hi = 0, len(self.records)
        while lo < hi:  # first record with index >= start_index
            mid = (lo + hi) // 2
            if self.records[mid].index < start_index:
                lo = mid + 1
            else:
                hi = mid
        return self.records[lo : lo + limit]

    def __len__(self) -> int:
        return len(self.records)
