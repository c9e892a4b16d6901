"""Events: what a node did and why, for people to read.

The core records one event per major step of the protocol and hands them out in each
Ready. The server prints them as its event log, the simulator as its trace; both use
``describe()``, which keeps the classroom lab's wording where the lab had one
(``Voted for node 2 in term 3``). Each event knows the node, its role and its term at the
moment it happened; the caller adds the time.
"""

from __future__ import annotations

import enum
from typing import ClassVar

import msgspec

from raftlog.core.types import NodeId, Role, show_data


class Level(enum.IntEnum):
    """How loud an event is. Heartbeats are DEBUG so that INFO stays readable."""

    DEBUG = 10
    INFO = 20
    WARNING = 30


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    node: NodeId
    role: Role
    term: int

    level: ClassVar[Level] = Level.INFO

    def describe(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError


class NodeStarted(Event, frozen=True, kw_only=True):
    last_index: int
    commit: int

    def describe(self) -> str:
        return f"Node started! State: {self.role.value}. Term: {self.term}"


class ElectionTimeout(Event, frozen=True, kw_only=True):
    elapsed_ticks: int

    def describe(self) -> str:
        return f"Election timeout: no leader heard for {self.elapsed_ticks} ticks"


class PreVoteStarted(Event, frozen=True, kw_only=True):
    next_term: int

    def describe(self) -> str:
        return f"Pre-vote for term {self.next_term}. State: PreCandidate"


class ElectionStarted(Event, frozen=True, kw_only=True):
    transfer: bool = False

    def describe(self) -> str:
        why = " (leadership transfer)" if self.transfer else ""
        return f"New election term {self.term}. State: Candidate{why}"


class VoteRequestReceived(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG
    candidate: NodeId
    candidate_term: int
    pre_vote: bool

    def describe(self) -> str:
        kind = "pre-vote" if self.pre_vote else "vote"
        return f"Got a {kind} request from {self.candidate} (term={self.candidate_term})"


class VoteGranted(Event, frozen=True, kw_only=True):
    candidate: NodeId
    candidate_term: int
    pre_vote: bool

    def describe(self) -> str:
        if self.pre_vote:
            return f"Pre-voted for node {self.candidate} for term {self.candidate_term}"
        return f"Voted for node {self.candidate} in term {self.candidate_term}"


class VoteRefused(Event, frozen=True, kw_only=True):
    candidate: NodeId
    candidate_term: int
    pre_vote: bool
    reason: str

    def describe(self) -> str:
        kind = "pre-vote" if self.pre_vote else "vote"
        return f"Didn't {kind} for {self.candidate} ({self.reason})"


class VoteReceived(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG
    voter: NodeId
    granted: bool
    pre_vote: bool
    votes: int
    refusals: int

    def describe(self) -> str:
        kind = "Pre-vote" if self.pre_vote else "Vote"
        verdict = "granted" if self.granted else "refused"
        return f"{kind} from {self.voter}: {verdict} ({self.votes} for, {self.refusals} against)"


class BecameLeader(Event, frozen=True, kw_only=True):
    votes: int

    def describe(self) -> str:
        return f"Received {self.votes} votes. State: Leader"


class ElectionLost(Event, frozen=True, kw_only=True):
    pre_vote: bool
    votes: int
    refusals: int

    def describe(self) -> str:
        kind = "pre-vote" if self.pre_vote else "election"
        return f"Lost the {kind} ({self.votes} for, {self.refusals} against). State: Follower"


class SteppedDown(Event, frozen=True, kw_only=True):
    """Saw a higher term (or lost the election to a leader of this term)."""

    from_role: Role
    seen_from: NodeId
    new_leader: NodeId

    def describe(self) -> str:
        leader = f", leader {self.new_leader}" if self.new_leader else ""
        return (
            f"Saw term {self.term} from node {self.seen_from}; "
            f"was {self.from_role.value}. State: Follower{leader}"
        )


class LeaderFound(Event, frozen=True, kw_only=True):
    leader: NodeId

    def describe(self) -> str:
        return f"Following leader {self.leader}. State: Follower"


class QuorumLost(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.WARNING
    active: int
    needed: int

    def describe(self) -> str:
        return (
            f"Heard from only {self.active} of the {self.needed} nodes a quorum needs; "
            "stepping down. State: Follower"
        )


class HeartbeatSent(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG

    def describe(self) -> str:
        return "Sending a heartbeat to followers"


class HeartbeatReceived(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG
    leader: NodeId

    def describe(self) -> str:
        return "Heartbeat received from leader"


class ProposalReceived(Event, frozen=True, kw_only=True):
    index: int
    data: bytes

    def describe(self) -> str:
        return f"Leader received log {show_data(self.data)} from client (index {self.index})"


class EntriesAppended(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG
    leader: NodeId
    first: int
    last: int

    def describe(self) -> str:
        span = (
            f"entry {self.first}"
            if self.first == self.last
            else f"entries {self.first}..{self.last}"
        )
        return f"Appended {span} from leader {self.leader}"


class LogTruncated(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.WARNING
    from_index: int
    old_last: int

    def describe(self) -> str:
        return (
            f"Log truncated: entries {self.from_index}..{self.old_last} conflicted with "
            "the leader's and were replaced"
        )


class EntryCommitted(Event, frozen=True, kw_only=True):
    index: int
    entry_term: int
    data: bytes
    by_leader: bool

    def describe(self) -> str:
        who = "Leader" if self.by_leader else "Follower"
        return f"{who} committed {show_data(self.data)} (index {self.index})"


class SnapshotSent(Event, frozen=True, kw_only=True):
    to: NodeId
    index: int
    snap_term: int

    def describe(self) -> str:
        return (
            f"Follower node {self.to} needs compacted entries: sending snapshot "
            f"{self.index}@{self.snap_term}"
        )


class SnapshotFailed(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.WARNING
    to: NodeId
    index: int

    def describe(self) -> str:
        return f"Sending snapshot {self.index} to node {self.to} failed; will retry"


class SnapshotInstalled(Event, frozen=True, kw_only=True):
    leader: NodeId
    index: int
    snap_term: int
    old_last: int

    def describe(self) -> str:
        return (
            f"Installed snapshot {self.index}@{self.snap_term} from leader {self.leader} "
            f"(replacing a log that ended at {self.old_last})"
        )


class SnapshotIgnored(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG
    index: int
    commit: int

    def describe(self) -> str:
        return f"Ignored snapshot {self.index}: already committed up to {self.commit}"


class LogCompacted(Event, frozen=True, kw_only=True):
    """Emitted by the embedder (the core does not compact its storage)."""

    level: ClassVar[Level] = Level.DEBUG
    snapshot_index: int
    first_index: int

    def describe(self) -> str:
        return (
            f"Snapshot at index {self.snapshot_index}; log compacted, now starts at "
            f"{self.first_index}"
        )


class ConfChangeProposed(Event, frozen=True, kw_only=True):
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...]
    index: int

    def describe(self) -> str:
        learners = f", learners {list(self.learners)}" if self.learners else ""
        return (
            f"Membership change proposed at index {self.index}: voters {list(self.voters)}"
            f"{learners}"
        )


class ConfChanged(Event, frozen=True, kw_only=True):
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...]
    index: int

    def describe(self) -> str:
        learners = f", learners {list(self.learners)}" if self.learners else ""
        return f"Membership changed: voters {list(self.voters)}{learners} (from index {self.index})"


class NodeRemoved(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.WARNING
    index: int

    def describe(self) -> str:
        return f"This node is no longer a member (configuration at index {self.index})"


class LeaderRemoved(Event, frozen=True, kw_only=True):
    index: int
    successor: NodeId

    def describe(self) -> str:
        after = f"; node {self.successor} campaigns now" if self.successor else ""
        return f"Removed from the cluster (index {self.index} committed): stepping down{after}"


class PeerOffline(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.WARNING
    peer: NodeId

    def describe(self) -> str:
        return f"Follower node {self.peer} is offline"


class PeerOnline(Event, frozen=True, kw_only=True):
    peer: NodeId

    def describe(self) -> str:
        return f"Follower node {self.peer} is back online"


class TransferStarted(Event, frozen=True, kw_only=True):
    to: NodeId

    def describe(self) -> str:
        return f"Transferring leadership to node {self.to}"


class TransferAborted(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.WARNING
    to: NodeId
    reason: str

    def describe(self) -> str:
        return f"Leadership transfer to node {self.to} aborted ({self.reason})"


class ReadIndexConfirmed(Event, frozen=True, kw_only=True):
    level: ClassVar[Level] = Level.DEBUG
    index: int
    count: int

    def describe(self) -> str:
        return f"Leadership confirmed for {self.count} read(s) at index {self.index}"
