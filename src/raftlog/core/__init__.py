"""The Raft protocol as a pure, deterministic state machine (sans-IO).

Imports only the standard library and msgspec; no asyncio, sockets, clocks, threads or
global randomness. Start with :class:`Raft` and the Ready contract in its module.
"""

from raftlog.core.config import KNOWN_BUGS, Config
from raftlog.core.errors import (
    ConfigError,
    EntryUnavailable,
    LogCompacted,
    NotLeader,
    ProposalDropped,
    RaftError,
    StorageError,
    UsageError,
)
from raftlog.core.log import InvariantViolation
from raftlog.core.messages import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    PreVote,
    PreVoteResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotAck,
    SnapshotChunk,
    TimeoutNow,
    WireMessage,
    message_problem,
)
from raftlog.core.raft import PeerStatus, Raft, Ready, Status
from raftlog.core.storage import LogReader
from raftlog.core.types import (
    NO_NODE,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    NodeId,
    ReadState,
    Role,
    SnapshotMeta,
    SoftState,
)

__all__ = [
    "KNOWN_BUGS",
    "MESSAGE_TYPES",
    "NO_NODE",
    "AppendEntries",
    "AppendEntriesResponse",
    "ConfState",
    "Config",
    "ConfigError",
    "Entry",
    "EntryKind",
    "EntryUnavailable",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "InvariantViolation",
    "LogCompacted",
    "LogReader",
    "Message",
    "NodeId",
    "NotLeader",
    "PeerStatus",
    "PreVote",
    "PreVoteResponse",
    "ProposalDropped",
    "Raft",
    "RaftError",
    "ReadState",
    "Ready",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "SnapshotAck",
    "SnapshotChunk",
    "SnapshotMeta",
    "SoftState",
    "Status",
    "StorageError",
    "TimeoutNow",
    "UsageError",
    "WireMessage",
    "message_problem",
]
