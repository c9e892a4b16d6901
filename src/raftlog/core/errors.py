"""Errors of the Raft core.

::

    RaftError
    ├── ConfigError          invalid Config (also a ValueError)
    ├── UsageError           the caller broke the core's contract (e.g. ready() twice
    │                        without advance()): a bug in the caller, not a runtime outcome
    ├── NotLeader            an operation only a leader can serve; carries leader_hint
    ├── ProposalDropped      the leader refused a proposal (e.g. transfer in progress)
    ├── ConfChangeRefused    the leader refused a configuration change; ``reason`` says
    │                        why (change in progress, not caught up, would lose quorum...)
    └── StorageError         the storage could not serve a read
        ├── LogCompacted     the entry was compacted into a snapshot
        └── EntryUnavailable the entry is beyond the end of the log

Normal outcomes (a lost election, a refused vote) are data, not errors.
"""

from __future__ import annotations

from raftlog.core.types import NO_NODE, NodeId


class RaftError(Exception):
    """Base of every error the core raises."""


class ConfigError(RaftError, ValueError):
    """A Config that cannot work (e.g. heartbeat not shorter than the election timeout)."""


class UsageError(RaftError):
    """The caller broke the core's contract. Fix the caller."""


class NotLeader(RaftError):
    """Only the leader can do this. ``leader_hint`` is the leader this node knows of, or
    ``NO_NODE`` if none."""

    def __init__(self, leader_hint: NodeId = NO_NODE) -> None:
        self.leader_hint = leader_hint
        hint = f"; leader is {leader_hint}" if leader_hint != NO_NODE else "; no known leader"
        super().__init__(f"not the leader{hint}")


class ProposalDropped(RaftError):
    """The leader refused to take a proposal; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"proposal dropped: {reason}")


class ConfChangeRefused(RaftError):
    """The leader will not make this configuration change now; ``reason`` says why.
    ``transient``: the same request may well succeed shortly, untouched (another change
    is committing, a new leader has not committed its first entry, voters are silent)."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


class StorageError(RaftError):
    """The storage could not serve a read."""


class LogCompacted(StorageError):
    """The requested entry was compacted away."""


class EntryUnavailable(StorageError):
    """The requested entry is beyond the last index."""
