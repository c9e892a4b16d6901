"""Storage for a node: the interface and an in-memory implementation (the durable SQLite
storage arrives with the node runtime)."""

from raftlog.storage.base import Storage
from raftlog.storage.memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage"]
