"""The Raft core, rule by rule.

One test per rule of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
Consensus Algorithm"; section numbers are the paper's) or of the thesis where the paper
stops (§3.10 leadership transfer, §6 cluster/client rules, §9.6 PreVote), each named after
its section and rule. Most tests drive one ``Raft`` over a ``MemoryStorage`` with
hand-made messages (see :class:`Node`); scenarios that need several peers use a tiny
hand-driven network (see :class:`Net`) whose messages move only when a test says so.

Unless a test says otherwise a node runs "plain" Raft as in the paper: no PreVote and no
CheckQuorum, so that each rule can be seen on its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import pytest

from raftlog.core import events as ev
from raftlog.core.config import Config
from raftlog.core.errors import NotLeader, ProposalDropped, UsageError
from raftlog.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    PreVote,
    PreVoteResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from raftlog.core.raft import Raft, Ready
from raftlog.core.types import (
    NO_NODE,
    Entry,
    EntryKind,
    HardState,
    NodeId,
    ReadState,
    Role,
)
from raftlog.storage.memory import MemoryStorage

M = TypeVar("M", bound=Message)
E = TypeVar("E", bound=ev.Event)

PLAIN: dict[str, Any] = {"pre_vote": False, "check_quorum": False}
"""Raft as the paper describes it: no PreVote, no CheckQuorum."""


# == helpers ==========================================================================


def ent(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(index, term, EntryKind.NORMAL, data)


def ents(*terms: int, start: int = 1) -> list[Entry]:
    """Consecutive entries from ``start`` with the given terms."""
    return [ent(start + i, t) for i, t in enumerate(terms)]


def config(node_id: int, voters: Iterable[int], **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "election_timeout_min_ticks": 10,
        "election_timeout_max_ticks": 20,
        "heartbeat_ticks": 1,
        **PLAIN,
    }
    settings.update(overrides)
    return Config(id=NodeId(node_id), voters=frozenset(NodeId(v) for v in voters), **settings)


def vote_req(src: int, dst: int, term: int, last_index: int = 0, last_term: int = 0) -> RequestVote:
    return RequestVote(NodeId(src), NodeId(dst), term, last_index, last_term)


def pre_vote_req(src: int, dst: int, term: int, last_index: int = 0, last_term: int = 0) -> PreVote:
    return PreVote(NodeId(src), NodeId(dst), term, last_index, last_term)


def vote_resp(src: int, dst: int, term: int, granted: bool) -> RequestVoteResponse:
    return RequestVoteResponse(NodeId(src), NodeId(dst), term, granted)


def append(
    src: int,
    dst: int,
    term: int,
    prev: tuple[int, int],
    entries: Iterable[Entry] = (),
    *,
    commit: int = 0,
) -> AppendEntries:
    return AppendEntries(NodeId(src), NodeId(dst), term, prev[0], prev[1], tuple(entries), commit)


def append_ok(src: int, dst: int, term: int, match: int) -> AppendEntriesResponse:
    return AppendEntriesResponse(NodeId(src), NodeId(dst), term, success=True, match_index=match)


def heartbeat(src: int, dst: int, term: int, commit: int = 0, ctx: bytes = b"") -> Heartbeat:
    return Heartbeat(NodeId(src), NodeId(dst), term, commit, ctx)


def heartbeat_resp(src: int, dst: int, term: int, ctx: bytes = b"") -> HeartbeatResponse:
    return HeartbeatResponse(NodeId(src), NodeId(dst), term, ctx)


def log_of(raft: Raft) -> list[Entry]:
    """The node's whole log as it reads it (durable part and unstable tail)."""
    return raft.log.entries(raft.log.first_index(), 1 << 30, 1 << 62)


@dataclass
class Out:
    """Everything a node produced over one or more Readies."""

    readies: list[Ready] = field(default_factory=list)

    def extend(self, other: Out) -> None:
        self.readies.extend(other.readies)

    @property
    def messages(self) -> list[Message]:
        """Every message, in the order the node would send them."""
        return [m for rd in self.readies for m in (*rd.messages, *rd.persisted_messages)]

    @property
    def early(self) -> list[Message]:
        """Messages that need no durability (``Ready.messages``)."""
        return [m for rd in self.readies for m in rd.messages]

    @property
    def persisted(self) -> list[Message]:
        """Messages sent only once the Ready is durable (``Ready.persisted_messages``)."""
        return [m for rd in self.readies for m in rd.persisted_messages]

    @property
    def committed(self) -> list[Entry]:
        return [e for rd in self.readies for e in rd.committed_entries]

    @property
    def read_states(self) -> list[ReadState]:
        return [r for rd in self.readies for r in rd.read_states]

    @property
    def dropped_reads(self) -> list[bytes]:
        return [c for rd in self.readies for c in rd.dropped_reads]

    @property
    def events(self) -> list[ev.Event]:
        return [e for rd in self.readies for e in rd.events]

    def sent(self, kind: type[M], to: int | None = None) -> list[M]:
        return [m for m in self.messages if isinstance(m, kind) and to in (None, m.dst)]

    def events_of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


class Node:
    """One Raft core over a MemoryStorage, with the Ready loop done by the test."""

    def __init__(
        self,
        node_id: int = 1,
        voters: Iterable[int] = (1, 2, 3),
        *,
        storage: MemoryStorage | None = None,
        seed: int = 0,
        **overrides: Any,
    ) -> None:
        self.voters = tuple(sorted(voters))
        self.overrides = overrides
        self.storage = storage if storage is not None else MemoryStorage()
        self.seed = seed
        self.raft = Raft(
            config(node_id, self.voters, **overrides), self.storage, random.Random(seed)
        )
        self.id = self.raft.id
        self.started = self.drain()
        """What the node produced when it started (e.g. entries it applies again)."""

    def drain(self) -> Out:
        """Handle Readies as the contract says until there is none: persist, then advance."""
        out = Out()
        while self.raft.has_ready():
            if len(out.readies) >= 1000:
                raise AssertionError("the Ready loop does not settle")
            rd = self.raft.ready()
            out.readies.append(rd)
            self.storage.save(rd.hard_state, rd.entries)
            self.raft.advance(rd)
        return out

    def step(self, *msgs: Message) -> Out:
        out = Out()
        for msg in msgs:
            self.raft.step(msg)
            out.extend(self.drain())
        return out

    def tick(self, count: int = 1) -> Out:
        out = Out()
        for _ in range(count):
            self.raft.tick()
            out.extend(self.drain())
        return out

    def campaign(self) -> Out:
        self.raft.campaign()
        return self.drain()

    def propose(self, data: bytes) -> Out:
        self.raft.propose(data)
        return self.drain()

    def restart(self) -> Node:
        """A new process over the same storage."""
        return Node(
            self.id, self.voters, storage=self.storage, seed=self.seed + 1, **self.overrides
        )

    @property
    def peers(self) -> list[int]:
        return [v for v in self.voters if v != self.id]


def win_election(node: Node) -> Out:
    """Campaign and collect just enough granted (pre-)votes to become leader."""
    out = node.campaign()
    raft = node.raft
    if raft.role is Role.PRE_CANDIDATE:
        for peer in node.peers:
            if raft.role is not Role.PRE_CANDIDATE:
                break
            out.extend(
                node.step(PreVoteResponse(NodeId(peer), node.id, raft.term + 1, granted=True))
            )
    for peer in node.peers:
        if raft.role is not Role.CANDIDATE:
            break
        out.extend(node.step(vote_resp(peer, node.id, raft.term, granted=True)))
    assert raft.role is Role.LEADER
    return out


def leader_with_committed_noop(voters: Iterable[int] = (1, 2, 3), **overrides: Any) -> Node:
    """Node 1 as leader of term 1 whose no-op (index 1) every follower has acknowledged."""
    node = Node(1, voters, **overrides)
    win_election(node)
    for peer in node.peers:
        node.step(append_ok(peer, 1, node.raft.term, match=1))
    assert node.raft.log.committed == 1
    return node


class Net:
    """A few Nodes and the messages between them. Messages wait in ``inflight`` until
    ``deliver`` hands them over (in send order); those from or to an isolated node are
    dropped on delivery."""

    def __init__(
        self,
        size: int = 3,
        *,
        storages: Mapping[int, MemoryStorage] | None = None,
        **overrides: Any,
    ) -> None:
        ids = range(1, size + 1)
        storages = storages or {}
        self.nodes = {i: Node(i, ids, storage=storages.get(i), seed=i, **overrides) for i in ids}
        self.outs = {i: Out() for i in ids}
        self.inflight: list[Message] = []
        self.delivered: list[Message] = []
        self.isolated: set[int] = set()

    def __getitem__(self, node_id: int) -> Raft:
        return self.nodes[node_id].raft

    def flush(self, node_id: int) -> None:
        """Run the node's Ready loop and put what it sends in flight."""
        out = self.nodes[node_id].drain()
        self.outs[node_id].extend(out)
        self.inflight.extend(out.messages)

    def deliver(self, where: Callable[[Message], bool] | None = None) -> list[Message]:
        """Deliver the messages in flight now (not those they cause)."""
        batch = [m for m in self.inflight if where is None or where(m)]
        self.inflight = [m for m in self.inflight if not (where is None or where(m))]
        done: list[Message] = []
        for msg in batch:
            if msg.src in self.isolated or msg.dst in self.isolated:
                continue
            self.nodes[msg.dst].raft.step(msg)
            self.flush(msg.dst)
            done.append(msg)
        self.delivered.extend(done)
        return done

    def deliver_to(self, node_id: int) -> list[Message]:
        return self.deliver(lambda m: m.dst == node_id)

    def drop(self, where: Callable[[Message], bool]) -> list[Message]:
        dropped = [m for m in self.inflight if where(m)]
        self.inflight = [m for m in self.inflight if not where(m)]
        return dropped

    def stabilize(self, max_rounds: int = 200) -> int:
        """Deliver until nothing is in flight; return the number of rounds."""
        for rounds in range(max_rounds):
            if not self.inflight:
                return rounds
            self.deliver()
        raise AssertionError(f"not stable after {max_rounds} rounds")

    def tick(self, node_id: int, count: int = 1) -> None:
        for _ in range(count):
            self[node_id].tick()
            self.flush(node_id)

    def tick_all(self, count: int = 1) -> None:
        """Tick every node once and let the messages settle, ``count`` times."""
        for _ in range(count):
            for node_id in self.nodes:
                self.tick(node_id)
            self.stabilize()

    def campaign(self, node_id: int) -> None:
        self[node_id].campaign()
        self.flush(node_id)

    def elect(self, node_id: int) -> None:
        self.campaign(node_id)
        self.stabilize()
        assert self[node_id].role is Role.LEADER

    def propose(self, node_id: int, data: bytes) -> None:
        self[node_id].propose(data)
        self.flush(node_id)

    def log(self, node_id: int) -> list[Entry]:
        return log_of(self[node_id])


# == §5.1 terms =======================================================================


HIGHER_TERM_MESSAGES: list[tuple[str, Callable[[int], Message], int]] = [
    ("RequestVote", lambda t: vote_req(2, 1, t, last_index=99, last_term=t), NO_NODE),
    ("RequestVoteResponse", lambda t: vote_resp(2, 1, t, granted=False), NO_NODE),
    (
        "PreVoteResponse(refused)",
        lambda t: PreVoteResponse(NodeId(2), NodeId(1), t, granted=False),
        NO_NODE,
    ),
    ("AppendEntries", lambda t: append(2, 1, t, (0, 0)), NodeId(2)),
    (
        "AppendEntriesResponse",
        lambda t: AppendEntriesResponse(NodeId(2), NodeId(1), t, success=False),
        NO_NODE,
    ),
    ("Heartbeat", lambda t: heartbeat(2, 1, t), NodeId(2)),
    ("HeartbeatResponse", lambda t: heartbeat_resp(2, 1, t), NO_NODE),
]


def node_in_role(role: Role) -> Node:
    node = Node(1, storage=MemoryStorage(HardState(term=2)))
    if role is Role.CANDIDATE:
        node.campaign()
    elif role is Role.LEADER:
        win_election(node)
    assert node.raft.role is role
    return node


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER], ids=str)
@pytest.mark.parametrize(
    ("make", "leader"),
    [(make, leader) for _, make, leader in HIGHER_TERM_MESSAGES],
    ids=[name for name, _, _ in HIGHER_TERM_MESSAGES],
)
def test_5_1_higher_term_in_any_message_makes_node_follower_at_that_term(
    role: Role, make: Callable[[int], Message], leader: NodeId
) -> None:
    """§5.1: if a server sees a term larger than its own in any RPC or response, it sets
    its current term to it (clearing its vote) and reverts to follower; the sender of an
    AppendEntries/heartbeat of that term is its leader."""
    node = node_in_role(role)
    higher = node.raft.term + 3
    msg = make(higher)
    node.step(msg)

    assert node.raft.term == higher
    assert node.raft.role is Role.FOLLOWER
    assert node.raft.leader == leader
    assert node.storage.initial_state()[0].term == higher  # the new term is durable
    if not isinstance(msg, RequestVote):
        assert node.raft.vote == NO_NODE


def test_5_1_stale_vote_requests_are_not_granted() -> None:
    """§5.1: a request with a stale term is rejected: a RequestVote from an earlier term
    gets no vote (and the node's term and vote stay as they are)."""
    node = Node(1, storage=MemoryStorage(HardState(term=5)))
    out = node.step(vote_req(2, 1, term=3, last_index=10, last_term=3))
    assert not [m for m in out.sent(RequestVoteResponse) if m.granted]
    assert (node.raft.term, node.raft.vote) == (5, NO_NODE)

    out = node.step(pre_vote_req(2, 1, term=4, last_index=10, last_term=3))
    assert out.sent(PreVoteResponse) == [PreVoteResponse(NodeId(1), NodeId(2), 5, granted=False)]
    assert (node.raft.term, node.raft.vote, node.raft.role) == (5, NO_NODE, Role.FOLLOWER)


@pytest.mark.parametrize("kind", ["append", "heartbeat"])
def test_5_1_stale_append_is_rejected_and_answered_so_old_leader_learns_the_term(
    kind: str,
) -> None:
    """§5.1: an AppendEntries (or heartbeat) from an old term is rejected without touching
    the log or the commit index, and the reply carries the current term, so the stale
    leader learns it and steps down."""
    old_leader = Node(2, storage=MemoryStorage(HardState(term=2)))
    win_election(old_leader)
    assert old_leader.raft.term == 3
    follower = Node(1, storage=MemoryStorage(HardState(term=5), ents(1)))

    if kind == "append":
        stale: Message = append(2, 1, 3, prev=(1, 1), entries=[ent(2, 3)], commit=2)
    else:
        stale = heartbeat(2, 1, 3, commit=1)
    out = follower.step(stale)

    assert log_of(follower.raft) == ents(1)
    assert follower.raft.log.committed == 0
    assert follower.raft.leader == NO_NODE
    assert follower.raft.term == 5
    replies = out.messages
    assert replies == [AppendEntriesResponse(NodeId(1), NodeId(2), 5, success=False)]

    old_leader.step(replies[0])
    assert old_leader.raft.role is Role.FOLLOWER
    assert old_leader.raft.term == 5


def test_5_1_stale_responses_are_ignored() -> None:
    """§5.1: responses from an earlier term are ignored: stale vote grants do not elect a
    candidate, and a stale AppendEntries acknowledgement does not advance a follower's
    match index."""
    candidate = Node(1, storage=MemoryStorage(HardState(term=2)))
    candidate.campaign()
    candidate.step(vote_resp(2, 1, 2, granted=True), vote_resp(3, 1, 2, granted=True))
    assert candidate.raft.role is Role.CANDIDATE

    leader = Node(1, storage=MemoryStorage(HardState(term=2)))
    win_election(leader)
    leader.step(append_ok(2, 1, term=2, match=1))
    assert leader.raft.status().peers[1].match == 0
    assert leader.raft.log.committed == 0


# == §5.2 leader election =============================================================


def test_5_2_election_timeout_starts_a_prevote_round_when_enabled() -> None:
    """§5.2 with thesis §9.6: when the election timeout elapses a follower first asks
    whether it could win (PreVote for term+1) without changing its term or vote."""
    node = Node(1, pre_vote=True, election_timeout_min_ticks=10, election_timeout_max_ticks=10)
    assert not node.tick(9).messages
    out = node.tick()

    assert node.raft.role is Role.PRE_CANDIDATE
    assert (node.raft.term, node.raft.vote) == (0, NO_NODE)
    assert all(rd.hard_state is None for rd in out.readies)
    assert out.early == [pre_vote_req(1, 2, 1), pre_vote_req(1, 3, 1)]
    assert not out.persisted
    assert out.events_of(ev.ElectionTimeout)
    assert out.events_of(ev.PreVoteStarted)[0].next_term == 1

    out = node.step(PreVoteResponse(NodeId(2), NodeId(1), 1, granted=True))
    assert node.raft.role is Role.CANDIDATE
    assert node.raft.term == 1
    assert out.persisted == [vote_req(1, 2, 1), vote_req(1, 3, 1)]


def test_5_2_election_timeout_starts_an_election_directly_without_prevote() -> None:
    """§5.2: if a follower receives no communication over the election timeout, it
    becomes a candidate and starts an election (no PreVote round when it is disabled)."""
    node = Node(1, pre_vote=False, election_timeout_min_ticks=10, election_timeout_max_ticks=10)
    node.tick(9)
    assert node.raft.role is Role.FOLLOWER
    out = node.tick()
    assert node.raft.role is Role.CANDIDATE
    assert node.raft.term == 1
    assert not out.sent(PreVote)
    assert out.sent(RequestVote)


def test_5_2_candidate_votes_for_itself_and_persists_term() -> None:
    """§5.2: to begin an election a follower increments its term, votes for itself, and
    sends RequestVote (with its last log index and term) to every other server; the new
    term and vote must be durable before the requests go out."""
    node = Node(1, storage=MemoryStorage(HardState(term=2), ents(1, 2)))
    node.raft.campaign()
    rd = node.raft.ready()

    assert rd.hard_state == HardState(term=3, vote=NodeId(1), commit=0)
    assert rd.must_sync
    assert not [m for m in rd.messages if isinstance(m, RequestVote)]
    assert list(rd.persisted_messages) == [vote_req(1, 2, 3, 2, 2), vote_req(1, 3, 3, 2, 2)]
    assert node.raft.role is Role.CANDIDATE
    node.storage.save(rd.hard_state, rd.entries)
    node.raft.advance(rd)
    assert node.storage.initial_state()[0] == HardState(3, NodeId(1), 0)


def test_5_2_candidate_with_votes_from_a_majority_becomes_leader() -> None:
    """§5.2: a candidate wins once it has votes from a majority of the servers for its
    term (each server counted once), then becomes leader."""
    node = Node(1, voters=(1, 2, 3, 4, 5))
    node.campaign()
    node.step(vote_resp(2, 1, 1, granted=True), vote_resp(2, 1, 1, granted=True))
    assert node.raft.role is Role.CANDIDATE  # 2 of 5: a duplicate vote does not count
    node.step(vote_resp(4, 1, 1, granted=False))
    assert node.raft.role is Role.CANDIDATE
    out = node.step(vote_resp(3, 1, 1, granted=True))

    assert node.raft.role is Role.LEADER
    assert node.raft.leader == NodeId(1)
    assert [e.votes for e in out.events_of(ev.BecameLeader)] == [3]
    assert out.readies[0].soft_state is not None
    assert out.readies[0].soft_state.role is Role.LEADER


def test_5_2_candidate_refused_by_a_majority_returns_to_follower() -> None:
    """§5.2: a candidate that cannot get a majority any more gives up the election (and
    waits for a leader or its next timeout) as a follower in the same term."""
    node = Node(1)
    node.campaign()
    node.step(vote_resp(2, 1, 1, granted=False))
    assert node.raft.role is Role.CANDIDATE
    out = node.step(vote_resp(3, 1, 1, granted=False))
    assert node.raft.role is Role.FOLLOWER
    assert node.raft.term == 1
    assert out.events_of(ev.ElectionLost)


@pytest.mark.parametrize("kind", ["append", "heartbeat"])
def test_5_2_candidate_steps_down_on_append_entries_from_leader_of_same_term(kind: str) -> None:
    """§5.2: a candidate that receives AppendEntries from a leader whose term is at least
    its own recognises that leader and returns to follower."""
    node = Node(1)
    node.campaign()
    msg: Message = append(2, 1, 1, (0, 0)) if kind == "append" else heartbeat(2, 1, 1)
    out = node.step(msg)
    assert node.raft.role is Role.FOLLOWER
    assert node.raft.term == 1
    assert node.raft.leader == NodeId(2)
    assert out.events_of(ev.LeaderFound)


def test_5_2_candidate_starts_a_new_election_when_its_election_times_out() -> None:
    """§5.2: if an election ends without a winner (split vote), the candidate times out
    and starts a new election with a new term."""
    node = Node(1, election_timeout_min_ticks=10, election_timeout_max_ticks=10)
    node.campaign()
    node.tick(9)
    assert node.raft.term == 1
    out = node.tick()
    assert node.raft.role is Role.CANDIDATE
    assert node.raft.term == 2
    assert [m.term for m in out.sent(RequestVote)] == [2, 2]


def test_5_2_randomized_election_timeouts_stay_within_min_and_max() -> None:
    """§5.2: election timeouts are chosen at random from a fixed interval, anew for every
    election, so that split votes are rare."""
    seen: set[int] = set()
    for seed in range(30):
        node = Node(1, seed=seed, election_timeout_min_ticks=5, election_timeout_max_ticks=12)
        for _ in range(3):  # the first timeout, then two candidate re-elections
            term, ticks = node.raft.term, 0
            while node.raft.term == term:
                node.tick()
                ticks += 1
                assert ticks <= 12, f"seed {seed}: no election after {ticks} ticks"
            assert ticks >= 5
            seen.add(ticks)
    assert len(seen) >= 5  # really randomized


def test_5_2_one_vote_per_term_second_candidate_refused() -> None:
    """§5.2: each server votes for at most one candidate in a given term, first come
    first served."""
    node = Node(1)
    out = node.step(vote_req(2, 1, 3))
    assert out.sent(RequestVoteResponse) == [vote_resp(1, 2, 3, granted=True)]
    assert node.raft.vote == NodeId(2)

    out = node.step(vote_req(3, 1, 3, last_index=50, last_term=3))
    assert out.sent(RequestVoteResponse) == [vote_resp(1, 3, 3, granted=False)]
    [refused] = out.events_of(ev.VoteRefused)
    assert "already voted" in refused.reason
    assert node.raft.vote == NodeId(2)


def test_5_2_repeated_vote_request_from_same_candidate_gets_same_answer() -> None:
    """§5.2: votedFor is null *or the candidate*: a repeated (e.g. retransmitted) request
    from the candidate already voted for is granted again; others stay refused."""
    node = Node(1)
    first = node.step(vote_req(2, 1, 1)).sent(RequestVoteResponse)
    again = node.step(vote_req(2, 1, 1)).sent(RequestVoteResponse)
    assert first == again == [vote_resp(1, 2, 1, granted=True)]

    refused = [node.step(vote_req(3, 1, 1)).sent(RequestVoteResponse) for _ in range(2)]
    assert refused == [[vote_resp(1, 3, 1, granted=False)]] * 2


def test_5_2_vote_is_durable_before_it_is_sent() -> None:
    """§5.2 with Figure 2: currentTerm and votedFor are persistent state, updated on
    stable storage before responding to RPCs: a granted vote goes out only in
    ``persisted_messages`` of a Ready that must be synced."""
    node = Node(1, storage=MemoryStorage(HardState(term=1)))
    node.raft.step(vote_req(2, 1, 1))
    rd = node.raft.ready()
    assert rd.hard_state == HardState(1, NodeId(2), 0)
    assert rd.must_sync
    assert list(rd.persisted_messages) == [vote_resp(1, 2, 1, granted=True)]
    assert not rd.messages


def test_5_2_granting_a_vote_resets_the_election_timer() -> None:
    """§5.2 with Figure 2: a follower converts to candidate only if the timeout elapses
    without hearing from the leader *or granting a vote*."""
    node = Node(
        1,
        storage=MemoryStorage(HardState(term=1)),
        election_timeout_min_ticks=10,
        election_timeout_max_ticks=10,
    )
    node.tick(9)
    node.step(vote_req(2, 1, 1))
    node.tick(9)
    assert node.raft.role is Role.FOLLOWER
    node.tick()
    assert node.raft.role is Role.CANDIDATE


def test_5_2_follower_stays_follower_while_it_hears_from_a_leader() -> None:
    """§5.2: a server remains follower as long as it receives valid RPCs (heartbeats)
    from a leader."""
    node = Node(1, election_timeout_min_ticks=10, election_timeout_max_ticks=10)
    for _ in range(5):
        node.tick(9)
        node.step(heartbeat(2, 1, 1))
    assert node.raft.role is Role.FOLLOWER
    assert node.raft.leader == NodeId(2)
    node.tick(10)
    assert node.raft.role is Role.CANDIDATE


# == §5.4.1 election restriction ======================================================


UP_TO_DATE_CASES = [
    # candidate (last index, last term) vs the voter's log ending 3@2
    pytest.param(10, 1, False, id="lower-last-term-longer-log-refused"),
    pytest.param(2, 2, False, id="same-last-term-shorter-log-refused"),
    pytest.param(3, 2, True, id="equal-log-granted"),
    pytest.param(5, 2, True, id="same-last-term-longer-log-granted"),
    pytest.param(1, 3, True, id="higher-last-term-shorter-log-granted"),
]


@pytest.mark.parametrize("pre_vote", [False, True], ids=["vote", "prevote"])
@pytest.mark.parametrize(("last_index", "last_term", "granted"), UP_TO_DATE_CASES)
def test_5_4_1_vote_only_for_candidate_at_least_as_up_to_date(
    pre_vote: bool, last_index: int, last_term: int, granted: bool
) -> None:
    """§5.4.1: a voter denies its vote if its own log is more up-to-date than the
    candidate's: the later last term wins; with equal last terms the longer log wins. A
    PreVote is judged the same way."""
    node = Node(1, storage=MemoryStorage(HardState(term=2), ents(1, 2, 2)))
    msg: Message
    if pre_vote:
        msg = pre_vote_req(2, 1, 3, last_index, last_term)
    else:
        msg = vote_req(2, 1, 3, last_index, last_term)
    out = node.step(msg)

    if pre_vote:
        answers = [a.granted for a in out.sent(PreVoteResponse)]
    else:
        answers = [a.granted for a in out.sent(RequestVoteResponse)]
    assert answers == [granted]
    assert node.raft.vote == (NodeId(2) if granted and not pre_vote else NO_NODE)
    if not granted:
        [refused] = out.events_of(ev.VoteRefused)
        assert "log is behind" in refused.reason


# == §5.3 log replication =============================================================


def test_5_3_new_leader_appends_a_noop_of_its_term_and_replicates_it() -> None:
    """§5.3 with §8: a new leader appends a blank (no-op) entry of its own term at the end
    of its log and sends AppendEntries carrying it to every follower."""
    node = Node(1, storage=MemoryStorage(HardState(term=1), ents(1)))
    out = win_election(node)
    noop = Entry(2, 2, EntryKind.NOOP)
    assert log_of(node.raft) == [ent(1, 1), noop]
    assert [e for rd in out.readies for e in rd.entries] == [noop]
    assert out.sent(AppendEntries) == [
        append(1, 2, 2, prev=(1, 1), entries=[noop]),
        append(1, 3, 2, prev=(1, 1), entries=[noop]),
    ]


def test_5_3_append_rejected_when_prev_entry_is_missing() -> None:
    """§5.3: the consistency check: a follower that has no entry at prevLogIndex refuses
    the new entries, and hints where its log ends so the leader can back up at once."""
    node = Node(1, storage=MemoryStorage(HardState(term=1), ents(1, 1)))
    out = node.step(append(2, 1, 1, prev=(5, 1), entries=[ent(6, 1)]))
    assert out.sent(AppendEntriesResponse) == [
        AppendEntriesResponse(
            NodeId(1), NodeId(2), 1, success=False, reject_index=5, hint_index=2, hint_term=1
        )
    ]
    assert log_of(node.raft) == ents(1, 1)


@pytest.mark.parametrize(
    ("prev", "hint"),
    [((5, 3), (5, 2)), ((4, 1), (2, 1)), ((7, 2), (5, 2))],
    ids=["leader-term-above-ours", "leader-term-below-ours", "prev-beyond-our-log"],
)
def test_5_3_append_rejected_when_prev_term_differs_with_conflict_hint(
    prev: tuple[int, int], hint: tuple[int, int]
) -> None:
    """§5.3 (and thesis §5.3.1): a follower whose entry at prevLogIndex has another term
    (or that has none) refuses, and hints the last of its entries at or below
    prevLogIndex whose term is at most prevLogTerm: no entry after it can match the
    leader's, so the leader may skip them all."""
    node = Node(1, storage=MemoryStorage(HardState(term=3), ents(1, 1, 2, 2, 2)))
    out = node.step(append(2, 1, 3, prev=prev, entries=[ent(prev[0] + 1, 3)]))
    [resp] = out.sent(AppendEntriesResponse)
    assert not resp.success
    assert resp.reject_index == prev[0]
    assert (resp.hint_index, resp.hint_term) == hint
    assert log_of(node.raft) == ents(1, 1, 2, 2, 2)


def test_5_3_follower_deletes_conflicting_entry_and_all_that_follow() -> None:
    """§5.3: if an existing entry conflicts with a new one (same index, different term),
    the follower deletes it and all that follow, then appends the new entries; matching
    entries before the conflict are kept."""
    node = Node(1, storage=MemoryStorage(HardState(term=2), ents(1, 1, 2, 2)))
    out = node.step(append(2, 1, 3, prev=(1, 1), entries=[ent(2, 1), ent(3, 3)]))

    assert log_of(node.raft) == [ent(1, 1), ent(2, 1), ent(3, 3)]
    assert node.storage.all_entries() == [ent(1, 1), ent(2, 1), ent(3, 3)]
    [truncated] = out.events_of(ev.LogTruncated)
    assert (truncated.from_index, truncated.old_last) == (3, 4)
    assert out.sent(AppendEntriesResponse) == [append_ok(1, 2, 3, match=3)]


@pytest.mark.parametrize("bugs", [frozenset(), frozenset({"truncate-on-stale"})], ids=str)
def test_5_3_stale_or_duplicated_append_never_truncates_the_log(bugs: frozenset[str]) -> None:
    """§5.3: a follower truncates only from the first *conflicting* entry. A delayed or
    duplicated AppendEntries whose entries it already holds must not remove the entries
    it has appended since (they may be acknowledged and committed). With the injected
    bug ``truncate-on-stale`` it does (the switch works)."""
    node = Node(1, bugs=bugs)
    first = append(2, 1, 1, prev=(0, 0), entries=ents(1, 1))
    node.step(first)
    node.step(append(2, 1, 1, prev=(2, 1), entries=ents(1, 1, 1, start=3)))
    assert log_of(node.raft) == ents(1, 1, 1, 1, 1)

    out = node.step(first, append(2, 1, 1, prev=(1, 1), entries=[ent(2, 1)]))

    assert [m.match_index for m in out.sent(AppendEntriesResponse)] == [2, 2]
    if bugs:
        assert log_of(node.raft) == ents(1, 1)
        return
    assert log_of(node.raft) == ents(1, 1, 1, 1, 1)
    assert node.storage.all_entries() == ents(1, 1, 1, 1, 1)
    assert not out.events_of(ev.LogTruncated)


DIVERGENT_LOGS = [
    pytest.param([1] * 3 + [3] * 47, [1] * 3 + [2] * 97, id="follower-longer-old-term"),
    pytest.param([1] * 3 + [3] * 97, [1] * 3 + [2] * 57, id="follower-shorter-old-term"),
    pytest.param([1] * 100, [1] * 10, id="follower-behind"),
    pytest.param(
        [1] * 10 + [4] * 40 + [6] * 50,
        [1] * 10 + [2] * 30 + [3] * 30 + [5] * 30,
        id="several-old-terms",
    ),
]


@pytest.mark.parametrize(("leader_terms", "follower_terms"), DIVERGENT_LOGS)
def test_5_3_fast_backtracking_converges_in_few_round_trips(
    leader_terms: list[int], follower_terms: list[int]
) -> None:
    """§5.3 (the optimisation at its end, thesis §5.3.1): with the follower's conflict
    hint the leader skips whole terms of divergent entries instead of backing up one
    entry per round trip; the follower's log then becomes identical to the leader's."""
    leader_log, follower_log = ents(*leader_terms), ents(*follower_terms)
    storages = {
        1: MemoryStorage(HardState(term=leader_terms[-1]), leader_log),
        2: MemoryStorage(HardState(term=follower_terms[-1]), follower_log),
        3: MemoryStorage(HardState(term=leader_terms[-1]), leader_log),
    }
    net = Net(3, storages=storages)
    net.elect(1)
    rejections = [
        m
        for m in net.delivered
        if isinstance(m, AppendEntriesResponse) and m.src == 2 and not m.success
    ]
    assert len(rejections) <= 2, [m.describe() for m in rejections]
    assert net.log(2) == net.log(1)
    assert net.log(1)[: len(leader_log)] == leader_log


def test_5_3_follower_commit_is_min_of_leader_commit_and_last_new_entry() -> None:
    """§5.3 with Figure 2: if leaderCommit > commitIndex, the follower sets commitIndex to
    min(leaderCommit, index of the last new entry): entries after the ones this message
    vouched for may not be the leader's."""
    node = Node(1, storage=MemoryStorage(HardState(term=1), ents(1, 1, 1, 1, 1)))
    out = node.step(append(2, 1, 1, prev=(1, 1), entries=[ent(2, 1)], commit=4))
    assert node.raft.log.committed == 2
    assert [e.index for e in out.committed] == [1, 2]

    out = node.step(append(2, 1, 1, prev=(2, 1), entries=ents(1, 1, start=3), commit=3))
    assert node.raft.log.committed == 3
    out = node.step(append(2, 1, 1, prev=(4, 1), entries=[ent(5, 1)], commit=9))
    assert node.raft.log.committed == 5
    assert [e.index for e in out.committed] == [4, 5]


def test_5_3_append_acknowledgement_goes_out_only_after_the_entries_are_durable() -> None:
    """§5.3 with Figure 2: a follower acknowledges entries only once they are on stable
    storage: the AppendEntriesResponse is in ``persisted_messages`` of the Ready that
    carries the entries, and that Ready must be synced."""
    node = Node(1)
    node.raft.step(append(2, 1, 1, prev=(0, 0), entries=ents(1, 1)))
    rd = node.raft.ready()
    assert rd.entries == tuple(ents(1, 1))
    assert rd.must_sync
    assert list(rd.persisted_messages) == [append_ok(1, 2, 1, match=2)]
    assert not [m for m in rd.messages if isinstance(m, AppendEntriesResponse)]


def test_5_3_leader_commits_an_entry_once_a_majority_stores_it() -> None:
    """§5.3: a log entry is committed once the leader has replicated it on a majority;
    the leader then applies it and tells followers through later AppendEntries."""
    net = Net(3)
    net.elect(1)
    net.isolated.add(3)
    net.propose(1, b"SET 5")
    assert net[1].log.committed == 1
    net.deliver_to(2)
    assert net[1].log.committed == 1  # only the leader holds index 2 so far
    net.deliver_to(1)
    assert net[1].log.committed == 2
    assert [e.data for e in net.outs[1].committed][-1] == b"SET 5"
    net.stabilize()
    assert net[2].log.committed == 2
    assert [e.data for e in net.log(3)] == [b""]  # node 3 never got it


def test_5_3_leader_never_overwrites_its_log_on_append_entries_of_its_term() -> None:
    """§5.3 (Leader Append-Only): a leader never overwrites or deletes entries in its log;
    an AppendEntries of its own term from another node is ignored."""
    node = leader_with_committed_noop()
    node.propose(b"x")
    before = log_of(node.raft)
    node.step(append(2, 1, 1, prev=(1, 1), entries=[ent(2, 1, b"other")], commit=2))
    assert log_of(node.raft) == before
    assert node.raft.role is Role.LEADER


# == §5.4.2 committing entries from previous terms (Figure 8) =========================


def figure8_net(bugs: frozenset[str]) -> Net:
    """Node 1 led term 2 and wrote 2@2 only to itself; it now wins term 3. Node 3 is cut
    off and one entry goes per message, so node 2 first receives 2@2 alone."""
    hard = HardState(term=2, vote=NodeId(1), commit=1)
    storages = {
        1: MemoryStorage(hard, [ent(1, 1), ent(2, 2, b"old")]),
        2: MemoryStorage(hard, [ent(1, 1)]),
        3: MemoryStorage(hard, [ent(1, 1)]),
    }
    net = Net(3, storages=storages, max_entries_per_msg=1, bugs=bugs)
    net.campaign(1)
    net.deliver()  # RequestVote
    net.deliver()  # votes: node 1 leads term 3, appends no-op 3@3
    assert net[1].role is Role.LEADER
    assert net[1].term == 3
    net.isolated.add(3)
    net.deliver_to(2)  # prev=2@2: node 2 lacks it and rejects
    net.deliver_to(1)  # the leader backs up and sends 2@2 alone
    net.deliver_to(2)  # node 2 stores 2@2
    net.deliver_to(1)  # ... and acknowledges match=2
    assert net[1].status().peers[1].match == 2
    return net


def test_5_4_2_leader_never_commits_old_term_entry_by_counting_replicas() -> None:
    """§5.4.2 (Figure 8): a leader does not commit an entry from an earlier term because a
    majority stores it; it commits it only indirectly, once an entry of its own term is
    committed (Log Matching then covers the earlier ones)."""
    net = figure8_net(frozenset())
    assert net[1].log.committed == 1  # 2@2 is on a majority (1, 2), still not committed
    net.stabilize()  # 3@3 reaches node 2
    assert net[1].log.committed == 3
    assert net[2].log.committed == 3
    assert [(e.index, e.term) for e in net.outs[2].committed] == [(2, 2), (3, 3)]


def test_5_4_2_commit_old_term_bug_switch_commits_by_counting_replicas() -> None:
    """The injected bug ``commit-old-term`` is Figure 8's trap: the leader commits 2@2 as
    soon as a majority stores it. (Proves the rule above is really tested.)"""
    net = figure8_net(frozenset({"commit-old-term"}))
    assert net[1].log.committed == 2


def test_10_2_1_leader_counts_its_own_entry_only_once_persisted() -> None:
    """§10.2.1 (thesis): the leader may send entries before writing them to its own disk,
    but its own copy counts toward a majority only once durable: in a single-node cluster
    an entry commits only after the Ready carrying it has been persisted and advanced."""
    node = Node(1, voters=(1,))
    node.raft.campaign()
    assert node.raft.role is Role.LEADER
    rd = node.raft.ready()
    assert [e.kind for e in rd.entries] == [EntryKind.NOOP]
    assert not rd.committed_entries
    assert node.raft.log.committed == 0
    node.storage.save(rd.hard_state, rd.entries)
    node.raft.advance(rd)
    assert node.raft.log.committed == 1

    node.drain()
    node.raft.propose(b"SET 5")
    rd = node.raft.ready()
    assert rd.entries == (ent(2, 1, b"SET 5"),)
    assert node.raft.status().commit == 1
    node.storage.save(rd.hard_state, rd.entries)
    node.raft.advance(rd)
    assert node.raft.status().commit == 2
    assert node.drain().committed == [ent(2, 1, b"SET 5")]


# == heartbeats =======================================================================


def test_5_2_leader_sends_heartbeat_every_heartbeat_interval() -> None:
    """§5.2: a leader sends periodic heartbeats (empty AppendEntries; here Heartbeat
    messages) to every follower, every ``heartbeat_ticks``."""
    node = Node(1, heartbeat_ticks=3)
    win_election(node)
    counts = [len(node.tick().sent(Heartbeat)) for _ in range(9)]
    assert counts == [0, 0, 2, 0, 0, 2, 0, 0, 2]


def test_5_3_heartbeat_commit_is_min_of_follower_match_and_leader_commit() -> None:
    """§5.3: followers learn the commit index from the leader; a heartbeat carries only
    what the follower is known to hold (min(match, commit)), so it never commits an entry
    the follower may hold from another leader."""
    node = leader_with_committed_noop()
    node.propose(b"a")
    node.propose(b"b")
    node.step(append_ok(2, 1, 1, match=3))
    assert node.raft.log.committed == 3
    beats = node.tick().sent(Heartbeat)
    assert [(m.dst, m.commit) for m in beats] == [(2, 3), (3, 1)]


def test_5_3_follower_answers_heartbeat_and_learns_commit() -> None:
    """§5.3: a follower answers the leader's heartbeat and advances its commit index to the
    leader's (never past its own last entry)."""
    node = Node(1, storage=MemoryStorage(HardState(term=1), ents(1, 1, 1)))
    out = node.step(heartbeat(2, 1, 1, commit=2))
    assert out.messages == [heartbeat_resp(1, 2, 1)]
    assert node.raft.log.committed == 2
    assert [e.index for e in out.committed] == [1, 2]
    node.step(heartbeat(2, 1, 1, commit=9))
    assert node.raft.log.committed == 3


def test_5_3_heartbeat_response_resumes_probing_a_lagging_follower() -> None:
    """§5.3: the leader retries AppendEntries indefinitely: a follower whose probe was lost
    gets a new AppendEntries as soon as it answers a heartbeat, and catches up."""
    net = Net(3)
    net.campaign(1)
    net.deliver()
    net.deliver()
    assert net[1].role is Role.LEADER
    assert net.drop(lambda m: isinstance(m, AppendEntries) and m.dst == 2)
    net.stabilize()
    net.propose(1, b"x")
    assert not [m for m in net.inflight if isinstance(m, AppendEntries) and m.dst == 2]
    net.stabilize()
    assert len(net.log(2)) == 0

    net.tick(1)
    net.deliver()  # heartbeats
    net.deliver()  # heartbeat responses
    assert [m for m in net.inflight if isinstance(m, AppendEntries) and m.dst == 2]
    net.stabilize()
    assert net.log(2) == net.log(1)
    assert len(net.log(2)) == 2


# == §6.2 / §9.6 CheckQuorum and PreVote ==============================================


def test_6_2_check_quorum_leader_steps_down_without_hearing_from_a_quorum() -> None:
    """§6.2 (thesis): a leader steps down if an election timeout passes without a
    successful round of communication with a majority of its cluster."""
    node = Node(1, check_quorum=True, election_timeout_min_ticks=10)
    win_election(node)
    node.tick(10)
    assert node.raft.role is Role.LEADER  # the first round counts the election itself
    out = node.tick(10)
    assert node.raft.role is Role.FOLLOWER
    assert node.raft.term == 1
    assert node.raft.leader == NO_NODE
    [lost] = out.events_of(ev.QuorumLost)
    assert (lost.active, lost.needed) == (1, 2)


def test_6_2_check_quorum_leader_that_hears_from_a_quorum_stays_leader() -> None:
    """§6.2: hearing from a majority (itself and one follower of three) each round keeps
    the leader in office."""
    node = Node(1, check_quorum=True, election_timeout_min_ticks=10)
    win_election(node)
    for _ in range(50):
        node.tick()
        node.step(heartbeat_resp(2, 1, 1))
    assert node.raft.role is Role.LEADER


@pytest.mark.parametrize("pre_vote", [True, False], ids=["prevote", "no-prevote"])
def test_9_6_prevote_partitioned_node_does_not_increase_its_term(pre_vote: bool) -> None:
    """§9.6: with PreVote a node that cannot reach a majority never wins a pre-election,
    so it never increments its term however often it times out (without PreVote it
    does)."""
    net = Net(3, pre_vote=pre_vote, check_quorum=True)
    net.elect(1)
    net.stabilize()
    term = net[1].term
    net.isolated.add(3)
    for _ in range(100):
        net.tick(3)
        net.deliver()
    if pre_vote:
        assert net[3].term == term
        assert net[3].role is Role.PRE_CANDIDATE
    else:
        assert net[3].term > term + 2


def test_9_6_prevote_request_changes_nothing_at_the_voter() -> None:
    """§9.6: a PreVote is a question, not an election: the voter answers it without
    adopting the candidate's (future) term and without recording a vote, so nothing needs
    to be persisted."""
    node = Node(1, storage=MemoryStorage(HardState(term=2, vote=NodeId(3)), ents(1, 2)))
    out = node.step(pre_vote_req(2, 1, 5, last_index=2, last_term=2))
    assert out.sent(PreVoteResponse) == [PreVoteResponse(NodeId(1), NodeId(2), 5, granted=True)]
    assert (node.raft.term, node.raft.vote, node.raft.role) == (2, NodeId(3), Role.FOLLOWER)
    assert all(rd.hard_state is None and not rd.must_sync for rd in out.readies)
    assert node.storage.initial_state()[0] == HardState(term=2, vote=NodeId(3))


def test_9_6_rejoining_node_does_not_disrupt_the_leader() -> None:
    """§9.6: a node rejoining after a partition does not depose a working leader: with
    PreVote its term did not grow, servers that hear from the leader ignore its
    pre-vote requests, and it goes back to following the leader, whose term is
    unchanged."""
    net = Net(3, pre_vote=True, check_quorum=True)
    net.elect(1)
    term = net[1].term
    net.isolated.add(3)
    net.tick_all(60)
    assert net[3].role is Role.PRE_CANDIDATE
    net.isolated.clear()
    for _ in range(40):  # node 3 times out again and asks for pre-votes
        net.tick(3)
        if any(isinstance(m, PreVote) for m in net.inflight):
            break
    assert [m.dst for m in net.inflight if isinstance(m, PreVote)] == [1, 2]
    net.deliver()
    assert not [m for m in net.inflight if isinstance(m, PreVoteResponse)]
    reasons = [e.reason for i in (1, 2) for e in net.outs[i].events_of(ev.VoteRefused)]
    assert reasons == ["heard from leader 1 recently"] * 2
    net.tick_all(30)

    assert net[1].role is Role.LEADER
    assert [net[i].term for i in (1, 2, 3)] == [term] * 3
    assert net[3].role is Role.FOLLOWER
    assert net[3].leader == NodeId(1)


def test_9_6_follower_that_heard_from_leader_recently_ignores_vote_requests() -> None:
    """§9.6 (thesis) with CheckQuorum: a server that heard from a leader within the
    minimum election timeout ignores RequestVote, even of a higher term: it neither votes
    nor updates its term. Once the timeout passes it votes as usual."""
    node = Node(1, check_quorum=True, election_timeout_min_ticks=10)
    node.step(heartbeat(2, 1, 1))
    out = node.step(vote_req(3, 1, 5, last_index=9, last_term=4))
    assert not out.sent(RequestVoteResponse)
    assert (node.raft.term, node.raft.leader) == (1, NodeId(2))
    assert "heard from leader 2 recently" in out.events_of(ev.VoteRefused)[0].reason

    node.tick(10)
    out = node.step(vote_req(3, 1, 5, last_index=9, last_term=4))
    assert out.sent(RequestVoteResponse) == [vote_resp(1, 3, 5, granted=True)]
    assert node.raft.term == 5


def test_9_6_leader_keeps_its_term_when_a_disruptive_candidate_asks_for_votes() -> None:
    """§9.6: with CheckQuorum a leader in good standing ignores a RequestVote of a higher
    term from a server that could not hear it: it stays leader in its term."""
    node = Node(1, check_quorum=True)
    win_election(node)
    out = node.step(vote_req(3, 1, 7, last_index=9, last_term=6))
    assert node.raft.role is Role.LEADER
    assert node.raft.term == 1
    assert not out.sent(RequestVoteResponse)


# == §6.4 ReadIndex ===================================================================


def test_6_4_read_is_confirmed_only_after_a_quorum_acknowledges_a_heartbeat() -> None:
    """§6.4 (thesis): to serve a read the leader records its commit index, then sends a
    heartbeat round; only once a majority has acknowledged it is it sure it was still
    leader, and the read may be served at the recorded index."""
    node = leader_with_committed_noop(voters=(1, 2, 3, 4, 5))
    node.raft.read_index(b"r1")
    out = node.drain()
    beats = out.sent(Heartbeat)
    assert [(m.dst, m.context) for m in beats] == [(n, b"r1") for n in (2, 3, 4, 5)]
    assert not out.read_states

    assert not node.step(heartbeat_resp(2, 1, 1, b"r1")).read_states
    assert not node.step(heartbeat_resp(2, 1, 1, b"r1")).read_states  # counted once
    assert not node.step(heartbeat_resp(4, 1, 1)).read_states  # a plain heartbeat ack
    out = node.step(heartbeat_resp(3, 1, 1, b"r1"))
    assert out.read_states == [ReadState(1, b"r1")]
    assert not node.step(heartbeat_resp(5, 1, 1, b"r1")).read_states  # only once


def test_6_4_read_index_is_the_commit_index_at_request_time() -> None:
    """§6.4: the read index is the leader's commit index when the read arrives: not its
    last index (entries not yet committed are not part of any read), and not a commit
    index reached while leadership is being confirmed."""
    node = leader_with_committed_noop()
    node.propose(b"w1")  # index 2, not committed yet
    node.raft.read_index(b"r")
    node.drain()
    node.propose(b"w2")
    node.step(append_ok(2, 1, 1, match=3))
    assert node.raft.log.committed == 3
    out = node.step(heartbeat_resp(2, 1, 1, b"r"))
    assert out.read_states == [ReadState(1, b"r")]


def test_6_4_new_leader_defers_reads_until_its_noop_commits() -> None:
    """§6.4 step 1: a new leader does not know the commit index until an entry of its own
    term commits; reads wait for its no-op, and then use the index that includes it."""
    node = Node(1, storage=MemoryStorage(HardState(term=1, commit=1), ents(1)))
    win_election(node)
    node.raft.read_index(b"r")
    out = node.drain()
    assert not [m for m in out.sent(Heartbeat) if m.context]
    assert not out.read_states

    out = node.step(append_ok(2, 1, 2, match=2))  # the no-op 2@2 commits
    assert node.raft.log.committed == 2
    assert [m.dst for m in out.sent(Heartbeat) if m.context == b"r"] == [2, 3]
    out = node.step(heartbeat_resp(3, 1, 2, b"r"))
    assert out.read_states == [ReadState(2, b"r")]


@pytest.mark.parametrize("noop_committed", [False, True], ids=["awaiting-noop", "pending"])
@pytest.mark.parametrize("how", ["higher-term", "quorum-lost"])
def test_6_4_reads_are_dropped_when_leadership_is_lost(how: str, noop_committed: bool) -> None:
    """§6.4: a read whose leadership check cannot complete any more (the node is no
    longer leader) is failed, not left hanging: its context comes out in
    ``Ready.dropped_reads``, whether it was waiting for the no-op to commit or for the
    heartbeat round."""
    node = Node(1, check_quorum=True, election_timeout_min_ticks=10)
    win_election(node)
    node.raft.read_index(b"a")
    if noop_committed:
        out = node.step(append_ok(2, 1, 1, match=1))
        assert [m.context for m in out.sent(Heartbeat)] == [b"a", b"a"]
    node.raft.read_index(b"b")
    node.drain()
    if how == "higher-term":
        out = node.step(heartbeat(3, 1, 2))
    else:
        out = node.tick(20)
    assert node.raft.role is Role.FOLLOWER
    assert sorted(out.dropped_reads) == [b"a", b"b"]
    assert not out.read_states
    assert not node.step(heartbeat_resp(2, 1, 1, b"a")).read_states


def test_6_4_read_index_on_follower_raises_not_leader_with_hint() -> None:
    """§6.4 / §8: only the leader serves reads; a follower redirects the client to the
    leader it knows of (or none)."""
    node = Node(1)
    with pytest.raises(NotLeader) as no_leader:
        node.raft.read_index(b"r")
    assert no_leader.value.leader_hint == NO_NODE
    node.step(heartbeat(2, 1, 1))
    with pytest.raises(NotLeader) as known:
        node.raft.read_index(b"r")
    assert known.value.leader_hint == NodeId(2)


def test_6_4_single_node_cluster_confirms_reads_without_messages() -> None:
    """§6.4: in a single-server cluster the leader is its own quorum: a read is confirmed
    at once, once the leader's no-op has committed."""
    node = Node(1, voters=(1,))
    node.raft.campaign()
    node.raft.read_index(b"early")
    out = node.drain()
    assert out.read_states == [ReadState(1, b"early")]
    node.raft.read_index(b"late")
    out = node.drain()
    assert out.read_states == [ReadState(1, b"late")]
    assert not out.messages


def test_6_4_read_context_must_be_non_empty_and_unique() -> None:
    """§6.4 bookkeeping: a read is identified by its context, so an empty context or one
    already pending is a caller error, not a second read."""
    node = leader_with_committed_noop()
    with pytest.raises(UsageError):
        node.raft.read_index(b"")
    node.raft.read_index(b"r")
    with pytest.raises(UsageError):
        node.raft.read_index(b"r")
    out = node.drain()
    assert [m.context for m in out.sent(Heartbeat)] == [b"r", b"r"]


# == §3.10 leadership transfer ========================================================


def test_3_10_transfer_brings_target_up_to_date_then_sends_timeout_now() -> None:
    """§3.10 (thesis): the leader first brings the target's log up to date, and only then
    sends it TimeoutNow."""
    node = Node(1)
    win_election(node)
    node.step(append_ok(3, 1, 1, match=1))
    node.propose(b"x")
    node.raft.transfer_leader(NodeId(2))
    out = node.drain()
    assert not out.sent(TimeoutNow)

    out = node.step(append_ok(2, 1, 1, match=1))
    assert [m.entries for m in out.sent(AppendEntries, to=2)] == [(ent(2, 1, b"x"),)]
    assert not out.sent(TimeoutNow)
    out = node.step(append_ok(2, 1, 1, match=2))
    assert out.sent(TimeoutNow) == [TimeoutNow(NodeId(1), NodeId(2), 1)]


def test_3_10_transfer_to_up_to_date_target_sends_timeout_now_at_once() -> None:
    """§3.10: a target whose log already matches gets TimeoutNow immediately."""
    node = leader_with_committed_noop()
    node.raft.transfer_leader(NodeId(3))
    assert node.drain().sent(TimeoutNow) == [TimeoutNow(NodeId(1), NodeId(3), 1)]


def test_3_10_target_campaigns_at_once_without_prevote_and_wins() -> None:
    """§3.10: on TimeoutNow the target starts an election at once, skipping PreVote, and
    its RequestVotes are honoured even by servers that heard from the leader recently
    (the ``transfer`` flag)."""
    net = Net(3, pre_vote=True, check_quorum=True)
    net.elect(1)
    net.tick_all(3)
    term = net[1].term
    start = len(net.delivered)
    net[1].transfer_leader(NodeId(2))
    net.flush(1)
    net.stabilize()
    since = net.delivered[start:]

    assert net[2].role is Role.LEADER
    assert net[2].term == term + 1
    assert [net[i].leader for i in (1, 2, 3)] == [NodeId(2)] * 3
    assert [type(m) for m in since[:1]] == [TimeoutNow]
    assert not [m for m in since if isinstance(m, PreVote)]
    requests = [m for m in since if isinstance(m, RequestVote)]
    assert [(m.dst, m.term, m.transfer) for m in requests] == [
        (1, term + 1, True),
        (3, term + 1, True),
    ]
    [started] = [e for e in net.outs[2].events_of(ev.ElectionStarted) if e.term == term + 1]
    assert started.transfer


def test_3_10_proposals_are_refused_during_a_transfer() -> None:
    """§3.10: while a transfer is in progress the leader stops accepting client requests
    (they would only have to be redirected)."""
    node = Node(1)
    win_election(node)
    node.raft.transfer_leader(NodeId(2))
    assert node.raft.status().transferee == NodeId(2)
    with pytest.raises(ProposalDropped):
        node.raft.propose(b"x")


def test_3_10_transfer_aborts_after_an_election_timeout() -> None:
    """§3.10: if the transfer does not complete within an election timeout the leader
    aborts it and resumes accepting client requests."""
    node = Node(1, election_timeout_min_ticks=10)
    win_election(node)
    node.raft.transfer_leader(NodeId(2))
    node.tick(9)
    assert node.raft.status().transferee == NodeId(2)
    out = node.tick()
    assert node.raft.status().transferee == NO_NODE
    assert [e.reason for e in out.events_of(ev.TransferAborted)] == ["timed out"]
    assert node.raft.role is Role.LEADER
    node.propose(b"x")
    assert log_of(node.raft)[-1].data == b"x"


def test_3_10_transfer_target_must_be_another_voter() -> None:
    """§3.10: leadership can only go to another voter; transferring to oneself is a
    no-op, and only the leader can transfer."""
    node = leader_with_committed_noop()
    with pytest.raises(UsageError):
        node.raft.transfer_leader(NodeId(9))
    node.raft.transfer_leader(NodeId(1))
    assert node.raft.status().transferee == NO_NODE
    assert not node.drain().sent(TimeoutNow)
    follower = Node(2)
    with pytest.raises(NotLeader):
        follower.raft.transfer_leader(NodeId(1))


# == the Ready contract ===============================================================


def test_ready_twice_without_advance_raises_usage_error() -> None:
    """Ready contract: ``ready()`` may not be called again before ``advance()``."""
    node = Node(1)
    node.raft.campaign()
    node.raft.ready()
    assert not node.raft.has_ready()
    with pytest.raises(UsageError):
        node.raft.ready()


def test_advance_with_another_ready_raises_usage_error() -> None:
    """Ready contract: ``advance()`` takes the Ready last returned by ``ready()``, once."""
    node = Node(1)
    node.raft.campaign()
    rd = node.raft.ready()
    with pytest.raises(UsageError):
        node.raft.advance(msgspec.structs.replace(rd))  # equal, but not the same Ready
    node.raft.advance(rd)
    with pytest.raises(UsageError):
        node.raft.advance(rd)


def test_ready_must_sync_only_for_entries_term_or_vote() -> None:
    """Ready contract (Figure 2's persistent state): a Ready must be synced when it
    carries entries or a new term or vote; a change of the commit index alone needs no
    sync."""
    node = Node(1, storage=MemoryStorage(HardState(term=1)))
    node.raft.step(vote_req(2, 1, 1))  # same term, new vote
    rd = node.raft.ready()
    assert rd.must_sync and not rd.entries
    node.raft.advance(rd)

    node.raft.step(heartbeat(2, 1, 2))  # new term
    rd = node.raft.ready()
    assert rd.must_sync and not rd.entries
    node.raft.advance(rd)

    node.raft.step(append(2, 1, 2, (0, 0), ents(2, 2)))  # entries
    rd = node.raft.ready()
    assert rd.must_sync and rd.entries
    node.storage.save(rd.hard_state, rd.entries)
    node.raft.advance(rd)

    node.raft.step(heartbeat(2, 1, 2, commit=2))  # commit only
    rd = node.raft.ready()
    assert rd.hard_state == HardState(2, NO_NODE, 2)
    assert not rd.must_sync


def test_ready_hard_state_is_none_when_unchanged() -> None:
    """Ready contract: ``hard_state`` is None unless term, vote or commit changed."""
    node = leader_with_committed_noop()
    node.raft.tick()
    rd = node.raft.ready()
    assert rd.messages
    assert rd.hard_state is None
    assert not rd.must_sync


def test_ready_committed_entries_come_out_once_in_order() -> None:
    """Ready contract step 4: every committed entry is handed out to be applied exactly
    once, in index order, even when ``max_committed_bytes_per_ready`` splits them over
    several Readies."""
    node = Node(1, voters=(1,), max_committed_bytes_per_ready=50)
    out = node.campaign()
    for i in range(20):
        node.raft.propose(f"SET {i}".encode())
        if i % 3 == 0:
            out.extend(node.drain())
    out.extend(node.drain())

    assert [e.index for e in out.committed] == list(range(1, 22))
    assert [e.data for e in out.committed[1:]] == [f"SET {i}".encode() for i in range(20)]
    sizes = [len(rd.committed_entries) for rd in out.readies if rd.committed_entries]
    assert max(sizes) == 2  # 2 entries of 22 bytes fit in 50, 3 do not
    assert node.raft.log.applied == 21
    assert not node.raft.has_ready()


def test_ready_caller_may_step_between_ready_and_advance() -> None:
    """Ready contract: the caller may step messages between ``ready()`` and ``advance()``;
    nothing is lost, and the leader's own entry counts only after ``advance()``."""
    node = Node(1)
    win_election(node)
    node.step(append_ok(2, 1, 1, match=1))
    assert node.raft.log.committed == 1
    node.raft.propose(b"x")
    rd = node.raft.ready()
    assert rd.entries == (ent(2, 1, b"x"),)
    assert [m.entries for m in rd.messages if isinstance(m, AppendEntries) and m.dst == 2] == [
        (ent(2, 1, b"x"),)
    ]  # may be sent before the leader's own write

    node.raft.step(append_ok(2, 1, 1, match=2))  # node 2 stored it before we did
    assert node.raft.log.committed == 1  # only one of three copies is durable
    assert not node.raft.has_ready()
    node.storage.save(rd.hard_state, rd.entries)
    node.raft.advance(rd)
    assert node.raft.log.committed == 2
    out = node.drain()
    assert out.committed == [ent(2, 1, b"x")]


def test_4_1_requests_from_outside_the_configuration_are_served_answers_do_not_count() -> None:
    """§4.1: a server processes requests without consulting its configuration (the
    leader of a configuration it has not seen yet must be able to reach it); but only
    voters' votes count. A message addressed to another node is a caller error."""
    node = Node(1)
    node.step(heartbeat(9, 1, 7))
    assert (node.raft.term, node.raft.leader) == (7, NodeId(9))
    candidate = Node(1)
    candidate.campaign()
    candidate.step(RequestVoteResponse(NodeId(9), NodeId(1), candidate.raft.term, granted=True))
    candidate.step(RequestVoteResponse(NodeId(8), NodeId(1), candidate.raft.term, granted=True))
    assert candidate.raft.role is Role.CANDIDATE  # two outsiders' votes are not a majority
    with pytest.raises(UsageError):
        node.raft.step(heartbeat(2, 3, 1))


# == client requests, restart, flow control ===========================================


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE])
def test_8_propose_on_non_leader_raises_not_leader_with_hint(role: Role) -> None:
    """§8: clients send requests to the leader; any other server rejects them and names
    the leader it knows of."""
    node = Node(1)
    expected = NO_NODE
    if role is Role.CANDIDATE:
        node.campaign()
    else:
        node.step(heartbeat(3, 1, 1))
        expected = NodeId(3)
    with pytest.raises(NotLeader) as err:
        node.raft.propose(b"x")
    assert err.value.leader_hint == expected
    assert log_of(node.raft) == []


def test_5_2_restarted_node_keeps_term_vote_and_log_and_does_not_vote_twice() -> None:
    """§5.2 / Figure 2: currentTerm, votedFor and the log are persistent: a node rebuilt
    from its storage has them all, and does not vote for another candidate in a term it
    already voted in."""
    node = Node(1)
    node.step(append(2, 1, 3, (0, 0), [ent(1, 3, b"a"), ent(2, 3, b"b")], commit=1))
    node.step(vote_req(3, 1, 4, last_index=2, last_term=3))
    assert (node.raft.term, node.raft.vote) == (4, NodeId(3))

    again = node.restart()
    status = again.raft.status()
    assert (status.term, status.vote, status.commit) == (4, NodeId(3), 1)
    assert log_of(again.raft) == [ent(1, 3, b"a"), ent(2, 3, b"b")]
    out = again.step(vote_req(2, 1, 4, last_index=2, last_term=3))
    assert out.sent(RequestVoteResponse) == [vote_resp(1, 2, 4, granted=False)]
    out = again.step(vote_req(3, 1, 4, last_index=2, last_term=3))
    assert out.sent(RequestVoteResponse) == [vote_resp(1, 3, 4, granted=True)]


def test_fig2_restarted_node_reapplies_committed_entries_without_reporting_them_as_new() -> None:
    """After a restart the node hands out its committed entries again (the state machine
    is rebuilt from the log), but does not report them as newly committed."""
    node = Node(1, voters=(1,))
    out = node.campaign()
    out.extend(node.propose(b"SET 5"))
    assert [e.data for e in out.events_of(ev.EntryCommitted)] == [b"SET 5"]

    again = node.restart()
    assert [e.index for e in again.started.committed] == [1, 2]
    assert not again.started.events_of(ev.EntryCommitted)
    assert again.raft.status().applied == 2


def test_fig2_restart_with_commit_beyond_the_stored_log_is_refused() -> None:
    """Figure 2 invariant commitIndex <= last log index: a hard state whose commit index is
    beyond the stored log is corrupt storage, and the node refuses to start on it."""
    storage = MemoryStorage(HardState(term=1, commit=3), ents(1, 1))
    with pytest.raises(UsageError, match="beyond the stored log"):
        Raft(config(1, (1, 2, 3)), storage, random.Random(0))


def test_10_2_2_flow_control_at_most_max_inflight_unacked_appends_per_follower() -> None:
    """Flow control (thesis §10.2.2, pipelining): a leader keeps at most
    ``max_inflight_msgs`` AppendEntries with entries unacknowledged per follower, and
    sends more as acknowledgements free the window."""
    node = leader_with_committed_noop(max_inflight_msgs=2, max_entries_per_msg=1)
    outstanding: list[int] = []

    def collect(out: Out) -> None:
        outstanding.extend(m.entries[-1].index for m in out.sent(AppendEntries, to=2) if m.entries)
        assert len(outstanding) <= 2, outstanding

    for i in range(5):
        collect(node.propose(f"v{i}".encode()))
    assert outstanding == [2, 3]
    assert node.raft.status().peers[1].inflight == 2

    received: list[int] = []
    while outstanding:
        received.append(outstanding.pop(0))
        collect(node.step(append_ok(2, 1, 1, match=received[-1])))
    assert received == [2, 3, 4, 5, 6]


def test_10_2_2_flow_control_max_entries_per_msg_bounds_each_append() -> None:
    """Flow control: no AppendEntries carries more than ``max_entries_per_msg`` entries,
    and the follower still receives the whole log."""
    net = Net(3, max_entries_per_msg=3)
    net.elect(1)
    net[1].propose_many([f"v{i}".encode() for i in range(10)])
    net.flush(1)
    net.stabilize()
    sizes = [len(m.entries) for m in net.delivered if isinstance(m, AppendEntries)]
    assert max(sizes) == 3
    assert net.log(2) == net.log(3) == net.log(1)
    assert len(net.log(1)) == 11
