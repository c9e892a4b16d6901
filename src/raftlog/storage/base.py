"""The storage interface a node writes through (the core only reads, see
:class:`raftlog.core.storage.LogReader`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raftlog.core.storage import LogReader
from raftlog.core.types import Entry, HardState


class Storage(LogReader, Protocol):
    """A node's durable log and hard state.

    ``save`` is one atomic write: the entries (replacing any stored entry at or after the
    first of them) together with the hard state. It becomes durable when ``sync`` returns
    (a storage may also make it durable sooner).
    """

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None: ...

    def sync(self) -> None: ...
