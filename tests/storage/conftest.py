"""Storage implementations under test, for the conformance suite.

Each kind of storage supplies three hooks: ``new`` (an empty storage, on fresh data),
``reopen`` (a storage opened on the same data as the given one, as after a restart; the
given one may be closed), and ``close``. A durable storage joins ``STORAGE_KINDS`` and the
whole suite runs against it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raftlog.storage import MemoryStorage, SQLiteStorage, Storage


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


def _sqlite(tmp_path_factory: pytest.TempPathFactory) -> StorageFactory:
    # A fresh data directory per storage; reopening closes it and opens the same directory.
    # check_invariants=False: the suite's model writes arbitrary hard states and terms
    # (a commit past the end, terms going down), which the Raft checks a node runs with
    # would refuse; tests/storage/test_sqlite.py covers those checks.
    def open_dir(data_dir: Path) -> SQLiteStorage:
        return SQLiteStorage.open(
            data_dir, cluster_id="conformance", node_id=1, check_invariants=False
        )

    def open_again(storage: Storage) -> Storage:
        assert isinstance(storage, SQLiteStorage)
        storage.close()
        return open_dir(storage.data_dir)

    def close_one(storage: Storage) -> None:
        assert isinstance(storage, SQLiteStorage)
        storage.close()

    return StorageFactory(
        "sqlite", lambda: open_dir(tmp_path_factory.mktemp("sqlite")), open_again, close_one
    )


STORAGE_KINDS: dict[str, Callable[[pytest.TempPathFactory], StorageFactory]] = {
    "memory": _memory,
    "sqlite": _sqlite,
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
