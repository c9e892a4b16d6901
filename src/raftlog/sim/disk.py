"""A simulated disk: writes are volatile until synced, and a crash loses what was not.

``volatile`` is what the running node reads (the page cache); ``durable`` is what survives
a crash. A crash may also flush a random prefix of the unsynced writes first, as a real
disk might have. Snapshot files and compactions are durable at once: the server writes a
snapshot file with fsync and rename, and compacts in a transaction that is durable when
it returns, before it goes on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from raftlog.core.types import Entry, HardState
from raftlog.storage.base import Checkpoint
from raftlog.storage.memory import MemoryStorage

_Write = tuple[HardState | None, tuple[Entry, ...], Checkpoint | None]
KEEP_FILES = 3


class SimDisk:
    def __init__(self) -> None:
        self.durable = MemoryStorage()
        self.volatile = MemoryStorage()
        self._unsynced: list[_Write] = []
        self.syncs = 0
        self.files: dict[str, bytes] = {}
        """Snapshot files by name (written durably, see the module docstring)."""

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Checkpoint | None = None,
    ) -> None:
        write: _Write = (hard_state, tuple(entries), snapshot)
        self.volatile.save(*write)
        self._unsynced.append(write)

    def sync(self) -> None:
        for write in self._unsynced:
            self.durable.save(*write)
        self._unsynced.clear()
        self.syncs += 1

    def write_file(self, name: str, data: bytes) -> None:
        self.files[name] = data

    def compact(self, checkpoint: Checkpoint, upto: int) -> None:
        """Record a checkpoint and drop the log up to ``upto``, durably (the writes before
        it are synced first, as SQLite's transactions are ordered)."""
        self.sync()
        self.durable.compact(checkpoint, upto)
        self.volatile.compact(checkpoint, upto)
        keep = {checkpoint.file}
        for name in sorted(self.files)[:-KEEP_FILES]:
            if name not in keep:
                del self.files[name]

    def crash(self, rng: random.Random) -> int:
        """Lose unsynced writes (all but a random prefix). Returns how many were lost."""
        keep = rng.randint(0, len(self._unsynced)) if self._unsynced else 0
        for write in self._unsynced[:keep]:
            self.durable.save(*write)
        lost = len(self._unsynced) - keep
        self._unsynced.clear()
        self.volatile = self.durable.copy()
        return lost
