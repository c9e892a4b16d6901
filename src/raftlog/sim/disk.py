"""A simulated disk: writes are volatile until synced, and a crash loses what was not.

``volatile`` is what the running node reads (the page cache); ``durable`` is what survives
a crash. A crash may also flush a random prefix of the unsynced writes first, as a real
disk might have.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from raftlog.core.types import Entry, HardState
from raftlog.storage.memory import MemoryStorage

_Write = tuple[HardState | None, tuple[Entry, ...]]


class SimDisk:
    def __init__(self) -> None:
        self.durable = MemoryStorage()
        self.volatile = MemoryStorage()
        self._unsynced: list[_Write] = []
        self.syncs = 0

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        write: _Write = (hard_state, tuple(entries))
        self.volatile.save(*write)
        self._unsynced.append(write)

    def sync(self) -> None:
        for write in self._unsynced:
            self.durable.save(*write)
        self._unsynced.clear()
        self.syncs += 1

    def crash(self, rng: random.Random) -> int:
        """Lose unsynced writes (all but a random prefix). Returns how many were lost."""
        keep = rng.randint(0, len(self._unsynced)) if self._unsynced else 0
        for write in self._unsynced[:keep]:
            self.durable.save(*write)
        lost = len(self._unsynced) - keep
        self._unsynced.clear()
        hard, conf = self.durable.initial_state()
        self.volatile = MemoryStorage(hard, self.durable.all_entries(), conf)
        return lost
