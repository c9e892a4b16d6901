"""What the core reads from storage.

The core never writes: it hands entries and hard state to its caller in a Ready, and the
caller persists them (see :mod:`raftlog.core.raft`). It reads what is already durable
through this small interface; :mod:`raftlog.storage` implements it (in memory and on disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raftlog.core.types import ConfState, Entry, HardState, SnapshotMeta


class LogReader(Protocol):
    """Read-only view of a node's durable log and state.

    Index rules: entries ``first_index() .. last_index()`` are available; ``term()`` also
    answers for ``first_index() - 1`` (the last compacted entry, 0 for an empty log).
    Reads outside that range raise :class:`~raftlog.core.errors.LogCompacted` (below) or
    :class:`~raftlog.core.errors.EntryUnavailable` (above).

    Compaction: entries up to some index are dropped once a snapshot covers them.
    ``snapshot()`` describes the latest snapshot; its index is at least
    ``first_index() - 1`` (a storage may keep entries the snapshot already covers, for
    followers that are only a little behind).
    """

    def initial_state(self) -> tuple[HardState, ConfState | None]:
        """The durable hard state, and the membership if storage knows one."""
        ...

    def snapshot(self) -> SnapshotMeta:
        """The latest snapshot (``index == 0``: none)."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int: ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> Sequence[Entry]:
        """Entries ``[lo, hi)``, stopping once ``max_bytes`` of data is reached but always
        returning at least one entry when ``lo < hi``."""
        ...
