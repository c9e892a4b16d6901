"""Storage for a node: the interface, an in-memory implementation, and the durable one on
SQLite (imported on first use: the simulator needs only the in-memory one)."""

from typing import TYPE_CHECKING, Any

from raftlog.storage.base import Checkpoint, Storage
from raftlog.storage.errors import (
    StorageCorrupt,
    StorageFailed,
    StorageFull,
    StorageLocked,
    WrongCluster,
    WrongDataDir,
    WrongNode,
)
from raftlog.storage.memory import MemoryStorage

if TYPE_CHECKING:
    from raftlog.storage.sqlite import SQLiteStorage


def __getattr__(name: str) -> Any:
    if name == "SQLiteStorage":
        from raftlog.storage.sqlite import SQLiteStorage  # noqa: PLC0415

        return SQLiteStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Checkpoint",
    "MemoryStorage",
    "SQLiteStorage",
    "Storage",
    "StorageCorrupt",
    "StorageFailed",
    "StorageFull",
    "StorageLocked",
    "WrongCluster",
    "WrongDataDir",
    "WrongNode",
]
