"""Value types of the Raft core: ids, entries, hard and soft state.

Every type here is an immutable msgspec Struct, so it can be hashed, compared, and encoded
for the wire or the disk without a second definition.
"""

from __future__ import annotations

import enum
from typing import NewType

import msgspec

NodeId = NewType("NodeId", int)
"""A node's id: a positive integer, unique in its cluster. 0 means "nobody"."""

NO_NODE = NodeId(0)


class Role(enum.Enum):
    """The role a node plays; the names are the lab's."""

    FOLLOWER = "Follower"
    PRE_CANDIDATE = "PreCandidate"
    CANDIDATE = "Candidate"
    LEADER = "Leader"


class EntryKind(enum.IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    """Client data, handed to the state machine."""
    NOOP = 1
    """The empty entry a new leader appends to commit entries of earlier terms (§5.4.2)."""
    CONF_CHANGE = 2
    """Reserved for membership changes (a later issue)."""
    CLIENT = 3
    """Client data in a session envelope (:class:`ClientCommand`): the state machine
    applies a (client, seq) once, so a retried request is not applied twice."""


class ClientCommand(msgspec.Struct, frozen=True, array_like=True):
    """The payload of an ``EntryKind.CLIENT`` entry. ``seq`` numbers a client's requests
    from 1; a client has at most one request outstanding (retries reuse its seq)."""

    client: str
    seq: int
    data: bytes


_command_encoder = msgspec.msgpack.Encoder()
_command_decoder = msgspec.msgpack.Decoder(ClientCommand)


def encode_command(command: ClientCommand) -> bytes:
    return _command_encoder.encode(command)


def decode_command(data: bytes) -> ClientCommand:
    """Raises ``msgspec.DecodeError`` for bytes that are not a ClientCommand."""
    return _command_decoder.decode(data)


def entry_payload(entry: Entry) -> bytes:
    """The client's own bytes: the data, or the data inside a session envelope."""
    if entry.kind is EntryKind.CLIENT:
        try:
            return decode_command(entry.data).data
        except msgspec.DecodeError:
            return entry.data
    return entry.data


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One log entry. Invariant: ``index >= 1`` and ``term >= 1``."""

    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def describe(self) -> str:
        if self.kind is EntryKind.NOOP:
            return f"{self.index}@{self.term} no-op"
        if self.kind is EntryKind.CONF_CHANGE:
            return f"{self.index}@{self.term} conf-change"
        return f"{self.index}@{self.term} {show_data(entry_payload(self))}"


class HardState(msgspec.Struct, frozen=True):
    """The state that must be durable before a node acknowledges anything (§5.1, Figure 2).

    ``term`` is the latest term this node has seen, ``vote`` the node it voted for in that
    term (``NO_NODE`` if none), and ``commit`` the highest index it knows is committed
    (persisting it is an optimisation: it can always be relearned from a leader).
    """

    term: int = 0
    vote: NodeId = NO_NODE
    commit: int = 0

    def describe(self) -> str:
        return f"term={self.term} vote={self.vote} commit={self.commit}"


class SoftState(msgspec.Struct, frozen=True):
    """Volatile state worth telling the outside world about when it changes."""

    leader: NodeId
    role: Role

    def describe(self) -> str:
        return f"leader={self.leader} role={self.role.value}"


class ConfState(msgspec.Struct, frozen=True):
    """The cluster's membership: the voters (this node included). Learners arrive with
    membership changes."""

    voters: frozenset[NodeId]
    learners: frozenset[NodeId] = frozenset()

    def describe(self) -> str:
        return f"voters={sorted(self.voters)} learners={sorted(self.learners)}"


class ReadState(msgspec.Struct, frozen=True):
    """A confirmed ReadIndex request (§6.4): once the state machine has applied ``index``,
    a read tagged ``context`` may be served and is linearizable."""

    index: int
    context: bytes


def show_data(data: bytes, limit: int = 60) -> str:
    """Render entry data for a log line the way the lab prints it: ``'SET 5'``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        shown = data[:limit].hex()
        return f"<{len(data)} bytes 0x{shown}{'…' if len(data) > limit else ''}>"
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)
