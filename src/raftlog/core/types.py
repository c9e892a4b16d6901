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

MAX_INT = (1 << 63) - 1
"""The largest index, term or node id: what storage holds (a signed 64-bit integer)."""


class Role(enum.Enum):
    """The role a node plays; the names are the lab's."""

    FOLLOWER = "Follower"
    PRE_CANDIDATE = "PreCandidate"
    CANDIDATE = "Candidate"
    LEADER = "Leader"


class EntryKind(enum.IntEnum):
    """What a log entry carries. (Value 3 was the session envelope of schema 1; sessions
    now live in the node's command framing, outside the core.)"""

    NORMAL = 0
    """Data for the state machine (opaque to the core)."""
    NOOP = 1
    """The empty entry a new leader appends to commit entries of earlier terms (§5.4.2)."""
    CONF_CHANGE = 2
    """A new configuration (an encoded :class:`ConfState`): it takes effect on every node
    as soon as the node appends it, committed or not (§4.1)."""


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
            try:
                return f"{self.index}@{self.term} conf {decode_conf(self.data).describe()}"
            except msgspec.DecodeError:
                return f"{self.index}@{self.term} conf <undecodable>"
        return f"{self.index}@{self.term} {show_data(self.data)}"


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


class Member(msgspec.Struct, frozen=True, array_like=True):
    """A member's addresses, as it advertises them. Opaque to the core: it carries them in
    configurations so that every node knows every other's."""

    id: NodeId
    peer: str = ""
    """``host:port`` of its peer port."""
    client: str = ""
    """Its client URL (``http://host:port``), where requests are forwarded."""


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (a :attr:`Member.peer`) -> (host, port); raises ValueError unless
    the port is decimal digits from 0 to 65535 (what a socket takes: a port out of range
    would fail later, and elsewhere, as an OverflowError)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, not {address!r}")
    return host, int(port)


class ConfState(msgspec.Struct, frozen=True):
    """The cluster's configuration: the voters (who elect and form quorums), the learners
    (who receive the log but do not vote), and the members' addresses (``members``: one
    :class:`Member` per voter and learner, sorted by id; empty when unknown).

    Invariant: a node is a voter or a learner, not both."""

    voters: frozenset[NodeId]
    learners: frozenset[NodeId] = frozenset()
    members: tuple[Member, ...] = ()

    def ids(self) -> frozenset[NodeId]:
        return self.voters | self.learners

    def member(self, node: NodeId) -> Member | None:
        return next((m for m in self.members if m.id == node), None)

    def describe(self) -> str:
        learners = f" learners={sorted(self.learners)}" if self.learners else ""
        return f"voters={sorted(self.voters)}{learners}"


_conf_encoder = msgspec.msgpack.Encoder()
_conf_decoder = msgspec.msgpack.Decoder(ConfState)


def encode_conf(conf: ConfState) -> bytes:
    return _conf_encoder.encode(conf)


def decode_conf(data: bytes) -> ConfState:
    """Raises ``msgspec.DecodeError`` for bytes that are not a configuration."""
    return _conf_decoder.decode(data)


class SnapshotMeta(msgspec.Struct, frozen=True):
    """What a snapshot covers: every entry up to ``index`` (whose term is ``term``) is
    applied in it, and ``conf`` is the membership as of ``index``. ``index == 0``: no
    snapshot."""

    index: int = 0
    term: int = 0
    conf: ConfState = ConfState(frozenset())

    def describe(self) -> str:
        return f"snapshot {self.index}@{self.term} {self.conf.describe()}"


NO_SNAPSHOT = SnapshotMeta()


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
