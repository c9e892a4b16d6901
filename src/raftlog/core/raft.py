"""The Raft protocol as a pure, deterministic state machine.

Everything that affects a node's protocol state lives in this file. It does no I/O: time
arrives as :meth:`Raft.tick`, peers' messages as :meth:`Raft.step`, client requests as
:meth:`Raft.propose` and :meth:`Raft.read_index`, and randomness from the injected
``random.Random``. What the node must do in response comes out as a :class:`Ready`.

The Ready contract. The caller takes ``rd = raft.ready()`` whenever ``raft.has_ready()``
and handles it **in this order**:

1. if ``rd.snapshot`` is set, replace the whole log with that snapshot (its bytes arrived
   with the InstallSnapshot that produced it) and restore the state machine from it; then
   append ``rd.entries`` to storage (truncating any conflicting suffix first) and save
   ``rd.hard_state`` if present, as one atomic write;
2. make that write durable (fsync) if ``rd.must_sync``;
3. send ``rd.persisted_messages`` (vote and append acknowledgements: they promise
   durability); ``rd.messages`` need no durability and may be sent at any time, even
   before step 1;
4. apply ``rd.committed_entries`` to the state machine in index order, exactly once, and
   serve ``rd.read_states`` once the state machine has applied their index; fail the
   reads in ``rd.dropped_reads``;
5. call ``raft.advance(rd)``.

The caller may keep stepping and ticking between ``ready()`` and ``advance()``; it may not
call ``ready()`` again before ``advance()``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import msgspec

from raftlog.core import events as ev
from raftlog.core.config import Config
from raftlog.core.errors import ConfChangeRefused, NotLeader, ProposalDropped, UsageError
from raftlog.core.log import RaftLog
from raftlog.core.messages import (
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
    TimeoutNow,
)
from raftlog.core.progress import Progress, ProgressState
from raftlog.core.quorum import VoteResult, committed_index, majority, vote_result
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
    decode_conf,
    encode_conf,
)


class Ready(msgspec.Struct, frozen=True):
    """What the node must do now; see the module docstring for the order."""

    hard_state: HardState | None
    """New hard state to persist with ``entries``; None if unchanged."""
    snapshot: SnapshotMeta | None
    """A snapshot from the leader that replaces the whole log (and the state machine's
    state), to persist before ``entries``; None if none."""
    entries: tuple[Entry, ...]
    """Entries to append to storage (replacing any stored entry at or after the first)."""
    must_sync: bool
    """The write must be durable (fsync) before ``persisted_messages`` go out."""
    messages: tuple[Message, ...]
    """Messages that may be sent at once."""
    persisted_messages: tuple[Message, ...]
    """Messages to send only after the write is durable."""
    committed_entries: tuple[Entry, ...]
    """Entries to apply, in index order."""
    read_states: tuple[ReadState, ...]
    dropped_reads: tuple[bytes, ...]
    """Contexts of read_index requests that will never be confirmed (leadership lost)."""
    soft_state: SoftState | None
    """New leader/role, if changed."""
    events: tuple[ev.Event, ...]


class PeerStatus(msgspec.Struct, frozen=True):
    id: NodeId
    match: int
    next: int
    state: str
    recent_active: bool
    """Heard from in this CheckQuorum round or the previous one."""
    inflight: int
    learner: bool = False


class Status(msgspec.Struct, frozen=True):
    id: NodeId
    role: Role
    term: int
    vote: NodeId
    leader: NodeId
    commit: int
    applied: int
    last_index: int
    last_term: int
    first_index: int
    """The first entry still in the log (earlier ones are compacted into a snapshot)."""
    snapshot_index: int
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...]
    conf_index: int
    """Where the configuration in force was appended (0: the initial one; after a
    snapshot, the snapshot's index when the log holds no later one); it is pending while
    above ``commit``."""
    transferee: NodeId
    peers: tuple[PeerStatus, ...]
    """Per-follower replication state; empty unless leader."""
    election_elapsed: int = 0
    """Ticks since the election clock was last reset (0 on a leader)."""
    election_timeout: int = 0
    """The tick count at which the election clock fires (this term's randomized timeout;
    0 on a leader, which has none)."""


_CLIENT_KINDS = (EntryKind.NORMAL,)
SNAPSHOT_ROUNDS = 2
"""A snapshot unanswered for this many CheckQuorum rounds (of a minimum election timeout
each) is given up, and sent again if the follower still needs it. The embedder normally
reports the outcome sooner (``report_snapshot``); this is the net under a lost report."""
REMOVAL_ROUNDS = 10
"""CheckQuorum rounds a leader keeps telling a removed node that has not caught up with
its removal (see ``Raft._tell_removed``)."""

_PERSISTED_KINDS: tuple[type, ...] = (RequestVote, RequestVoteResponse, AppendEntriesResponse)
"""Messages that promise durable state (a vote, a term, appended entries): sent only after
the Ready that produced them is persisted."""


class _PendingRead:
    __slots__ = ("acks", "context", "index")

    def __init__(self, index: int, context: bytes, voter: NodeId) -> None:
        self.index = index
        self.context = context
        self.acks: set[NodeId] = {voter}


class Raft:
    """One node's Raft state machine. Not thread-safe: one owner drives it."""

    def __init__(
        self,
        config: Config,
        storage: LogReader,
        rng: random.Random,
        *,
        applied: int = 0,
    ) -> None:
        self._cfg = config.validate()
        self.id = config.id
        self._rng = rng
        self._bugs = config.bugs
        hard, conf = storage.initial_state()
        self.log = RaftLog(storage)
        base = conf if conf is not None else ConfState(config.voters, config.learners)
        self.conf: ConfState = base
        """The configuration in force: the latest one in the log, committed or not."""
        self._confs: list[tuple[int, ConfState]] = [
            (storage.snapshot().index if conf is not None else 0, base)
        ]
        """Configurations in force from each index on (the first is the base: initial or
        a snapshot's); the last is ``conf``."""
        self._scan_confs(self.log.first_index(), self.log.last_index())
        if hard.commit > self.log.last_index():
            raise UsageError(
                f"stored commit {hard.commit} is beyond the stored log ({self.log.last_index()})"
            )
        self.log.commit_to(hard.commit)
        if applied:
            self.log.applied_to(min(applied, self.log.committed))
        self.term = hard.term
        self.vote = hard.vote
        self.role = Role.FOLLOWER
        self.leader = NO_NODE

        # Timers, in ticks.
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0

        # Election and leadership bookkeeping.
        self._votes: dict[NodeId, bool] = {}
        self._progress: dict[NodeId, Progress] = {}
        self._transferee = NO_NODE
        self._pending_reads: dict[bytes, _PendingRead] = {}
        self._reads_awaiting_commit: list[bytes] = []
        self._broadcast_pending = False
        self._broadcast_empty = False

        # Output accumulated for the next Ready.
        self._msgs: list[Message] = []
        self._msgs_after_persist: list[Message] = []
        self._events: list[ev.Event] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[bytes] = []
        self._prev_hard = hard
        self._prev_soft = SoftState(NO_NODE, Role.FOLLOWER)
        self._commit_reported = hard.commit
        self._in_progress: Ready | None = None
        self.entry_events = True
        """Emit ProposalReceived and EntryCommitted for every client entry (the lab's
        "Leader committed ..." lines). A host that shows them to nobody turns them off:
        under load they are most of the core's events."""

        self._become_follower(self.term, NO_NODE)
        self._emit(ev.NodeStarted, last_index=self.log.last_index(), commit=self.log.committed)

    # == configuration ===============================================================

    @property
    def voters(self) -> frozenset[NodeId]:
        return self.conf.voters

    @property
    def learners(self) -> frozenset[NodeId]:
        return self.conf.learners

    @property
    def conf_index(self) -> int:
        return self._confs[-1][0]

    def peer_ids(self) -> frozenset[NodeId]:
        """The nodes this one must be able to talk to: the members of the committed
        configuration and of every newer one (until a change commits, the nodes it
        removes still take part), and on a leader the removed nodes it still tells."""
        committed = self.log.committed
        ids: set[NodeId] = set()
        for at, conf in self._confs:
            if at <= committed:
                ids = set(conf.ids())  # the latest committed one so far
            else:
                ids |= conf.ids()
        if self.role is Role.LEADER:
            ids |= set(self._progress)
        return frozenset(ids - {self.id})

    def pending_conf_changes(self) -> int:
        """Configuration entries in the log that are not committed yet."""
        return sum(1 for at, _conf in self._confs[1:] if at > self.log.committed)

    def conf_at(self, index: int) -> ConfState:
        """The configuration in force at ``index`` (for a snapshot taken there)."""
        found = self._confs[0][1]
        for at, conf in self._confs:
            if at <= index:
                found = conf
        return found

    def _scan_confs(self, lo: int, hi: int) -> None:
        """Pick up configuration entries already in the log (at start)."""
        if lo > hi:
            return
        for entry in self.log.entries(lo, hi - lo + 1, 1 << 62):
            if entry.kind is EntryKind.CONF_CHANGE:
                self._confs.append((entry.index, self._decode_conf(entry)))
        self.conf = self._confs[-1][1]

    @staticmethod
    def _decode_conf(entry: Entry) -> ConfState:
        try:
            return decode_conf(entry.data)
        except msgspec.DecodeError as exc:
            raise UsageError(f"entry {entry.index} is not a configuration: {exc}") from None

    def _appended(self, entries: Sequence[Entry], truncated_from: int = 0) -> None:
        """Entries went into the log (replacing any from ``truncated_from``): a
        configuration takes effect as soon as it is appended, and one truncated away goes
        with it (§4.1)."""
        old = self.conf
        if truncated_from:
            while len(self._confs) > 1 and self._confs[-1][0] >= truncated_from:
                self._confs.pop()
        for entry in entries:
            if entry.kind is EntryKind.CONF_CHANGE:
                while len(self._confs) > 1 and self._confs[-1][0] >= entry.index:
                    self._confs.pop()
                self._confs.append((entry.index, self._decode_conf(entry)))
        self.conf = self._confs[-1][1]
        if self.conf != old:
            self._conf_changed(old)

    def _conf_changed(self, old: ConfState) -> None:
        self._emit(
            ev.ConfChanged,
            voters=tuple(sorted(self.voters)),
            learners=tuple(sorted(self.learners)),
            index=self.conf_index,
        )
        if self.role is Role.LEADER:
            last = self.log.last_index()
            # New members get a fresh progress; so does a node added back while its old
            # progress (kept to tell it of its removal) is still here, or its stale match
            # would pass for its state.
            for node in self.conf.ids():
                if node not in self._progress or (node != self.id and node not in old.ids()):
                    self._progress[node] = Progress(last + 1, self._cfg.max_inflight_msgs)
            # A removed node is still sent the log until the change has committed (and
            # until a round told it, see _tell_removed), so that it learns it was
            # removed; its answers count for nothing meanwhile (only voters make
            # quorums).
            if self._transferee != NO_NODE and self._transferee not in self.voters:
                self._abort_transfer("no longer a voter")
        if self.id not in self.conf.ids() and self.id in old.ids():
            self._emit(ev.NodeRemoved, index=self.conf_index)

    def _trim_confs(self) -> None:
        """Forget configurations older than the one in force at the snapshot (they can no
        longer be truncated back to)."""
        keep_from = self.log.first_index() - 1
        while len(self._confs) > 2 and self._confs[1][0] <= keep_from:
            self._confs.pop(0)

    def propose_conf_change(self, conf: ConfState) -> tuple[int, int]:
        """Append a new configuration (the leader only). Single-server changes (§4.1):
        at most one voter added or removed, learners as they please; refused (with the
        reason) while another change is uncommitted, before this leader has committed an
        entry of its own term, for a voter that is not a caught-up learner, or for a
        change that would leave too few live voters to commit. Returns (index, term)."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self._transferee != NO_NODE:
            raise ProposalDropped(f"leadership transfer to {self._transferee} in progress")
        old = self.conf
        if conf.voters & conf.learners:
            raise ConfChangeRefused(
                f"nodes {sorted(conf.voters & conf.learners)} cannot be voters and learners"
            )
        if not conf.voters:
            raise ConfChangeRefused("a configuration needs at least one voter")
        if any(n <= 0 for n in conf.ids()):
            raise ConfChangeRefused("node ids are positive integers")
        if conf == old:
            raise ConfChangeRefused("nothing to change")
        if (
            "config-before-noop" not in self._bugs
            and self.log.term(self.log.committed) != self.term
        ):
            raise ConfChangeRefused(
                "the leader has not committed an entry of its term yet; try again",
                transient=True,
            )
        if "two-changes-in-flight" not in self._bugs and self.conf_index > self.log.committed:
            raise ConfChangeRefused(
                f"a configuration change is in progress (entry {self.conf_index} is not "
                "committed yet)",
                transient=True,
            )
        added, removed = conf.voters - old.voters, old.voters - conf.voters
        if len(added) + len(removed) > 1:
            raise ConfChangeRefused("change one voter at a time (add, promote or remove one)")
        for node in added:
            pr = self._progress.get(node)
            if node not in old.learners or pr is None:
                raise ConfChangeRefused(
                    f"node {node} must join as a learner and catch up before it votes"
                )
            lag = self.log.committed - pr.match
            if lag > self._cfg.promote_max_lag or not pr.responsive or pr.match == 0:
                raise ConfChangeRefused(
                    f"node {node} has not caught up (it holds up to {pr.match}, the commit "
                    f"index is {self.log.committed})"
                )
        # Live: answered lately, and (a new leader assumes every follower active for its
        # first round) holds an entry of this term. Once the no-op has committed, a
        # majority does. The injected bug models a leader without that rule: its change
        # in the first round is the race, so only the first condition applies there.
        assumed_ok = "config-before-noop" in self._bugs
        live = sum(
            1
            for node in conf.voters
            if node == self.id
            or (
                node in self._progress
                and self._progress[node].responsive
                and (self._progress[node].match > 0 or assumed_ok)
            )
        )
        if live < majority(len(conf.voters)):
            raise ConfChangeRefused(
                f"it would lose quorum: {live} of the {len(conf.voters)} voters answer, "
                f"{majority(len(conf.voters))} are needed",
                transient=True,
            )
        entry = Entry(
            self.log.last_index() + 1, self.term, EntryKind.CONF_CHANGE, encode_conf(conf)
        )
        self._append([entry])
        self._emit(
            ev.ConfChangeProposed,
            voters=tuple(sorted(conf.voters)),
            learners=tuple(sorted(conf.learners)),
            index=entry.index,
        )
        return entry.index, entry.term

    # == inputs ======================================================================

    def tick(self) -> None:
        """Advance the node's clock by one tick."""
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now, as if the election timer had fired (PreVote first if
        enabled). Does nothing on a leader."""
        self._hup(transfer=False)

    def propose(self, data: bytes, kind: EntryKind = EntryKind.NORMAL) -> tuple[int, int]:
        """Append client data to the leader's log. Returns the entry's (index, term): it
        is committed if and when an entry with this index *and term* is committed."""
        return self.propose_many([data], kind)[0]

    def propose_many(
        self, items: Sequence[bytes], kind: EntryKind = EntryKind.NORMAL
    ) -> list[tuple[int, int]]:
        """Append several client entries at once (one broadcast for all). The data is
        opaque to the core."""
        if kind not in _CLIENT_KINDS:
            raise UsageError(f"clients propose NORMAL entries, not {kind.name}")
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self._transferee != NO_NODE:
            raise ProposalDropped(f"leadership transfer to {self._transferee} in progress")
        first = self.log.last_index() + 1
        entries = [Entry(first + i, self.term, kind, bytes(data)) for i, data in enumerate(items)]
        self._append(entries)
        if self.entry_events:
            for entry in entries:
                self._emit(ev.ProposalReceived, index=entry.index, data=entry.data)
        return [(e.index, e.term) for e in entries]

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point (§6.4). A ReadState with this ``context``
        comes out in a later Ready once leadership is confirmed, or the context comes out
        in ``dropped_reads`` if leadership is lost first. ``context`` must be unique among
        pending reads."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if not context:
            raise UsageError("a read_index context must not be empty")
        if context in self._pending_reads or context in self._reads_awaiting_commit:
            raise UsageError(f"read context {context!r} is already pending")
        if self.log.term(self.log.committed) != self.term:
            # A new leader does not know the commit index until it commits an entry of
            # its own term (§6.4 step 1); wait for its no-op to commit.
            self._reads_awaiting_commit.append(context)
            return
        self._start_reads([context])

    def transfer_leader(self, to: NodeId) -> None:
        """Hand leadership to ``to`` (thesis §3.10): bring its log up to date, then tell it
        to campaign at once. Proposals are refused until the transfer ends; it is aborted
        after an election timeout."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if to not in self.voters:
            raise UsageError(f"cannot transfer leadership to {to}: not a voter")
        if to in (self.id, self._transferee):
            return
        if self._transferee != NO_NODE:
            self._abort_transfer("superseded")
        self._transferee = to
        self._election_elapsed = 0
        self._emit(ev.TransferStarted, to=to)
        if self._progress[to].match == self.log.last_index():
            self._send(TimeoutNow(self.id, to, self.term))
        else:
            self._send_append(to)

    def report_snapshot(self, to: NodeId, *, ok: bool) -> None:
        """The embedder reports how sending a snapshot to ``to`` ended. On success the
        follower is probed right after the snapshot; on failure, from what it is known
        to hold (and sent a snapshot again if it still needs one, after a heartbeat)."""
        pr = self._progress.get(to) if self.role is Role.LEADER else None
        if pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        pending = pr.pending_snapshot
        pr.become_probe()
        if ok:
            pr.next = max(pr.next, pending + 1)
        else:
            self._emit(ev.SnapshotFailed, to=to, index=pending)
            pr.probe_sent = True  # wait for a heartbeat's answer before trying again

    def step(self, msg: Message) -> None:
        """Handle a message from a peer."""
        if msg.dst != self.id:
            raise UsageError(f"message for node {msg.dst} stepped into node {self.id}")
        if msg.src == self.id:
            return
        # Requests from nodes outside our configuration are served (a new leader's, a
        # candidate added by an entry we do not have yet, §4.1); answers from them count
        # for nothing (votes and progress are kept for members only).
        if msg.term > self.term:
            if not self._step_higher_term(msg):
                return
        elif msg.term < self.term:
            self._step_lower_term(msg)
            return

        match msg:
            case RequestVote() | PreVote():
                self._handle_vote_request(msg)
            case AppendEntries():
                if self.role is Role.LEADER:
                    return  # another leader in our term: impossible unless votes were lost
                self._follow(msg.src)
                self._handle_append(msg)
            case Heartbeat():
                if self.role is Role.LEADER:
                    return
                self._follow(msg.src)
                self._handle_heartbeat(msg)
            case InstallSnapshot():
                if self.role is Role.LEADER:
                    return
                self._follow(msg.src)
                self._handle_snapshot(msg)
            case TimeoutNow():
                if self.role is Role.FOLLOWER and self.id in self.voters:
                    self._campaign(transfer=True)
            case RequestVoteResponse():
                if self.role is Role.CANDIDATE:
                    self._handle_vote_response(msg.src, msg.granted, pre_vote=False)
            case PreVoteResponse():
                if self.role is Role.PRE_CANDIDATE:
                    self._handle_vote_response(msg.src, msg.granted, pre_vote=True)
            case AppendEntriesResponse():
                if self.role is Role.LEADER:
                    self._handle_append_response(msg)
            case HeartbeatResponse():
                if self.role is Role.LEADER:
                    self._handle_heartbeat_response(msg)

    # == the Ready cycle =============================================================

    def has_ready(self) -> bool:
        if self._in_progress is not None:
            return False
        return bool(
            self._msgs
            or self._msgs_after_persist
            or self._events
            or self._read_states
            or self._dropped_reads
            or self._broadcast_pending
            or self.log.pending_snapshot is not None
            or self.log.has_unstable()
            or self.log.has_next_committed()
            or self.term != self._prev_hard.term
            or self.vote != self._prev_hard.vote
            or self.log.committed != self._prev_hard.commit
            or self.leader != self._prev_soft.leader
            or self.role is not self._prev_soft.role
        )

    def ready(self) -> Ready:
        """Everything the caller must do now. Call ``advance()`` with it when done."""
        if self._in_progress is not None:
            raise UsageError("ready() called again before advance()")
        self._flush_broadcast()
        committed = tuple(self.log.next_committed(self._cfg.max_committed_bytes_per_ready))
        self._report_commits(committed)
        hard = self._hard_state()
        soft = self._soft_state()
        entries = self.log.unstable_entries()
        snapshot = self.log.pending_snapshot
        vote_changed = hard.vote != self._prev_hard.vote and "forget-vote" not in self._bugs
        rd = Ready(
            hard_state=hard if hard != self._prev_hard else None,
            snapshot=snapshot,
            entries=entries,
            must_sync=bool(entries)
            or snapshot is not None
            or hard.term != self._prev_hard.term
            or vote_changed,
            messages=tuple(self._msgs),
            persisted_messages=tuple(self._msgs_after_persist),
            committed_entries=committed,
            read_states=tuple(self._read_states),
            dropped_reads=tuple(self._dropped_reads),
            soft_state=soft if soft != self._prev_soft else None,
            events=tuple(self._events),
        )
        self._msgs = []
        self._msgs_after_persist = []
        self._read_states = []
        self._dropped_reads = []
        self._events = []
        self._prev_soft = soft
        self._in_progress = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller has handled ``rd`` completely (persisted, sent, applied)."""
        if rd is not self._in_progress:
            raise UsageError("advance() must be given the Ready last returned by ready()")
        self._in_progress = None
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            self.log.stable_snapshot_to(rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role is Role.LEADER:
                # The leader counts its own copy only once it is durable.
                self._progress[self.id].maybe_update(self.log.persisted_index())
                self._maybe_commit()
        if rd.committed_entries and rd.committed_entries[-1].index > self.log.applied:
            # (A snapshot stepped in meanwhile may have moved applied past them.)
            self.log.applied_to(rd.committed_entries[-1].index)
        if len(self._confs) > 2:
            self._trim_confs()

    # == observation =================================================================

    def status(self) -> Status:
        peers: tuple[PeerStatus, ...] = ()
        if self.role is Role.LEADER:
            peers = tuple(
                PeerStatus(
                    id=node,
                    match=pr.match,
                    next=pr.next,
                    state=pr.state.value,
                    recent_active=pr.responsive,
                    inflight=len(pr.inflights),
                    learner=node in self.learners,
                )
                for node, pr in sorted(self._progress.items())
            )
        return Status(
            id=self.id,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader=self.leader,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            last_term=self.log.last_term(),
            first_index=self.log.first_index(),
            snapshot_index=self.log.snapshot_index(),
            voters=tuple(sorted(self.voters)),
            learners=tuple(sorted(self.learners)),
            conf_index=self.conf_index,
            transferee=self._transferee,
            peers=peers,
            election_elapsed=0 if self.role is Role.LEADER else self._election_elapsed,
            election_timeout=0 if self.role is Role.LEADER else self._randomized_timeout,
        )

    def hard_state(self) -> HardState:
        return self._hard_state()

    # == role changes ================================================================

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
        self.leader = NO_NODE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self._rng.randint(
            self._cfg.election_timeout_min_ticks, self._cfg.election_timeout_max_ticks
        )
        self._transferee = NO_NODE
        self._votes = {}
        self._drop_reads()
        self._broadcast_pending = self._broadcast_empty = False
        last = self.log.last_index()
        self._progress = {
            node: Progress(last + 1, self._cfg.max_inflight_msgs)
            for node in self.conf.ids() | {self.id}
        }
        self._progress[self.id].match = self.log.persisted_index()

    def _become_follower(self, term: int, leader: NodeId) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def _become_leader(self, votes: int) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        for pr in self._progress.values():
            pr.recent_active = True
        self._emit(ev.BecameLeader, votes=votes)
        # Commit entries of earlier terms through an entry of our own (§5.4.2, §8).
        self._append([Entry(self.log.last_index() + 1, self.term, EntryKind.NOOP)])

    def _follow(self, leader: NodeId) -> None:
        """A message from the leader of our term: be its follower, restart our timer."""
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.term, leader)
            self._emit(ev.LeaderFound, leader=leader)
        elif self.leader != leader:
            self.leader = leader
            self._emit(ev.LeaderFound, leader=leader)
        self._election_elapsed = 0

    # == elections ===================================================================

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_timeout and self.id in self.voters:
            elapsed = self._election_elapsed
            self._election_elapsed = 0
            self._emit(ev.ElectionTimeout, elapsed_ticks=elapsed)
            self._hup(transfer=False)

    def _hup(self, *, transfer: bool) -> None:
        if self.role is Role.LEADER or self.id not in self.voters:
            return
        if self._cfg.pre_vote and not transfer:
            self._campaign_pre_vote()
        else:
            self._campaign(transfer=transfer)

    def _campaign_pre_vote(self) -> None:
        # Term and vote stay as they are: a PreVote round changes nothing durable.
        self._reset(self.term)
        self.role = Role.PRE_CANDIDATE
        self._votes = {self.id: True}
        self._emit(ev.PreVoteStarted, next_term=self.term + 1)
        if vote_result(self.voters, self._votes) is VoteResult.WON:
            self._campaign(transfer=False)
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for node in sorted(self.voters - {self.id}):
            self._send(PreVote(self.id, node, self.term + 1, last_index, last_term))

    def _campaign(self, *, transfer: bool) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self._votes = {self.id: True}
        self._emit(ev.ElectionStarted, transfer=transfer)
        if vote_result(self.voters, self._votes) is VoteResult.WON:
            self._become_leader(votes=1)
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for node in sorted(self.voters - {self.id}):
            self._send(RequestVote(self.id, node, self.term, last_index, last_term, transfer))

    def _handle_vote_request(self, msg: RequestVote | PreVote) -> None:
        pre_vote = isinstance(msg, PreVote)
        self._emit(
            ev.VoteRequestReceived,
            candidate=msg.src,
            candidate_term=msg.term,
            pre_vote=pre_vote,
        )
        reason = self._vote_refusal(msg, pre_vote)
        if reason is None:
            self._emit(
                ev.VoteGranted, candidate=msg.src, candidate_term=msg.term, pre_vote=pre_vote
            )
            if pre_vote:
                self._send(PreVoteResponse(self.id, msg.src, msg.term, granted=True))
            else:
                self._election_elapsed = 0
                self.vote = msg.src
                self._send(RequestVoteResponse(self.id, msg.src, self.term, granted=True))
            return
        self._emit(
            ev.VoteRefused,
            candidate=msg.src,
            candidate_term=msg.term,
            pre_vote=pre_vote,
            reason=reason,
        )
        if pre_vote:
            self._send(PreVoteResponse(self.id, msg.src, self.term, granted=False))
        else:
            self._send(RequestVoteResponse(self.id, msg.src, self.term, granted=False))

    def _vote_refusal(self, msg: RequestVote | PreVote, pre_vote: bool) -> str | None:
        """Why this node will not vote for ``msg.src``, or None if it will (§5.2, §5.4.1)."""
        if pre_vote and "no-prevote-check" in self._bugs:
            return None
        if self.vote == msg.src:
            pass  # a repeated request: the same answer
        elif pre_vote and msg.term > self.term:
            pass  # a PreVote for a future term does not need our vote to be free
        elif self.vote != NO_NODE:
            return f"already voted for {self.vote}"
        elif self.leader != NO_NODE:
            return f"already following leader {self.leader} in term {self.term}"
        if not self.log.is_up_to_date(msg.last_log_index, msg.last_log_term):
            return (
                f"its log is behind: last entry {msg.last_log_index}@{msg.last_log_term}, "
                f"ours {self.log.last_index()}@{self.log.last_term()}"
            )
        return None

    def _handle_vote_response(self, voter: NodeId, granted: bool, *, pre_vote: bool) -> None:
        self._votes.setdefault(voter, granted)
        granted_count = sum(1 for v in self._votes.values() if v)
        refused_count = len(self._votes) - granted_count
        self._emit(
            ev.VoteReceived,
            voter=voter,
            granted=granted,
            pre_vote=pre_vote,
            votes=granted_count,
            refusals=refused_count,
        )
        result = vote_result(self.voters, self._votes)
        if result is VoteResult.WON:
            if pre_vote:
                self._campaign(transfer=False)
            else:
                self._become_leader(votes=granted_count)
        elif result is VoteResult.LOST:
            self._emit(
                ev.ElectionLost, pre_vote=pre_vote, votes=granted_count, refusals=refused_count
            )
            self._become_follower(self.term, NO_NODE)

    # == terms =======================================================================

    def _in_lease(self) -> bool:
        """Has this node heard from a live leader within the minimum election timeout?
        (For a leader: always, while CheckQuorum keeps it leader.)"""
        return (
            self._cfg.check_quorum
            and self.leader != NO_NODE
            and self._election_elapsed < self._cfg.election_timeout_min_ticks
        )

    def _step_higher_term(self, msg: Message) -> bool:
        """A message from a later term. Returns False if it must be ignored."""
        if isinstance(msg, (RequestVote, PreVote)):
            forced = isinstance(msg, RequestVote) and msg.transfer
            skip_check = isinstance(msg, PreVote) and "no-prevote-check" in self._bugs
            if self._in_lease() and not forced and not skip_check:
                # CheckQuorum's other half: while we hear from a leader, a candidate that
                # cannot (a rejoining or partly cut-off node) must not disrupt it (§9.6).
                self._emit(
                    ev.VoteRefused,
                    candidate=msg.src,
                    candidate_term=msg.term,
                    pre_vote=isinstance(msg, PreVote),
                    reason=f"heard from leader {self.leader} recently",
                )
                return False
            if isinstance(msg, PreVote):
                return True  # a PreVote changes nothing, not even our term
        if isinstance(msg, PreVoteResponse) and msg.granted:
            return True  # granted for the term we would campaign in
        leader = msg.src if isinstance(msg, (AppendEntries, Heartbeat)) else NO_NODE
        from_role = self.role
        self._become_follower(msg.term, leader)
        self._emit(ev.SteppedDown, from_role=from_role, seen_from=msg.src, new_leader=leader)
        return True

    def _step_lower_term(self, msg: Message) -> None:
        if isinstance(msg, (AppendEntries, Heartbeat)):
            # A leader of an old term that cut off (or a node whose term rose without
            # PreVote) would never learn the new term otherwise: tell it.
            self._send(AppendEntriesResponse(self.id, msg.src, self.term, success=False))
        elif isinstance(msg, PreVote):
            self._send(PreVoteResponse(self.id, msg.src, self.term, granted=False))

    # == replication: follower side ==================================================

    def _handle_append(self, msg: AppendEntries) -> None:
        log = self.log
        if msg.prev_log_index < log.committed:
            # Everything up to our commit index matches the leader's log already.
            self._send(
                AppendEntriesResponse(
                    self.id, msg.src, self.term, success=True, match_index=log.committed
                )
            )
            return
        old_last = log.last_index()
        outcome = log.maybe_append(
            msg.prev_log_index,
            msg.prev_log_term,
            msg.commit,
            msg.entries,
            truncate_always="truncate-on-stale" in self._bugs,
        )
        if outcome is None:
            hint_index, hint_term = log.find_conflict_by_term(
                min(msg.prev_log_index, log.last_index()), msg.prev_log_term
            )
            self._send(
                AppendEntriesResponse(
                    self.id,
                    msg.src,
                    self.term,
                    success=False,
                    reject_index=msg.prev_log_index,
                    hint_index=hint_index,
                    hint_term=hint_term,
                )
            )
            return
        if outcome.truncated_from:
            self._emit(ev.LogTruncated, from_index=outcome.truncated_from, old_last=old_last)
        if msg.entries or outcome.truncated_from:
            self._appended(msg.entries, outcome.truncated_from)
        if msg.entries:
            self._emit(
                ev.EntriesAppended,
                leader=msg.src,
                first=msg.entries[0].index,
                last=outcome.last_new,
            )
        self._send(
            AppendEntriesResponse(
                self.id, msg.src, self.term, success=True, match_index=outcome.last_new
            )
        )

    def _handle_heartbeat(self, msg: Heartbeat) -> None:
        self._emit(ev.HeartbeatReceived, leader=msg.src)
        self.log.commit_to(min(msg.commit, self.log.last_index()))
        self._send(HeartbeatResponse(self.id, msg.src, self.term, msg.context))

    def _handle_snapshot(self, msg: InstallSnapshot) -> None:
        log = self.log
        meta = msg.snapshot
        rollback = "snapshot-rollback" in self._bugs
        if meta.index <= log.committed and not rollback:
            # Old news (a duplicate, or overtaken by appends): we hold all of it already.
            self._emit(ev.SnapshotIgnored, index=meta.index, commit=log.committed)
            self._send(
                AppendEntriesResponse(
                    self.id, msg.src, self.term, success=True, match_index=log.committed
                )
            )
            return
        if log.match_term(meta.index, meta.term) and not rollback:
            # Our log already agrees with the leader's up to the snapshot: keep it.
            log.commit_to(meta.index)
            self._send(
                AppendEntriesResponse(
                    self.id, msg.src, self.term, success=True, match_index=meta.index
                )
            )
            return
        old_last = log.last_index()
        log.restore(meta)
        if meta.conf.voters:
            old = self.conf
            self._confs = [(meta.index, meta.conf)]
            self.conf = meta.conf
            if self.conf != old:
                self._conf_changed(old)
        self._commit_reported = max(self._commit_reported, meta.index)
        self._emit(
            ev.SnapshotInstalled,
            leader=msg.src,
            index=meta.index,
            snap_term=meta.term,
            old_last=old_last,
        )
        # A persisted kind: it goes out once the snapshot is durable.
        self._send(
            AppendEntriesResponse(self.id, msg.src, self.term, success=True, match_index=meta.index)
        )

    # == replication: leader side ====================================================

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self._cfg.election_timeout_min_ticks:
            self._election_elapsed = 0
            active = self._check_activity()
            if self._cfg.check_quorum and active < majority(len(self.voters)):
                self._emit(ev.QuorumLost, active=active, needed=majority(len(self.voters)))
                self._become_follower(self.term, NO_NODE)
                return
            if self._transferee != NO_NODE:
                self._abort_transfer("timed out")
        if self._heartbeat_elapsed >= self._cfg.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(b"")

    def _check_activity(self) -> int:
        """Count the voters heard from in the last round (self included), note who went
        offline, and start a new round. Nodes a committed configuration removed are
        forgotten here once a whole round told them (see ``_tell_removed``)."""
        if self.conf_index <= self.log.committed:
            self._tell_removed()
        active = 0
        for node, pr in self._progress.items():
            if node == self.id:
                active += node in self.voters
                continue
            if pr.recent_active:
                active += node in self.voters  # learners answer too, and count for nothing
            elif not pr.offline:
                pr.offline = True
                self._emit(ev.PeerOffline, peer=node)
            pr.active_last_round, pr.recent_active = pr.recent_active, False
            if pr.state is ProgressState.SNAPSHOT:
                pr.snapshot_rounds += 1
                if pr.snapshot_rounds >= SNAPSHOT_ROUNDS:
                    self._emit(ev.SnapshotFailed, to=node, index=pr.pending_snapshot)
                    pr.become_probe()
        return active

    def _tell_removed(self) -> None:
        """A node learns that it was removed when it learns that the configuration
        without it committed; it then stops. The leader keeps replicating to it until
        it held that configuration's entry at the end of a round: every heartbeat of the
        next round carries a commit index covering it (``min(match, committed)``), so one
        of them has to be lost for each of that round's heartbeats before it misses the
        news. Forgetting it at the first round's end after the commit, as before, could
        drop it before the message with the commit index had left (a node left running,
        unaware, for good). A node that never catches up (down, cut off) is forgotten
        after ``REMOVAL_ROUNDS``."""
        for node in set(self._progress) - self.conf.ids() - {self.id}:
            pr = self._progress[node]
            if pr.removal_told or pr.removal_rounds >= REMOVAL_ROUNDS:
                del self._progress[node]
                continue
            pr.removal_rounds += 1
            pr.removal_told = pr.match >= self.conf_index

    def _heard_from(self, node: NodeId) -> Progress | None:
        pr = self._progress.get(node)
        if pr is None:
            return None
        pr.recent_active = True
        if pr.offline:
            pr.offline = False
            self._emit(ev.PeerOnline, peer=node)
        return pr

    def _append(self, entries: Sequence[Entry]) -> None:
        self.log.append(entries)
        self._appended(entries)
        self._broadcast_pending = True

    def _flush_broadcast(self) -> None:
        if not self._broadcast_pending:
            return
        send_empty = self._broadcast_empty
        self._broadcast_pending = self._broadcast_empty = False
        if self.role is not Role.LEADER:
            return
        for node in sorted(self._progress):  # voters and learners
            if node != self.id:
                self._send_append(node, send_empty=send_empty)

    def _send_append(self, to: NodeId, *, send_empty: bool = True) -> bool:
        """Send ``to`` the entries it lacks (or, if ``send_empty``, an empty
        AppendEntries). False if nothing was sent."""
        pr = self._progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None or pr.next < self.log.first_index():
            return self._send_snapshot(to)  # compacted: only a snapshot can catch it up
        entries = self.log.entries(
            pr.next, self._cfg.max_entries_per_msg, self._cfg.max_bytes_per_msg
        )
        if not entries and not send_empty:
            return False
        self._send(
            AppendEntries(
                self.id, to, self.term, prev_index, prev_term, tuple(entries), self.log.committed
            )
        )
        pr.sent(entries[-1].index if entries else None)
        return True

    def _send_snapshot(self, to: NodeId) -> bool:
        """The follower needs entries compacted away: send it the latest snapshot (§7).
        Not to a follower that has not been answering: a snapshot is large."""
        pr = self._progress[to]
        meta = self.log.stored_snapshot()
        if not pr.responsive or meta.index == 0:
            return False
        self._send(InstallSnapshot(self.id, to, self.term, meta))
        pr.become_snapshot(meta.index)
        self._emit(ev.SnapshotSent, to=to, index=meta.index, snap_term=meta.term)
        return True

    def _broadcast_heartbeat(self, context: bytes) -> None:
        if not context:
            self._emit(ev.HeartbeatSent)
        for node in sorted(self._progress):  # voters and learners
            if node == self.id:
                continue
            commit = min(self._progress[node].match, self.log.committed)
            self._send(Heartbeat(self.id, node, self.term, commit, context))

    def _handle_append_response(self, msg: AppendEntriesResponse) -> None:
        pr = self._heard_from(msg.src)
        if pr is None:
            return
        if not msg.success:
            probe_from = msg.hint_index
            if msg.hint_term > 0:
                probe_from, _ = self.log.find_conflict_by_term(msg.hint_index, msg.hint_term)
            if pr.maybe_decrease_to(msg.reject_index, probe_from):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(msg.src)
            return
        updated = pr.maybe_update(msg.match_index)
        probe_answered = pr.state is ProgressState.PROBE and msg.match_index == pr.match
        if not (updated or probe_answered):
            return  # an old acknowledgement
        if pr.state is ProgressState.SNAPSHOT:
            if pr.match < pr.pending_snapshot:
                return  # answers something sent before the snapshot
            pr.become_replicate()
        elif pr.state is ProgressState.PROBE:
            pr.become_replicate()
        else:
            pr.inflights.free_le(msg.match_index)
        self._maybe_commit()
        while self._send_append(msg.src, send_empty=False):
            pass  # fill the window
        if msg.src == self._transferee and pr.match == self.log.last_index():
            self._send(TimeoutNow(self.id, msg.src, self.term))

    def _handle_heartbeat_response(self, msg: HeartbeatResponse) -> None:
        pr = self._heard_from(msg.src)
        if pr is None:
            return
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            # The follower is alive but has answered none of a full window: some of it was
            # probably lost. Let one more message through; if there is a gap, the
            # follower's rejection puts it back into probing.
            pr.inflights.free_first()
        if pr.match < self.log.last_index():
            self._send_append(msg.src)
        if msg.context:
            self._ack_read(msg.src, msg.context)

    def _maybe_commit(self) -> bool:
        """Commit what a majority holds, if it is of the current term (§5.4.2)."""
        candidate = committed_index(
            self.voters, {node: pr.match for node, pr in self._progress.items()}
        )
        if candidate <= self.log.committed:
            return False
        if self.log.term(candidate) != self.term and "commit-old-term" not in self._bugs:
            return False
        self.log.commit_to(candidate)
        self._broadcast_pending = self._broadcast_empty = True
        if self._reads_awaiting_commit and self.log.term(self.log.committed) == self.term:
            waiting, self._reads_awaiting_commit = self._reads_awaiting_commit, []
            self._start_reads(waiting)
        if self.id not in self.voters and self.conf_index <= self.log.committed:
            self._step_down_removed()
        return True

    def _step_down_removed(self) -> None:
        """The configuration without this leader has committed: it steps down (§4.2.2),
        first telling the most up-to-date voter to campaign at once, and never campaigns
        again (it is no longer a voter)."""
        self._flush_broadcast()  # the followers learn the commit index first
        best = max(
            (n for n in self.voters if n in self._progress),
            key=lambda n: self._progress[n].match,
            default=NO_NODE,
        )
        if best != NO_NODE and self._progress[best].match == self.log.last_index():
            self._send(TimeoutNow(self.id, best, self.term))
        else:
            best = NO_NODE  # nobody holds the whole log: the next election decides
        self._emit(ev.LeaderRemoved, index=self.conf_index, successor=best)
        self._become_follower(self.term, NO_NODE)

    def _abort_transfer(self, reason: str) -> None:
        if self._transferee != NO_NODE:
            self._emit(ev.TransferAborted, to=self._transferee, reason=reason)
            self._transferee = NO_NODE

    # == ReadIndex ===================================================================

    def _start_reads(self, contexts: Iterable[bytes]) -> None:
        contexts = list(contexts)
        index = self.log.committed
        if self.voters == {self.id}:  # not merely one voter: a leader removing itself
            self._read_states.extend(ReadState(index, ctx) for ctx in contexts)
            return
        for ctx in contexts:
            self._pending_reads[ctx] = _PendingRead(index, ctx, self.id)
        # One heartbeat round confirms every read queued before it.
        self._broadcast_heartbeat(contexts[-1])

    def _ack_read(self, voter: NodeId, context: bytes) -> None:
        read = self._pending_reads.get(context)
        if read is None:
            return
        read.acks.add(voter)
        if len(read.acks & self.voters) < majority(len(self.voters)):
            return
        confirmed = 0
        while self._pending_reads:
            ctx, pending = next(iter(self._pending_reads.items()))
            del self._pending_reads[ctx]
            self._read_states.append(ReadState(pending.index, ctx))
            confirmed += 1
            if ctx == context:
                break
        self._emit(ev.ReadIndexConfirmed, index=read.index, count=confirmed)

    def _drop_reads(self) -> None:
        self._dropped_reads.extend(self._pending_reads)
        self._dropped_reads.extend(self._reads_awaiting_commit)
        self._pending_reads = {}
        self._reads_awaiting_commit = []

    # == output ======================================================================

    def _send(self, msg: Message) -> None:
        if isinstance(msg, _PERSISTED_KINDS) and not (
            isinstance(msg, RequestVoteResponse) and "forget-vote" in self._bugs
        ):
            self._msgs_after_persist.append(msg)
        else:
            self._msgs.append(msg)

    def _emit(self, kind: type[ev.Event], **fields: object) -> None:
        self._events.append(kind(node=self.id, role=self.role, term=self.term, **fields))

    def _report_commits(self, committed: Sequence[Entry]) -> None:
        by_leader = self.role is Role.LEADER
        for entry in committed if self.entry_events else ():
            if entry.index > self._commit_reported and entry.kind in _CLIENT_KINDS:
                self._emit(
                    ev.EntryCommitted,
                    index=entry.index,
                    entry_term=entry.term,
                    data=entry.data,
                    by_leader=by_leader,
                )
        if committed:
            self._commit_reported = max(self._commit_reported, committed[-1].index)

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role)
