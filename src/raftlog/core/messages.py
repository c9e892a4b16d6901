"""Messages between Raft peers: one frozen, typed struct per kind (a msgspec tagged union).

Every message carries ``src`` (sender), ``dst`` (recipient) and ``term`` (the sender's
current term, or for a PreVote the term the sender *would* campaign in). The field names
are the paper's. ``describe()`` gives the one-line form used by traces and event logs.
"""

from __future__ import annotations

import msgspec

from raftlog.core.types import (
    MAX_INT,
    ConfState,
    Entry,
    EntryKind,
    NodeId,
    SnapshotMeta,
    decode_conf,
    split_address,
)


class RequestVote(msgspec.Struct, frozen=True, tag="vote"):
    """A candidate asks for a vote (§5.2). ``transfer`` marks a campaign started by a
    leadership transfer, which voters honour even while they still hear from a leader."""

    src: NodeId
    dst: NodeId
    term: int
    last_log_index: int
    last_log_term: int
    transfer: bool = False

    def describe(self) -> str:
        extra = " transfer" if self.transfer else ""
        return (
            f"{self.src}->{self.dst} RequestVote term={self.term} "
            f"last={self.last_log_index}@{self.last_log_term}{extra}"
        )


class RequestVoteResponse(msgspec.Struct, frozen=True, tag="vote_resp"):
    src: NodeId
    dst: NodeId
    term: int
    granted: bool

    def describe(self) -> str:
        verdict = "granted" if self.granted else "refused"
        return f"{self.src}->{self.dst} RequestVoteResponse term={self.term} {verdict}"


class PreVote(msgspec.Struct, frozen=True, tag="prevote"):
    """Would you vote for me in ``term``? Changes no state at the voter (thesis §9.6)."""

    src: NodeId
    dst: NodeId
    term: int
    last_log_index: int
    last_log_term: int

    def describe(self) -> str:
        return (
            f"{self.src}->{self.dst} PreVote term={self.term} "
            f"last={self.last_log_index}@{self.last_log_term}"
        )


class PreVoteResponse(msgspec.Struct, frozen=True, tag="prevote_resp"):
    src: NodeId
    dst: NodeId
    term: int
    granted: bool

    def describe(self) -> str:
        verdict = "granted" if self.granted else "refused"
        return f"{self.src}->{self.dst} PreVoteResponse term={self.term} {verdict}"


class AppendEntries(msgspec.Struct, frozen=True, tag="append"):
    """Replicate ``entries`` after (``prev_log_index``, ``prev_log_term``) (§5.3).

    Invariant: ``entries[i].index == prev_log_index + 1 + i``.

    ``sent_ns`` is not the core's: the sending server stamps it (its lease clock, in
    nanoseconds, when it handed the message to its transport) and the recipient's server
    echoes it in its answers (``echo_ns``), so that the leader measures its read lease
    from when the acknowledged message left (see ``raftlog.server.lease``). 0: not stamped.
    """

    src: NodeId
    dst: NodeId
    term: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    commit: int
    sent_ns: int = 0

    def describe(self) -> str:
        if self.entries:
            span = f"entries={self.entries[0].index}..{self.entries[-1].index}"
        else:
            span = "entries=none"
        return (
            f"{self.src}->{self.dst} AppendEntries term={self.term} "
            f"prev={self.prev_log_index}@{self.prev_log_term} {span} commit={self.commit}"
        )


class AppendEntriesResponse(msgspec.Struct, frozen=True, tag="append_resp"):
    """The answer to an AppendEntries.

    On success ``match_index`` is the index up to which the follower's log now matches the
    leader's. On rejection ``reject_index`` is the ``prev_log_index`` that did not match and
    (``hint_index``, ``hint_term``) point the leader at where to probe next: the follower's
    last index at or below ``reject_index`` whose term is at most the leader's
    ``prev_log_term`` (fast backtracking, §5.3 and thesis §5.3.1).

    ``echo_ns`` is not the core's: the ``sent_ns`` of the latest message of the leader
    (of this term) that the answering server had stepped when it sent this (0: none).
    """

    src: NodeId
    dst: NodeId
    term: int
    success: bool
    match_index: int = 0
    reject_index: int = 0
    hint_index: int = 0
    hint_term: int = 0
    echo_ns: int = 0

    def describe(self) -> str:
        if self.success:
            return (
                f"{self.src}->{self.dst} AppendEntriesResponse term={self.term} "
                f"match={self.match_index}"
            )
        return (
            f"{self.src}->{self.dst} AppendEntriesResponse term={self.term} "
            f"reject={self.reject_index} hint={self.hint_index}@{self.hint_term}"
        )


class Heartbeat(msgspec.Struct, frozen=True, tag="heartbeat"):
    """Leader liveness, and commit index propagation. ``commit`` is never above what the
    recipient is known to hold. ``context`` is non-empty when the heartbeat confirms
    leadership for a ReadIndex request (§6.4). ``sent_ns``: as in AppendEntries (the
    server's, not the core's)."""

    src: NodeId
    dst: NodeId
    term: int
    commit: int
    context: bytes = b""
    sent_ns: int = 0

    def describe(self) -> str:
        ctx = f" ctx={self.context.hex()}" if self.context else ""
        return f"{self.src}->{self.dst} Heartbeat term={self.term} commit={self.commit}{ctx}"


class HeartbeatResponse(msgspec.Struct, frozen=True, tag="heartbeat_resp"):
    """The answer to a Heartbeat. ``echo_ns``: as in AppendEntriesResponse."""

    src: NodeId
    dst: NodeId
    term: int
    context: bytes = b""
    echo_ns: int = 0

    def describe(self) -> str:
        ctx = f" ctx={self.context.hex()}" if self.context else ""
        return f"{self.src}->{self.dst} HeartbeatResponse term={self.term}{ctx}"


class TimeoutNow(msgspec.Struct, frozen=True, tag="timeout_now"):
    """Leadership transfer: start an election now, skipping PreVote (thesis §3.10)."""

    src: NodeId
    dst: NodeId
    term: int

    def describe(self) -> str:
        return f"{self.src}->{self.dst} TimeoutNow term={self.term}"


class InstallSnapshot(msgspec.Struct, frozen=True, tag="snapshot"):
    """The leader's state up to ``snapshot.index`` replaces the follower's log (§7).

    The core carries only the metadata: the bytes travel beside it (in the server, as
    :class:`SnapshotChunk` messages that must all have arrived and been verified before
    this message is stepped; in the simulator, attached to the delivery). Sent by a leader
    whose follower needs entries it has compacted away; answered with an
    AppendEntriesResponse whose ``match_index`` is what the follower then holds."""

    src: NodeId
    dst: NodeId
    term: int
    snapshot: SnapshotMeta

    def describe(self) -> str:
        return f"{self.src}->{self.dst} InstallSnapshot term={self.term} {self.snapshot.describe()}"


Message = (
    RequestVote
    | RequestVoteResponse
    | PreVote
    | PreVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | TimeoutNow
    | InstallSnapshot
)
"""Every message the Raft core steps."""

MESSAGE_TYPES: tuple[type[Message], ...] = (
    RequestVote,
    RequestVoteResponse,
    PreVote,
    PreVoteResponse,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    TimeoutNow,
    InstallSnapshot,
)


# -- snapshot data transfer (between servers; never stepped into the core) ---------------


class SnapshotChunk(msgspec.Struct, frozen=True, tag="snap_chunk"):
    """Bytes ``offset .. offset + len(data)`` of the snapshot file ``index``@``snap_term``,
    ``size`` bytes in all, sent by the leader of ``term``. The receiver writes the chunk
    only at the offset it has reached and answers every chunk with a :class:`SnapshotAck`
    saying how far it got, so a transfer resumes where it broke off."""

    src: NodeId
    dst: NodeId
    term: int
    index: int
    snap_term: int
    size: int
    offset: int
    data: bytes

    def describe(self) -> str:
        return (
            f"{self.src}->{self.dst} SnapshotChunk term={self.term} snapshot={self.index}"
            f"@{self.snap_term} bytes {self.offset}..{self.offset + len(self.data)} of {self.size}"
        )


class SnapshotAck(msgspec.Struct, frozen=True, tag="snap_ack"):
    """The receiver of snapshot ``index``@``snap_term`` has its first ``received`` bytes.
    ``gap`` says a chunk beyond them arrived (one before it was lost): the sender goes
    back to ``received`` at once. ``error`` is set when the receiver gave up on the file
    (it failed its checksum, or could not be written): the sender stops and reports the
    failure."""

    src: NodeId
    dst: NodeId
    term: int
    index: int
    snap_term: int
    received: int
    gap: bool = False
    error: str = ""

    def describe(self) -> str:
        trouble = f" error={self.error!r}" if self.error else ""
        return (
            f"{self.src}->{self.dst} SnapshotAck term={self.term} snapshot={self.index}"
            f"@{self.snap_term} received={self.received}{trouble}"
        )


TransferMessage = SnapshotChunk | SnapshotAck

WireMessage = Message | TransferMessage
"""Everything a peer connection carries: Raft messages and snapshot data."""


def conf_problem(conf: ConfState) -> str | None:
    """Why ``conf`` cannot be a configuration a correct leader made, or None."""
    if not conf.voters:
        return "no voters"
    if any(not 0 < n <= MAX_INT for n in conf.voters | conf.learners):
        return "a member id out of range"
    if conf.voters & conf.learners:
        return "a node is both voter and learner"
    for member in conf.members:
        if not 0 < member.id <= MAX_INT:
            return "a member id out of range"
        if member.peer:
            try:
                split_address(member.peer)
            except ValueError:
                return f"member {member.id} has a bad peer address {member.peer!r}"
    return None


def _entry_conf_problem(entry: Entry) -> str | None:
    try:
        conf = decode_conf(entry.data)
    except msgspec.DecodeError as exc:
        return f"configuration entry {entry.index} is undecodable: {exc}"
    problem = conf_problem(conf)
    return None if problem is None else f"configuration entry {entry.index}: {problem}"


def message_problem(msg: WireMessage) -> str | None:
    """Why ``msg`` cannot be a message of a correct peer, or None if it can be.

    Structural checks only (the types are already enforced by decoding): what a garbled or
    hostile frame could get wrong that would otherwise reach deep into the core. Every
    index, term and id is at most ``MAX_INT`` (what storage holds), every entry's term at
    least 1, and a configuration (in an entry or a snapshot) must be one the core can
    take: decodable, with voters, ids in range, no node both voter and learner, and peer
    addresses that parse.
    """
    if not (0 < msg.src <= MAX_INT and 0 < msg.dst <= MAX_INT and 0 <= msg.term <= MAX_INT):
        return f"bad header: src={msg.src} dst={msg.dst} term={msg.term}"
    match msg:
        case AppendEntries():
            if min(msg.prev_log_index, msg.prev_log_term, msg.commit, msg.sent_ns) < 0:
                return "negative index, term, commit or send time"
            if (
                msg.prev_log_index + len(msg.entries) > MAX_INT
                or msg.commit > MAX_INT
                or msg.sent_ns > MAX_INT
            ):
                return "index out of range"
            if msg.prev_log_term > msg.term:
                return f"prev_log_term {msg.prev_log_term} above the message term {msg.term}"
            expected = msg.prev_log_index + 1
            previous_term = max(msg.prev_log_term, 1)
            for entry in msg.entries:
                if entry.index != expected:
                    return f"entry index {entry.index} where {expected} was expected"
                if not previous_term <= entry.term <= msg.term:
                    return f"entry {entry.index} has term {entry.term} out of order"
                if entry.kind is EntryKind.CONF_CHANGE and (problem := _entry_conf_problem(entry)):
                    return problem
                expected += 1
                previous_term = entry.term
        case RequestVote() | PreVote():
            if (
                msg.last_log_index < 0
                or msg.last_log_index > MAX_INT
                or msg.last_log_term < 0
                or msg.last_log_term > msg.term
            ):
                return "bad last log position"
        case AppendEntriesResponse():
            fields = (msg.match_index, msg.reject_index, msg.hint_index, msg.hint_term)
            if min(fields) < 0:
                return "negative index in a response"
            if max(fields) > MAX_INT:
                return "index out of range in a response"
            if not 0 <= msg.echo_ns <= MAX_INT:
                return "send time out of range"
        case Heartbeat():
            if msg.commit < 0 or msg.sent_ns < 0:
                return "negative commit or send time"
            if msg.commit > MAX_INT:
                return "commit out of range"
            if msg.sent_ns > MAX_INT:
                return "send time out of range"
        case HeartbeatResponse():
            if not 0 <= msg.echo_ns <= MAX_INT:
                return "send time out of range"
        case InstallSnapshot():
            meta = msg.snapshot
            if not 1 <= meta.index <= MAX_INT or meta.term < 1 or meta.term > msg.term:
                return f"bad snapshot position {meta.index}@{meta.term}"
            problem = conf_problem(meta.conf)
            if problem is not None:
                return f"bad snapshot membership: {problem}"
        case SnapshotChunk():
            if min(msg.index, msg.snap_term, msg.size) < 1 or msg.offset < 0:
                return "bad snapshot chunk position"
            if max(msg.index, msg.snap_term, msg.size) > MAX_INT:
                return "snapshot chunk position out of range"
            if msg.offset + len(msg.data) > msg.size:
                return f"chunk ends at {msg.offset + len(msg.data)}, past the size {msg.size}"
        case SnapshotAck():
            if min(msg.index, msg.snap_term) < 1 or msg.received < 0:
                return "bad snapshot ack"
            if max(msg.index, msg.snap_term, msg.received) > MAX_INT:
                return "snapshot ack position out of range"
        case _:
            pass
    return None
