"""The storage interface a node writes through (the core only reads, see
:class:`raftlog.core.storage.LogReader`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from raftlog.core.storage import LogReader
from raftlog.core.types import NO_SNAPSHOT, Entry, HardState, SnapshotMeta


class Checkpoint(msgspec.Struct, frozen=True):
    """The latest snapshot a node's state can be rebuilt from, as storage records it.

    ``meta`` is what the snapshot covers; ``file`` names its file in the node's snapshot
    directory (empty when the state machine keeps its own state on disk and no file was
    needed); ``sessions`` is the client session table as of ``meta.index``."""

    meta: SnapshotMeta = NO_SNAPSHOT
    file: str = ""
    sessions: bytes = b""


class Storage(LogReader, Protocol):
    """A node's durable log, hard state and checkpoint.

    ``save`` is one atomic write: an installed snapshot (which replaces the whole log),
    then the entries (replacing any stored entry at or after the first of them), together
    with the hard state. ``compact`` records a newer checkpoint and drops the entries up
    to an index it covers, atomically. Writes become durable when ``sync`` returns (a
    storage may also make them durable sooner).
    """

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None: ...

    def compact(self, checkpoint: Checkpoint, upto: int) -> None: ...

    def checkpoint(self) -> Checkpoint: ...

    def sync(self) -> None: ...
