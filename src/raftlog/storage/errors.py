"""Errors of the durable storage. All are :class:`~raftlog.core.errors.StorageError`, so a
node that catches the core's storage errors catches these too.

::

    StorageError (raftlog.core.errors)
    ├── StorageCorrupt    what is on disk is not a valid raftlog database (garbage, a gap
    │                     in the log, a commit index past the end, an unknown schema, ...)
    ├── WrongDataDir      the data directory belongs to another cluster or node
    │   ├── WrongCluster
    │   └── WrongNode
    ├── StorageLocked     another storage (in this or another process) has the directory open
    ├── StorageFailed     a write failed; the storage refuses every later write
    └── StorageFull       a write failed for want of space (SQLITE_FULL): it was rolled
                          back whole, and the storage takes writes again

A node stops on any of them but ``StorageFull``, which it retries until space returns.
"""

from __future__ import annotations

from raftlog.core.errors import StorageError


class StorageCorrupt(StorageError):
    """The database cannot be trusted: the message says which file and what is wrong."""


class WrongDataDir(StorageError):
    """The data directory was made for another cluster or another node."""


class WrongCluster(WrongDataDir):
    """The data directory belongs to another cluster id."""


class WrongNode(WrongDataDir):
    """The data directory belongs to another node id of the same cluster."""


class StorageLocked(StorageError):
    """The data directory is already open (two nodes on one directory would both vote)."""


class StorageFailed(StorageError):
    """A write failed (the sqlite error is the ``__cause__``). What reached the disk is
    unknown, so this storage refuses every later write: restart the node, which reloads
    and validates what is on disk."""


class StorageFull(StorageError):
    """A write found the disk full (SQLITE_FULL; the sqlite error is the ``__cause__``).
    The transaction was rolled back, nothing of it is on disk, and the storage is not
    poisoned: the same write may be made again once there is space."""
