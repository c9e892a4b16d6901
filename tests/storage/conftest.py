"""Storage implementations under test, for the conformance suite.

Each kind of storage supplies three hooks: ``new`` (an empty storage, on fresh data),
``reopen`` (a storage opened on the same data as the given one, as after a restart; the
given one may be closed), and ``close``. A durable storage joins ``STORAGE_KINDS`` and the
whole suite runs against it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from raftlog.storage import MemoryStorage, Storage


def _no_close(storage: Storage) -> None:
    pass


@dataclass
class StorageFactory:
    """Makes storages of one kind; remembers them so the fixture can close them all."""

    name: str
    open_new: Callable[[], Storage]
    open_again: Callable[[Storage], Storage]
    close_one: Callable[[Storage], None] = _no_close
    opened: list[Storage] = field(default_factory=list)

    def new(self) -> Storage:
        storage = self.open_new()
        self.opened.append(storage)
        return storage

    def reopen(self, storage: Storage) -> Storage:
        """The same data, opened anew (call ``sync`` first: only synced data must survive)."""
        again = self.open_again(storage)
        if again is not storage:
            self.opened.append(again)
        return again

    def close_all(self) -> None:
        while self.opened:
            self.close_one(self.opened.pop())


def _memory(tmp_path_factory: pytest.TempPathFactory) -> StorageFactory:
    # Memory has nothing to reopen: the "reopened" storage is the same object.
    return StorageFactory("memory", MemoryStorage, lambda storage: storage)


STORAGE_KINDS: dict[str, Callable[[pytest.TempPathFactory], StorageFactory]] = {
    "memory": _memory,
}


@pytest.fixture(params=sorted(STORAGE_KINDS))
def storage_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StorageFactory]:
    factory = STORAGE_KINDS[request.param](tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def storage(storage_factory: StorageFactory) -> Storage:
    return storage_factory.new()
