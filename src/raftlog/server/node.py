"""The asyncio node: one task owns one Raft core and drives it.

The core task is the only code that touches the core. It waits for the next tick or the
next request in its bounded inbox (peer messages, proposals, reads, transfers, status
questions), feeds them to the core, and then handles every Ready in the contract's order
(:mod:`raftlog.core.raft`): send what needs no durability, write the installed snapshot,
entries and hard state (one transaction, in the storage's writer thread), restore the
state machine from an installed snapshot, send the acknowledgements, apply committed
entries and answer their proposers, serve confirmed reads, advance. Between Readies it
also compacts the log once a snapshot is durable.

Applying an entry: the node decodes its framing (:mod:`raftlog.server.sessions`), lets a
retried session request through once (the session table is the node's, not the core's,
and travels in snapshots), and calls the state machine.

Snapshots: when the log has grown by ``snapshot_entries`` entries (or ``snapshot_bytes``
bytes) since the last snapshot, the node captures the state machine (on the loop), writes
the file in a worker thread while it goes on, records the snapshot and compacts the log
(keeping ``keep_entries`` for followers a little behind). A state machine that keeps its
own state on disk (:class:`~raftlog.statemachine.PersistentStateMachine`) needs no file
for that: the log is compacted up to what it has persisted, and a file is written only
when a follower needs one. Files travel to followers in chunks
(:mod:`raftlog.server.transfer`).

Other tasks (the HTTP API, the transport) talk to it only through the inbox and through
futures it resolves. A storage or state machine error stops the node: it never goes on
with state it cannot trust.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from raftlog.core import events as ev
from raftlog.core.compaction import plan_compaction
from raftlog.core.config import KNOWN_BUGS, Config
from raftlog.core.errors import (
    ConfChangeRefused,
    NotLeader,
    ProposalDropped,
    RaftError,
    StorageError,
    UsageError,
)
from raftlog.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    PreVote,
    RequestVote,
    SnapshotAck,
    SnapshotChunk,
    TimeoutNow,
    WireMessage,
    message_problem,
)
from raftlog.core.raft import Raft, Ready, Status
from raftlog.core.storage import LogReader
from raftlog.core.types import (
    NO_NODE,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Member,
    NodeId,
    Role,
    SnapshotMeta,
    split_address,
)
from raftlog.server import feed, snapfile
from raftlog.server.eventlog import EventLog
from raftlog.server.lease import (
    lease_clock_ns,
    lease_s,
    max_pending_ticks,
)
from raftlog.server.metrics import NodeMetrics, Replication
from raftlog.server.sessions import (
    Command,
    Duplicate,
    SessionTable,
    Stale,
    command_payload,
    decode_command,
    encode_command,
)
from raftlog.server.timing import TICK_SLACK_S, Timing
from raftlog.server.transfer import CHUNK_BYTES, Outgoing, SnapshotReceiver, SnapshotSender
from raftlog.statemachine import PersistentStateMachine, StateMachine
from raftlog.storage.base import Checkpoint
from raftlog.storage.errors import StorageFull

log = logging.getLogger("raftlog.server")


class NodeStorage(LogReader, Protocol):
    """What the node needs from its storage: the core's reads, the checkpoint, and async
    writes that are durable when they return."""

    def checkpoint(self) -> Checkpoint: ...

    async def save_async(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Checkpoint | None = None,
    ) -> None: ...

    async def compact_async(self, checkpoint: Checkpoint, upto: int) -> None: ...


class NodeTransport(Protocol):
    async def start(self) -> None: ...

    def send(self, msg: WireMessage) -> bool: ...

    async def close(self) -> None: ...


SERVER_BUGS: frozenset[str] = frozenset(
    {
        # Serve linearizable reads from the leader's state without confirming leadership:
        # no ReadIndex round, and no CheckQuorum either, so a leader cut off from its
        # followers goes on believing it leads (and answering reads) until it hears of a
        # newer term.
        "stale-read",
        # Send acknowledgements (votes, appended entries) first and write them down a
        # little later (as a node that batches its writes on a timer would): a crash in
        # between loses what it promised.
        "ack-before-fsync",
        # Serve lease reads whenever a quorum acknowledged this leader in its term, however
        # long ago: the lease never runs out (as for a leader whose clock stood still while
        # it was paused, and which then trusts promises that expired meanwhile).
        "endless-lease",
        # Count an acknowledgement for the lease from when the leader *handles* it, not
        # from when the message it answers was sent (the lease before issue 13's fix): one
        # that waited in a socket while the leader was stopped renews the lease on waking.
        "ack-at-handling",
    }
)
"""Known bugs of the node (test-only), on top of the core's KNOWN_BUGS."""

_BUGGY_WRITE_DELAY_S = 0.05

SNAPSHOT_ENTRIES = 10_000
SNAPSHOT_BYTES = 64 << 20
DISK_FULL_RETRY_S = (0.05, 1.0)
"""A write that found the disk full is tried again after the first delay, doubling up to
the second, until it succeeds (or the node is stopped)."""
KEEP_ENTRIES = 5_000
"""Entries kept after a snapshot, so that a follower a little behind catches up from the
log (etcd keeps 5,000 too)."""


class LeadershipLost(RaftError):
    """The entry was not committed: another entry took its index (leadership changed)."""


class NodeStopped(RaftError):
    """The node is stopping or stopped."""


class RequestTimeout(RaftError):
    """No outcome within the time limit: the request may or may not take effect."""


class OutcomeUnknown(RaftError):
    """The node stopped after accepting the proposal: it may or may not commit."""


class NodeStartError(RaftError):
    """The node could not start (e.g. its peer port is taken)."""


class StaleSession(RaftError):
    """A session request older than the client's latest: its answer is no longer known."""

    def __init__(self, stale: Stale) -> None:
        self.client, self.seq, self.latest = stale.client, stale.seq, stale.latest
        super().__init__(
            f"stale request: client {stale.client!r} is at seq {stale.latest}, not {stale.seq}"
        )


class StateMachineFailed(RaftError):
    """The state machine raised while applying or restoring: the node stops."""


class DiskFull(RaftError):
    """This node's disk is full: it cannot write its log, so it takes no proposal (and
    confirms no read) until a write succeeds again. Nothing was appended: sending the
    request again (here later, or to another node) is safe."""


class _StoppedWhileFull(Exception):
    """The node was stopped while it waited for space to write a Ready."""


class NodeRemoved(StorageError):
    """This node's data says a committed configuration removed it: it will not take part
    (it could only disturb the cluster). Start it again with a new data directory and
    ``--join`` to bring it back."""


class SnapshotFailed(StorageError):
    """A snapshot file the node needs is missing or corrupt (the message names it)."""


class EventStream:
    """An async iterator of a node's events (see :meth:`RaftNode.subscribe`)."""

    def __init__(self, node: RaftNode, maxsize: int) -> None:
        self._node = node
        self.queue: asyncio.Queue[ev.Event] = asyncio.Queue(maxsize)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ev.Event:
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self._node._stopped:
            self.close()
            raise StopAsyncIteration
        get = asyncio.ensure_future(self.queue.get())
        stop = asyncio.ensure_future(self._node._stopping.wait())
        try:
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        self.close()
        raise StopAsyncIteration

    def close(self) -> None:
        """Stop receiving events."""
        node = self._node
        node._subscribers.discard(self.queue)
        node._entry_subscribers.discard(self.queue)
        node._message_subscribers.discard(self.queue)
        node._want_entry_events()


@dataclass(frozen=True)
class LogView:
    """A stretch of a node's own log (see :meth:`RaftNode.log_view`)."""

    first_index: int
    last_index: int
    commit: int
    snapshot_index: int
    entries: list[Entry]


@dataclass(frozen=True)
class Committed:
    """A proposal's outcome: where it was committed and what the state machine returned.
    For a retried session request, ``duplicate`` is set and the rest are the first
    attempt's."""

    index: int
    term: int
    result: Any
    duplicate: bool = False


@dataclass
class ServerConfig:
    node_id: NodeId
    voters: frozenset[NodeId]
    timing: Timing
    cluster_id: str = "raftlog"
    pre_vote: bool = True
    check_quorum: bool = True
    inbox_size: int = 10_000
    max_batch: int = 1024
    """Inbox items handled before the core's Ready is processed (group commit)."""
    members: Mapping[NodeId, Member] = field(default_factory=dict)
    """Every member's addresses, as known at start (configurations carry them later)."""
    joining: bool = False
    """A new node joining a running cluster: it starts with no configuration (``voters``
    empty) and learns one from the leader that added it."""
    joined_at: int = 0
    """The index of the configuration that added this node (when it joined): an id can be
    removed and added back on a fresh disk, and the removal from its earlier life, which
    it replays, is not its own."""
    first_campaign_at: float | None = None
    """Campaign at this wall-clock time (``time.time()``) if no leader was heard by then:
    pins the first election timeout, for demos that need two nodes to time out together."""
    snapshot_entries: int = SNAPSHOT_ENTRIES
    """Take a snapshot once this many entries were applied since the last one."""
    snapshot_bytes: int = SNAPSHOT_BYTES
    """... or once this many bytes of entries were."""
    keep_entries: int = KEEP_ENTRIES
    snapshot_chunk_bytes: int = CHUNK_BYTES
    bugs: frozenset[str] = field(default_factory=frozenset)
    seed: int | None = None

    def core_config(self) -> Config:
        t = self.timing
        return Config(
            id=self.node_id,
            voters=frozenset() if self.joining else self.voters,
            election_timeout_min_ticks=t.election_min_ticks,
            election_timeout_max_ticks=t.election_max_ticks,
            heartbeat_ticks=t.heartbeat_ticks,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum and "stale-read" not in self.bugs,
            bugs=self.bugs & KNOWN_BUGS,
        ).validate()


# Inbox items: (kind, payload, future or None).
_MSG, _PROPOSE, _READ, _TRANSFER, _STATUS, _REPORT, _WAKE, _CONF, _TICKS, _LOG, _HELD = range(11)
"""``_HELD``: a message that waited in the held list (step mode, a held link): delivered
like ``_MSG``, but an acknowledgement in it is no fresh promise for the lease."""


JUMP_ROUNDS = 4
"""Rounds of the event loop a node lets go by, after a pause, before its burst of ticks.
Measured: when the core task is the first to run on waking, an HTTP read that waited in
an open connection reaches the inbox in the third round on asyncio's loop (the protocol
takes the bytes, the handler's task starts, our handler queues the read), sooner on
uvloop; one round is left to spare. No public signal says that every request that arrived
has reached the inbox, so it is a count, and a test pins it
(``test_a_read_that_waited_through_a_pause_is_handled_before_the_burst_of_ticks``)."""
_ENTRY_EVENTS = (ev.ProposalReceived, ev.EntryCommitted, ev.EntriesAppended)
"""The events of every client entry: only for subscribers that ask for them."""


def _expire(
    future: asyncio.Future[Any], timeout: float, lost: Callable[[int], None] | None
) -> None:
    if not future.done():
        future.set_exception(RequestTimeout(f"no outcome within {timeout} s"))
        if lost is not None:  # a proposal's: counted as failed
            lost(1)


class RaftNode:
    """A running Raft node. Create it, then ``await node.run()``; stop it with
    ``node.stop()`` or ``await node.shutdown()``."""

    def __init__(
        self,
        config: ServerConfig,
        storage: NodeStorage,
        transport_factory: Callable[[Callable[[WireMessage], None]], NodeTransport],
        state_machine: StateMachine,
        events: EventLog,
        *,
        snapshot_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.id = config.node_id
        self.storage = storage
        self.state_machine = state_machine
        self.events = events
        self.transport = transport_factory(self._on_message)
        rng = random.Random(config.seed)
        self._core = Raft(config.core_config(), storage, rng)
        self._inbox: asyncio.Queue[tuple[int, Any, asyncio.Future[Any] | None]] = asyncio.Queue(
            config.inbox_size
        )
        self._proposals: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._confirmed: list[tuple[int, asyncio.Future[int]]] = []
        self._read_ids = itertools.count(1)
        self._asks: set[asyncio.Future[Any]] = set()
        """Every future a caller is waiting on (failed if the node stops)."""
        self._deferred_hard_state: HardState | None = None
        self.disk_full: str | None = None
        """Why the last write failed for want of space while the node retries it; None
        when it is writing normally."""
        self._stopping = asyncio.Event()
        self._stopped = False
        self.fatal: BaseException | None = None
        # Published by the core task for readers on the same loop.
        self.role = Role.FOLLOWER
        self.leader = NO_NODE
        self.term = self._core.term
        self.commit = self._core.log.committed
        self.applied = self._core.log.applied
        self.dropped_messages = 0
        self._heard_leader = False
        self.members: dict[NodeId, Member] = dict(config.members)
        """Every member's addresses (from the configuration in force, or the start)."""
        self._conf_seen: ConfState | None = None
        self._peer_ids: frozenset[NodeId] | None = None
        self._was_member = self.id in self._core.conf.ids()
        self.removed = False
        """A committed configuration left this node out: it stops."""
        self.blocked: frozenset[NodeId] = frozenset()
        self.held: frozenset[NodeId] = frozenset()
        self._held_messages: list[tuple[int, WireMessage]] = []
        self._held_ids = itertools.count(1)
        self.stepping = False
        """Step mode: the clock stands still (the core ticks only when told) and every
        peer message waits until it is delivered or dropped by hand."""
        self._now = 0.0
        self._last_heard: dict[NodeId, float] = {}
        self._acked: dict[NodeId, tuple[int, int]] = {}
        """Leader: for each voter, the latest send time (``sent_ns``, our lease clock) of a
        message of ours it had stepped when it acknowledged, and in which term. Forgotten
        for a peer that leaves the voters, and all of it on a switch of step mode."""
        # No lease without CheckQuorum: the followers' promise (refusing higher-term
        # votes while they hear from a leader) is the core's half of CheckQuorum.
        self._lease_ns = int(lease_s(config.timing) * 1e9) if config.check_quorum else 0
        self._lease_void_term = -1
        """A term in which this node, as leader, sent TimeoutNow: the transferee's
        campaign overrides the followers' promises, so no lease for the rest of it."""
        self.lease_reads = 0
        """Reads this node served from its lease (no round of heartbeats) since it started."""
        self._leader_stamp: tuple[NodeId, int, int] | None = None
        """Follower: (leader, term, sent_ns) of the latest message of the leader of our
        term that we stepped as it came from the network (not one that waited held, not
        in step mode) with at most ``max_pending_ticks`` ticks due at that moment, so that
        the election timer it restarted runs for the lease at least: echoed in our answers
        to that leader in that term. None before the first, in step mode (cleared at each
        switch), and after we stepped messages with more ticks due (a late loop, a pause
        of ours). It is not cleared when our promise runs out, and need not be: the leader
        counts an echo only for ``lease_s`` after its send, which the promise covers."""
        self._max_pending = max_pending_ticks(config.timing)
        self._vote_quiet_until: float | None = None
        """Loop time until which vote requests of other nodes are dropped after a restart
        (see :meth:`_quiet_after_restart`); None: no quiet period."""
        self._restarted = self._core.term > 0 and self._lease_ns > 0
        """This node starts with a term from storage: in its earlier life it may have
        promised a leader (which counts on that for its lease) to grant no vote for a
        while. Only where there are leases (CheckQuorum on, a lease longer than 0)."""
        # The state machine layer.
        self.sessions = SessionTable()
        self._persistent = isinstance(state_machine, PersistentStateMachine)
        self._sm_through = 0
        """Entries up to here are in the (persistent) state machine already: after a
        restart they update the sessions only."""
        self._describe: Callable[[bytes], bytes] | None = getattr(state_machine, "describe", None)
        # Snapshots.
        self._own_dir = snapshot_dir is None
        self.snapshot_dir = snapshot_dir or Path(
            tempfile.mkdtemp(prefix=f"raftlog-snap-{self.id}-")
        )
        self._bytes_since_snapshot = 0
        self._checkpointing = False
        self._no_checkpoint_until = 0.0
        self._pending_compaction: tuple[Checkpoint, int] | None = None
        self._senders: dict[NodeId, SnapshotSender] = {}
        self._send_cache: Outgoing | None = None
        self._writing: collections.Counter[str] = collections.Counter()
        """Names of snapshot files being written (kept by pruning until recorded)."""
        self._cache_lock = asyncio.Lock()
        self._staged: dict[tuple[int, int], Path] = {}
        self._receiver = SnapshotReceiver(
            self.id, self.snapshot_dir, self._send_wire, self._snapshot_arrived
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscribers: set[asyncio.Queue[ev.Event]] = set()
        self._entry_subscribers: set[asyncio.Queue[ev.Event]] = set()
        """Subscribers that want every client entry's events (the rest get none)."""
        self._message_subscribers: set[asyncio.Queue[ev.Event]] = set()
        """Subscribers that want the peer messages this node sends (feed.MessageSent)."""
        self._want_entry_events()
        self.snapshots_sent = 0
        self.snapshots_installed = 0
        self.metrics = NodeMetrics()
        """Counters and histograms for ``GET /metrics`` (see raftlog.server.metrics)."""

    # == public API (any task) =======================================================

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    async def run(self) -> None:
        """Run until stopped. Raises NodeStartError if the transport cannot start, and the
        storage (or state machine) error that stopped the node, if any."""
        try:
            self._refuse_if_removed()
            await self._prepare_state_machine()
            self.metrics.started(self.commit, self.applied)
        except (SnapshotFailed, StateMachineFailed, NodeRemoved) as exc:
            self._stopped = True
            self._note(logging.CRITICAL, f"Refusing to start: {exc}")
            raise
        try:
            await self.transport.start()
        except OSError as exc:
            self._stopped = True
            raise NodeStartError(f"cannot listen for peers: {exc}") from exc
        self._spawn(self._receiver.run())
        try:
            await self._core_task()
            await self._flush_deferred()
        finally:
            self._stopped = True
            self.role, self.leader = Role.FOLLOWER, NO_NODE
            self._fail_everything()
            await self._stop_tasks()
            await self.transport.close()
            if self._own_dir:
                shutil.rmtree(self.snapshot_dir, ignore_errors=True)
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        self._stopping.set()
        self._wake()  # the core task may wait on its inbox alone (step mode: no timer)

    def last_contact(self, peer: NodeId) -> float | None:
        """Seconds since a message from ``peer`` last arrived (None: never)."""
        heard = self._last_heard.get(peer)
        return None if heard is None else round(max(0.0, self._now - heard), 3)

    async def propose(
        self,
        data: bytes,
        timeout: float | None = None,
        *,
        client: str | None = None,
        seq: int | None = None,
    ) -> Committed:
        """Replicate ``data`` (a command for the state machine); returns once it is
        committed and applied here. With ``client`` and ``seq`` it goes in that client's
        session, so that a retry is applied once (and answered with the first outcome).
        Raises NotLeader, ProposalDropped, LeadershipLost, RequestTimeout or
        OutcomeUnknown (it may or may not commit), StaleSession, NodeStopped."""
        result: Committed = await self.propose_nowait(data, timeout, client=client, seq=seq)
        return result

    def propose_nowait(
        self,
        data: bytes,
        timeout: float | None = None,
        *,
        client: str | None = None,
        seq: int | None = None,
    ) -> asyncio.Future[Committed]:
        """:meth:`propose` as a future, for callers that answer from a callback rather
        than a task (the client API's fast path). Cancelling the future withdraws the
        wait, not the proposal."""
        if client is not None and (seq is None or seq < 1):
            raise ValueError("a session request needs seq >= 1")
        payload = encode_command(bytes(data), client, seq or 0)
        return self._submit(_PROPOSE, payload, timeout)

    async def read_barrier(self, timeout: float | None = None, *, lease: bool = False) -> int:
        """Wait until a linearizable read may be served here (ReadIndex, §6.4): returns
        the applied index it is safe to read at. Leader only (NotLeader otherwise).

        With ``lease``, a leader whose lease holds answers at once, without a round of
        heartbeats (faster; correct only while clocks drift less than the lease margin,
        see :mod:`raftlog.server.lease`); otherwise it falls back to ReadIndex."""
        index: int = await self._ask(_READ, lease, timeout)
        return index

    async def add_learner(self, member: Member, timeout: float | None = None) -> Committed:
        """Add a node as a learner (it gets the log, does not vote); returns once the
        change committed. Raises ConfChangeRefused (with the reason), NotLeader..."""

        def build(conf: ConfState) -> ConfState:
            if member.id in conf.ids():
                role = "voter" if member.id in conf.voters else "learner"
                raise ConfChangeRefused(f"node {member.id} is already a {role}")
            return self._conf(conf.voters, conf.learners | {member.id}, member)

        result: Committed = await self._ask(_CONF, build, timeout)
        return result

    async def promote(self, node: NodeId, timeout: float | None = None) -> Committed:
        """Make a learner a voter (once it has caught up; refused otherwise)."""

        def build(conf: ConfState) -> ConfState:
            if node in conf.voters:
                raise ConfChangeRefused(f"node {node} is already a voter")
            if node not in conf.learners:
                raise ConfChangeRefused(f"unknown member {node}: add it as a learner first")
            return self._conf(conf.voters | {node}, conf.learners - {node})

        result: Committed = await self._ask(_CONF, build, timeout)
        return result

    async def remove_member(self, node: NodeId, timeout: float | None = None) -> Committed:
        """Remove a voter or a learner (the leader too: it steps down once it commits)."""

        def build(conf: ConfState) -> ConfState:
            if node not in conf.ids():
                raise ConfChangeRefused(f"unknown member {node}")
            return self._conf(conf.voters - {node}, conf.learners - {node})

        result: Committed = await self._ask(_CONF, build, timeout)
        return result

    def _conf(
        self, voters: frozenset[NodeId], learners: frozenset[NodeId], new: Member | None = None
    ) -> ConfState:
        known = dict(self.members)
        if new is not None:
            known[new.id] = new
        ids = voters | learners
        return ConfState(voters, learners, tuple(known.get(n, Member(n)) for n in sorted(ids)))

    @property
    def conf(self) -> ConfState:
        """The configuration in force (read-only, for the node's own tasks)."""
        return self._core.conf

    def member_list(self) -> list[tuple[Member, str]]:
        """The members of the configuration in force, with their role (voter/learner)."""
        conf = self._core.conf
        return [
            (self.members.get(n, Member(n)), "voter" if n in conf.voters else "learner")
            for n in sorted(conf.ids())
        ]

    async def transfer_leadership(self, to: NodeId, timeout: float | None = None) -> None:
        await self._ask(_TRANSFER, to, timeout)

    async def status(self) -> Status:
        status: Status = await self._ask(_STATUS, None, 5.0)
        return status

    async def log_view(self, start: int | None, limit: int) -> LogView:
        """Up to ``limit`` entries of this node's own log from ``start`` (None: the last
        ``limit``), committed or not, with where the log begins, ends and commits."""
        view: LogView = await self._ask(_LOG, (start, limit), 5.0)
        return view

    def subscribe(
        self, maxsize: int = 1000, *, entries: bool = True, messages: bool = False
    ) -> EventStream:
        """Every event from now on (from this call, not from the first ``anext``), as
        it happens; a slow reader loses the oldest ones rather than slowing the node.
        The stream ends when the node stops. ``entries``: with the events of every
        client entry (proposed, appended, committed), which cost the node a little per
        entry; ``messages``: with every peer message this node sends
        (:class:`feed.MessageSent`)."""
        stream = EventStream(self, maxsize)
        self._subscribers.add(stream.queue)
        if entries:
            self._entry_subscribers.add(stream.queue)
        if messages:
            self._message_subscribers.add(stream.queue)
        self._want_entry_events()
        return stream

    async def shutdown(self, *, transfer: bool = True) -> None:
        """Stop gracefully: a leader first hands leadership to its most up-to-date
        follower (waiting up to two election timeouts), then the node stops."""
        # In step mode the hand-over's messages would wait to be delivered by hand.
        if (
            transfer
            and not self.stepping
            and self.is_leader
            and not self._stopped
            and len(self.conf.voters) > 1
        ):
            try:
                status = await self.status()
                voters = self.conf.voters
                peers = [
                    p
                    for p in status.peers
                    if p.id != self.id
                    and p.recent_active
                    and p.id in voters
                    and self._connected(p.id)
                ]
                if peers:
                    target = max(peers, key=lambda p: p.match).id
                    self._note(logging.INFO, f"Stopping: handing leadership to node {target}")
                    await self.transfer_leadership(target, timeout=1.0)
                    deadline = 2 * self.config.timing.election_max_s
                    async with asyncio.timeout(deadline):
                        while self.is_leader and not self._stopped:
                            if not self._connected(target):
                                # It went away (stopping too, say, as a whole cluster stops):
                                # no one to wait for.
                                self._note(
                                    logging.WARNING,
                                    f"Node {target} went away: stopping without a hand-over",
                                )
                                break
                            await asyncio.sleep(self.config.timing.tick_s)
            except (RaftError, TimeoutError) as exc:
                self._note(logging.WARNING, f"Leadership transfer before stopping failed: {exc}")
        self.stop()

    def _connected(self, peer: NodeId) -> bool:
        """The transport has a way to ``peer`` now (for TCP: an open connection); a peer
        whose process exited is seen at once, its connection closed."""
        peers = getattr(self.transport, "peers", None)  # not every transport tells
        info = peers().get(peer) if peers is not None else None
        return info is None or bool(info.connected)

    # == test-only fault injection ===================================================

    def block_peers(self, peers: set[NodeId]) -> None:
        """Fault injection (tests, and a supervisor's partitions through the admin
        endpoint): drop every message to or from ``peers`` (a network
        partition as seen from this node; the connections stay up)."""
        self.blocked = frozenset(peers)

    def hold_peers(self, peers: set[NodeId]) -> None:
        """Fault injection (tests, the split-vote demo): keep every message from ``peers``
        instead of delivering it (a link that delays without losing). Messages held from a peer that
        is no longer in ``peers`` are delivered now, in the order they arrived, all in one
        batch (the core steps them all before it sends anything)."""
        self.held = frozenset(peers)
        self._release_held()

    def _release_held(self) -> None:
        """Deliver, in order, what is held and should no longer be."""
        if self.stepping:
            return
        keep: list[tuple[int, WireMessage]] = []
        release: list[tuple[int, WireMessage]] = []
        for item in self._held_messages:
            (keep if item[1].src in self.held else release).append(item)
        self._held_messages = keep
        for held_id, msg in release:
            self._let_go(held_id, msg, deliver=True)

    def _let_go(self, held_id: int, msg: WireMessage, *, deliver: bool) -> None:
        """A held message leaves the list: delivered (unless its sender is blocked
        meanwhile: a partition made while it waited loses it, as the network would), or
        dropped."""
        deliver = deliver and msg.src not in self.blocked
        if deliver and not self._deliver(msg, kind=_HELD):
            deliver = False  # the inbox was full: lost (Raft sends again)
        self._feed(feed.MessageReleased, id=held_id, action="deliver" if deliver else "drop")

    # == step mode (the dashboard's teaching mode; admin only) =======================

    def set_stepping(self, on: bool) -> None:
        """Step mode on: the clock stands still and every peer message is held. Off: what
        is held is delivered in order and the clock runs again from now (no burst of
        the ticks that did not happen)."""
        if on == self.stepping:
            return
        self.stepping = on
        # Promises made before the switch are not to be trusted after it (time stood still
        # on one side or the other): the lease starts again from fresh acknowledgements.
        self._acked.clear()
        self._leader_stamp = None
        self._note(logging.INFO, "Step mode: the clock stops" if on else "Step mode ends")
        if not on:
            self._release_held()
        self._wake()

    def step_ticks(self, ticks: int) -> None:
        """Step mode: advance the clock ``ticks`` ticks (the core's timers)."""
        if not self.stepping:
            raise UsageError("ticks are given by hand only in step mode")
        if ticks < 1:
            raise UsageError("at least one tick")
        try:
            self._inbox.put_nowait((_TICKS, ticks, None))
        except asyncio.QueueFull:
            raise ProposalDropped("the node is busy: its inbox is full") from None

    def release(self, held_id: int, *, deliver: bool) -> None:
        """Deliver (or drop) the held message ``held_id``."""
        for k, (known, msg) in enumerate(self._held_messages):
            if known == held_id:
                del self._held_messages[k]
                self._let_go(held_id, msg, deliver=deliver)
                return
        raise KeyError(held_id)

    def held_list(self) -> list[dict[str, Any]]:
        """The held messages, oldest first, as ``/v1/status`` shows them."""
        return [feed.held_view(held_id, msg) for held_id, msg in self._held_messages]

    def _feed(self, kind: type[ev.Event], **fields: Any) -> None:
        """Tell the live watchers (not the event log)."""
        if not self._subscribers:
            return
        event = kind(node=self.id, role=self.role, term=self.term, **fields)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    # == the inbox ===================================================================

    def _send(self, msg: Message) -> None:
        if isinstance(msg, InstallSnapshot):
            self._start_snapshot_transfer(msg)
            return
        self._send_wire(msg)

    def _send_wire(self, msg: WireMessage) -> bool:
        if msg.dst in self.blocked:
            return False
        if isinstance(msg, AppendEntries | Heartbeat | AppendEntriesResponse | HeartbeatResponse):
            msg = self._stamp(msg)
        elif isinstance(msg, TimeoutNow):
            self._lease_void_term = msg.term
        if self._message_subscribers:
            self._tap(msg)
        if type(msg) is Heartbeat:
            self.metrics.heartbeat_sent(msg.dst)
        return self.transport.send(msg)

    def _stamp(
        self, msg: AppendEntries | Heartbeat | AppendEntriesResponse | HeartbeatResponse
    ) -> WireMessage:
        """The lease's bookkeeping on the way out: a leader's message carries when it was
        sent (:func:`lease_clock_ns`); an answer to the leader of that term echoes our
        stamp of it (``_leader_stamp``: the send time of the latest message of its that we
        stepped with a promise worth the lease; see :meth:`_lease_holds`)."""
        if isinstance(msg, AppendEntries | Heartbeat):
            return msgspec.structs.replace(msg, sent_ns=lease_clock_ns())
        stamp = self._leader_stamp
        if stamp is None or stamp[0] != msg.dst or stamp[1] != msg.term:
            return msg
        return msgspec.structs.replace(msg, echo_ns=stamp[2])

    def _tap(self, msg: WireMessage) -> None:
        event = feed.MessageSent(
            node=self.id,
            role=self.role,
            term=self.term,
            src=int(msg.src),
            dst=int(msg.dst),
            msg_type=feed.message_type(msg),
            msg_term=msg.term,
            fields=feed.message_fields(msg),
        )
        for queue in self._message_subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def _on_message(self, msg: WireMessage) -> None:
        """Transport callback: never blocks; drops when the inbox is full (Raft retries)."""
        if msg.src in self.blocked:
            return
        if type(msg) is HeartbeatResponse:
            self.metrics.heartbeat_answered(msg.src)
        if self.stepping or msg.src in self.held:
            if len(self._held_messages) < self.config.inbox_size:
                held_id = next(self._held_ids)
                self._held_messages.append((held_id, msg))
                if self._subscribers:
                    view = feed.held_view(held_id, msg)
                    self._feed(
                        feed.MessageHeld,
                        id=held_id,
                        src=view["src"],
                        dst=view["dst"],
                        msg_type=view["type"],
                        msg_term=view["term"],
                        fields=view["fields"],
                    )
            else:
                self.dropped_messages += 1
            return
        self._deliver(msg)

    def _deliver(self, msg: WireMessage, kind: int = _MSG) -> bool:
        """Hand a message to the core task (False: the inbox was full, it is lost)."""
        if isinstance(msg, SnapshotChunk | SnapshotAck):
            problem = message_problem(msg)
            if problem is not None or msg.dst != self.id:
                self.dropped_messages += 1
                log.warning("dropped a bad message from node %s: %s", msg.src, problem)
            elif isinstance(msg, SnapshotChunk):
                self._receiver.on_chunk(msg)
            elif (sender := self._senders.get(msg.src)) is not None:
                sender.on_ack(msg)
            return True
        try:
            self._inbox.put_nowait((kind, msg, None))
        except asyncio.QueueFull:
            self.dropped_messages += 1
            return False
        return True

    def _wake(self, kind: int = _WAKE, payload: Any = None) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full inbox wakes the task anyway
            self._inbox.put_nowait((kind, payload, None))

    async def _ask(self, kind: int, payload: Any, timeout: float | None) -> Any:
        return await self._submit(kind, payload, timeout)

    def _submit(self, kind: int, payload: Any, timeout: float | None) -> asyncio.Future[Any]:
        """Hand a request to the core task; the future gets its answer (or RequestTimeout
        after ``timeout`` s). No task per request: the hot path of every append."""
        if self._stopped or self._stopping.is_set():
            raise NodeStopped("the node is stopping")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._asks.add(future)
        put: asyncio.Future[None] | None = None
        try:
            self._inbox.put_nowait((kind, payload, future))  # the usual case: no task
        except asyncio.QueueFull:
            # Waiting for room in the inbox must not outlive the answer (e.g. a stop).
            put = asyncio.ensure_future(self._inbox.put((kind, payload, future)))
        # A timer that fails the future, rather than an asyncio.timeout() context per
        # request: the same outcome at a fraction of the cost.
        timer = (
            None
            if timeout is None
            else loop.call_later(
                timeout,
                _expire,
                future,
                timeout,
                self.metrics.proposals_lost if kind == _PROPOSE else None,
            )
        )
        asks = self._asks

        def finished(future: asyncio.Future[Any]) -> None:
            if timer is not None:
                timer.cancel()
            asks.discard(future)
            if put is not None and not put.done():
                put.cancel()

        future.add_done_callback(finished)
        return future

    # == the core task ===============================================================

    async def _core_task(self) -> None:
        loop = asyncio.get_running_loop()
        timing = self.config.timing
        tick_s = timing.tick_s
        max_catch_up = 2 * timing.election_max_ticks
        self._now = loop.time()
        if self._restarted:
            self._vote_quiet_until = self._now + timing.election_min_s
        next_tick = self._now + tick_s
        inbox = self._inbox
        # The clock: one timer per tick puts an empty item in the inbox, so the task waits
        # on the inbox alone (no timeout context per wait, the old cost of every wake-up).
        # A timer may fire a little early (uvloop rounds to milliseconds): a tick is due
        # from TICK_SLACK_S before its time, or the task would spin until then (it did:
        # 10-20 % of a core at rest). One that fired is forgotten: the next wait arms one.
        timer: asyncio.Handle | None = None  # uvloop's timer handles have no when()
        timer_at = 0.0

        def fired() -> None:
            nonlocal timer
            timer = None
            self._wake()

        await self._process_ready()
        try:
            while not self._stopping.is_set():
                if self.stepping:
                    # The clock stands still: only messages, requests and ticks given by
                    # hand move the core. Time starts again from when step mode ends.
                    first = await inbox.get() if inbox.empty() else None
                    self._now = loop.time()  # what is handled now sees the time it is
                    self._drain(inbox, first)
                    next_tick = self._now + tick_s
                    await self._process_ready()
                    if self.fatal is None and self._pending_compaction is not None:
                        await self._compact()
                    if self.fatal is not None:
                        return
                    continue
                if inbox.empty() and next_tick - TICK_SLACK_S > loop.time():
                    if timer is None or timer_at != next_tick:
                        if timer is not None:
                            timer.cancel()
                        timer = loop.call_at(next_tick, fired)
                        timer_at = next_tick
                    self._drain(inbox, await inbox.get())
                else:
                    self._drain(inbox)
                now = self._now = loop.time()
                if now >= next_tick - TICK_SLACK_S:
                    missed = max(0, int((now - next_tick) / tick_s)) + 1
                    if missed > 2:
                        # The clock jumped (a pause, SIGSTOP): read what the peers (and
                        # clients) sent in the meantime before the burst of ticks decides
                        # they are gone. A request reaches the inbox a few rounds of the
                        # loop after its bytes (an HTTP handler is a task of its own).
                        for _round in range(JUMP_ROUNDS):
                            await asyncio.sleep(0)
                        while not inbox.empty():
                            self._handle(inbox.get_nowait())
                        now = self._now = loop.time()  # the ticks due when those were stepped
                        missed = max(0, int((now - next_tick) / tick_s)) + 1
                    if missed > self._max_pending:
                        # The burst counts time from before what was just stepped: the
                        # election timer it restarted has less than the lease left.
                        self._leader_stamp = None
                    if not self._waiting_for_pinned_campaign():
                        for _ in range(min(missed, max_catch_up)):
                            self._core.tick()
                    next_tick += missed * tick_s
                await self._process_ready()
                if self.fatal is None and self._pending_compaction is not None:
                    await self._compact()
                if self.fatal is not None:
                    return
        finally:
            if timer is not None:
                timer.cancel()

    def _drain(
        self,
        inbox: asyncio.Queue[tuple[int, Any, asyncio.Future[Any] | None]],
        first: tuple[int, Any, asyncio.Future[Any] | None] | None = None,
    ) -> None:
        """Handle ``first`` and what waits in the inbox (up to max_batch items).
        Proposals waiting together go into the log together: one call of the core, one
        broadcast."""
        handled = 0
        limit = self.config.max_batch
        batch: list[tuple[int, Any, asyncio.Future[Any] | None]] = []
        while True:
            if first is not None:
                item, first = first, None
            elif handled < limit and not inbox.empty():
                item = inbox.get_nowait()
            else:
                break
            handled += 1
            if item[0] == _PROPOSE:
                batch.append(item)
                continue
            if batch:
                self._propose_batch(batch)
                batch = []
            self._handle(item)
        if batch:
            self._propose_batch(batch)

    def _handle(self, item: tuple[int, Any, asyncio.Future[Any] | None]) -> None:
        kind, payload, future = item
        core = self._core
        if kind in (_MSG, _HELD):
            problem = message_problem(payload)
            if problem is not None or payload.dst != self.id:
                self.dropped_messages += 1
                log.warning("dropped a bad message from node %s: %s", payload.src, problem)
                return
            self._last_heard[payload.src] = self._now
            if isinstance(payload, AppendEntriesResponse | HeartbeatResponse):
                # One that waited held is no fresh promise: not counted.
                if kind == _MSG and payload.term == core.term:
                    if "ack-at-handling" in self.config.bugs:  # the injected bug
                        self._note_ack(payload.src, lease_clock_ns(), payload.term)
                    elif payload.echo_ns:
                        self._note_ack(payload.src, payload.echo_ns, payload.term)
            elif isinstance(payload, RequestVote | PreVote) and self._quiet_after_restart(payload):
                return
            elif (
                isinstance(payload, AppendEntries | Heartbeat)
                and kind == _MSG
                and payload.sent_ns
                and not self.stepping
            ):
                core.step(payload)
                if core.term == payload.term and core.leader == payload.src:
                    # Our election timer restarted now, after the leader sent this.
                    self._leader_stamp = (payload.src, payload.term, payload.sent_ns)
                return
            core.step(payload)
            return
        if kind == _REPORT:
            peer, ok = payload
            core.report_snapshot(peer, ok=ok)
            return
        if kind == _WAKE:
            return
        if kind == _TICKS:
            if self.stepping:  # ticks asked for in step mode lapse when time runs again
                for _ in range(payload):
                    core.tick()
            return
        assert future is not None
        if future.done():
            return  # the asker gave up
        try:
            if kind == _PROPOSE:
                self._propose_batch([item])
            elif kind == _READ:
                if core.role is Role.LEADER and "stale-read" in self.config.bugs:
                    future.set_result(self.applied)  # the injected bug: no confirmation
                    return
                if core.role is Role.LEADER and payload and self._lease_holds():
                    # No round of heartbeats: the read point is the commit index now,
                    # served once applied (at once, unless commits wait to be applied).
                    self.lease_reads += 1
                    if self.applied >= core.log.committed:
                        future.set_result(self.applied)
                    else:
                        self._confirmed.append((core.log.committed, future))
                    return
                context = next(self._read_ids).to_bytes(8, "big")
                core.read_index(context)
                self._reads[context] = future
            elif kind == _CONF:
                new = payload(core.conf)
                index, term = core.propose_conf_change(new)
                self._fail_proposals_from(index)
                self._proposals[index] = (term, future)
            elif kind == _TRANSFER:
                core.transfer_leader(payload)
                future.set_result(None)
            elif kind == _STATUS:
                future.set_result(core.status())
            elif kind == _LOG:
                start, limit = payload
                rlog = core.log
                first, last = rlog.first_index(), rlog.last_index()
                lo = max(first, last - limit + 1) if start is None else max(first, start)
                entries = rlog.entries(lo, limit, 1 << 20) if lo <= last else []
                future.set_result(
                    LogView(first, last, rlog.committed, rlog.snapshot_index(), entries)
                )
        except RaftError as exc:  # NotLeader, ProposalDropped, UsageError: the asker's answer
            future.set_exception(exc)

    def _propose_batch(self, items: list[tuple[int, Any, asyncio.Future[Any] | None]]) -> None:
        """Append the proposals whose askers still wait, in one call of the core."""
        live = [(payload, future) for _k, payload, future in items if future and not future.done()]
        if not live:
            return
        try:
            placed = self._core.propose_many([payload for payload, _f in live])
        except RaftError as exc:  # NotLeader, ProposalDropped: every asker's answer
            for _payload, future in live:
                future.set_exception(exc)
            if not isinstance(exc, NotLeader):  # a follower's is forwarded, not failed
                self.metrics.proposals_lost(len(live))
            return
        self._fail_proposals_from(placed[0][0])  # older entries there were truncated away
        proposals = self._proposals
        for (index, term), (_payload, future) in zip(placed, live, strict=True):
            proposals[index] = (term, future)
        self.metrics.appended(placed[0][0], placed[-1][0])

    def _quiet_after_restart(self, msg: RequestVote | PreVote) -> bool:
        """Drop ``msg``? A node that restarted (it started with a term from storage)
        drops other nodes' vote requests of a higher term, transfers excepted, for a
        minimum election timeout from its start: its earlier life may have promised a
        leader, which counts that promise for its lease, to grant none while it heard from
        it, and the core, which forgot that leader, would grant them. Nothing is
        answered, as the core answers nothing when it refuses for that reason."""
        until = self._vote_quiet_until
        if until is None or msg.term <= self._core.term:
            return False
        if isinstance(msg, RequestVote) and msg.transfer:
            return False
        if self._now >= until:
            self._vote_quiet_until = None  # for good
            return False
        what = "pre-vote" if isinstance(msg, PreVote) else "vote"
        left = until - self._now
        self._note(
            logging.INFO,
            f"Ignored a {what} request from {msg.src} (term {msg.term}): restarted less than "
            f"an election timeout ago ({left:.2f} s to go), a promise made before may hold",
        )
        return True

    def _forget_acks_of_non_voters(self, voters: frozenset[NodeId]) -> None:
        """A peer that leaves the voters takes its acknowledgements along: added back
        (on a fresh disk, in the same term) it has promised nothing yet."""
        for peer in [p for p in self._acked if p not in voters]:
            del self._acked[peer]

    def _note_ack(self, peer: NodeId, sent_ns: int, term: int) -> None:
        """``peer`` answered us in ``term`` having stepped our message sent at
        ``sent_ns``. A time after now is no time of ours, and a peer that is no voter
        promises nothing that counts (both ignored)."""
        if sent_ns > lease_clock_ns() or peer not in self._core.voters:
            return
        known = self._acked.get(peer)
        if known is None or known[1] != term or known[0] < sent_ns:
            self._acked[peer] = (sent_ns, term)

    def _lease_holds(self) -> bool:
        """A quorum of voters stepped messages this leader sent, in this term, within the
        lease (:func:`lease_s`, measured now on the lease clock: not from the loop's last
        look at it, which a pause leaves behind); it has committed an entry of its own
        term (so its commit index is the cluster's); and it has not handed leadership
        over in this term. Never without CheckQuorum (``_lease_ns`` is 0), nor in step
        mode."""
        core = self._core
        if self.stepping or self._lease_ns <= 0:
            return False  # time stands still, or the followers promise nothing
        if core.term == self._lease_void_term:
            return False  # a transferee's campaign overrides the followers' promises
        if core.log.term(core.log.committed) != core.term:
            return False
        if "endless-lease" in self.config.bugs:  # the injected bug: the lease never expires
            horizon = 0
        else:
            horizon = lease_clock_ns() - self._lease_ns
        fresh = (self.id in core.voters) + sum(  # a leader removing itself counts not
            1
            for peer, (at, term) in self._acked.items()
            if term == core.term and at >= horizon and peer in core.voters
        )
        return fresh * 2 > len(core.voters)

    def _waiting_for_pinned_campaign(self) -> bool:
        """With a pinned first election timeout, the election timer does not run until the
        pinned instant (unless a leader is heard first); then the node campaigns."""
        pinned = self.config.first_campaign_at
        if pinned is None or self._heard_leader:
            return False
        if self._core.leader != NO_NODE:
            self._heard_leader = True
            return False
        if time.time() < pinned:
            return True
        self._heard_leader = True
        self._note(logging.INFO, "Pinned first election timeout reached")
        self._core.campaign()
        return False

    async def _process_ready(self) -> None:
        core = self._core
        while core.has_ready() and self.fatal is None:
            rd = core.ready()
            try:
                await self._handle_ready(rd)
            except (StorageError, StateMachineFailed) as exc:
                self.fatal = exc
                what = "Storage" if isinstance(exc, StorageError) else "The state machine"
                self._note(logging.CRITICAL, f"{what} failed, stopping the node: {exc}")
                self._stopping.set()
                return
            except _StoppedWhileFull:
                return  # the Ready was not written: it is neither sent nor advanced
            core.advance(rd)
            self._sync_conf()
        if self.fatal is None:
            self._maybe_checkpoint()

    async def _handle_ready(self, rd: Ready) -> None:
        send = self._send
        for msg in rd.messages:  # 0. need no durability
            send(msg)
        if "ack-before-fsync" in self.config.bugs:  # the injected bug: promises before the write
            for msg in rd.persisted_messages:
                send(msg)
            if rd.persisted_messages and (rd.entries or rd.must_sync):
                await asyncio.sleep(_BUGGY_WRITE_DELAY_S)
        installed = self._installing(rd.snapshot) if rd.snapshot is not None else None
        if rd.entries or rd.must_sync:  # 1-2. one durable write
            await self._persist(rd.hard_state or self._deferred_hard_state, rd.entries, installed)
            self._deferred_hard_state = None
        elif rd.hard_state is not None:
            # Only the commit index moved: it can be relearned, so it rides along with
            # the next durable write instead of costing an fsync of its own.
            self._deferred_hard_state = rd.hard_state
        if installed is not None:  # the state machine takes the snapshot's state
            await self._restore(installed)
        for event in rd.events:  # logged once durable: a vote on screen is a vote on disk
            self._publish(event)
            if isinstance(event, ev.LogTruncated):
                self._fail_proposals_from(event.from_index)
        if "ack-before-fsync" not in self.config.bugs:
            for msg in rd.persisted_messages:  # 3. acknowledgements, now true
                send(msg)
        if rd.soft_state is not None:
            self.role = rd.soft_state.role
            self.leader = rd.soft_state.leader
            self.metrics.leader_seen(self.leader, self.role)
            if self.leader != NO_NODE:
                self._heard_leader = True
        self.term = self._core.term
        for entry in rd.committed_entries:  # 4. apply, in order, once
            if entry.index > self.applied:
                self._apply(entry)
        self.commit = self._core.log.committed
        self.metrics.committed(self.commit)
        for read in rd.read_states:
            future = self._reads.pop(read.context, None)
            if future is not None:
                self._confirmed.append((read.index, future))
        for context in rd.dropped_reads:
            future = self._reads.pop(context, None)
            if future is not None and not future.done():
                future.set_exception(NotLeader(self._core.leader))
        if self._confirmed:
            self._serve_reads()

    # == a full disk =================================================================

    async def _persist(
        self, hard_state: HardState | None, entries: tuple[Entry, ...], installed: Checkpoint | None
    ) -> None:
        """Write a Ready; while the disk is full, keep trying (nothing of the Ready is sent
        or applied meanwhile: the core waits in this call, the contract holds)."""
        loop = asyncio.get_running_loop()
        delay, longest = DISK_FULL_RETRY_S
        since = 0.0
        while True:
            try:
                await self.storage.save_async(hard_state, entries, installed)
                break
            except StorageFull as exc:
                if self.disk_full is None:
                    since = loop.time()
                    self.disk_full = str(exc)
                    self._note(
                        logging.ERROR,
                        f"Disk full, the log write failed: {exc}. Refusing proposals and "
                        "retrying until there is space",
                    )
                    self._unwritten(entries)
                await self._wait_for_space(delay)
                delay = min(2 * delay, longest)
        if self.disk_full is not None:
            self.disk_full = None
            self._note(
                logging.WARNING,
                f"Disk space is back: the log write succeeded after {loop.time() - since:.1f} s",
            )

    def _unwritten(self, entries: tuple[Entry, ...]) -> None:
        """Answer the proposers of entries the failed write held: they are in this node's
        log (and may have gone to followers), so they may still commit."""
        for entry in entries:
            pending = self._proposals.pop(entry.index, None)
            if pending is not None and not pending[1].done():
                pending[1].set_exception(
                    OutcomeUnknown(
                        f"disk full on node {self.id}: entry {entry.index} was not written "
                        "here and may still commit (a retry with the same client id and seq "
                        "is applied at most once)"
                    )
                )

    async def _wait_for_space(self, delay: float) -> None:
        """Wait ``delay`` s before the next try, answering what arrives meanwhile:
        status and log questions from the core (reads only), proposals, reads and
        changes with DiskFull (or NotLeader, so that a follower's API forwards them);
        peer messages are dropped (Raft sends again). Raises _StoppedWhileFull on stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        inbox = self._inbox
        while not self._stopping.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(left):
                    kind, payload, future = await inbox.get()
            except TimeoutError:
                return
            if kind in (_STATUS, _LOG):
                self._handle((kind, payload, future))
            elif kind in (_MSG, _HELD):
                self.dropped_messages += 1
            elif kind == _REPORT:
                peer, ok = payload
                self._core.report_snapshot(peer, ok=ok)  # its output waits for the next Ready
            elif future is not None and not future.done():
                if kind == _PROPOSE and self._core.role is not Role.LEADER:
                    future.set_exception(NotLeader(self._core.leader))
                else:
                    future.set_exception(
                        DiskFull(f"node {self.id} cannot write its log: {self.disk_full}")
                    )
        raise _StoppedWhileFull

    # == membership ==================================================================

    def _sync_conf(self) -> None:
        """Follow the configuration in force: learn the members' addresses, talk to the
        right peers, and stop once a committed configuration has left this node out."""
        core = self._core
        conf = core.conf
        if conf is not self._conf_seen:
            self._conf_seen = conf
            self._forget_acks_of_non_voters(conf.voters)
            for member in conf.members:
                self.members[member.id] = member
            if self.id in conf.ids() and core.conf_index >= self.config.joined_at:
                self._was_member = True
        peers = core.peer_ids()
        if not conf.voters:
            # Joining, no configuration yet: talk to the members it was told of.
            peers = frozenset(self.members) - {self.id}
        if peers != self._peer_ids:
            self._peer_ids = peers
            set_peers = getattr(self.transport, "set_peers", None)
            if set_peers is not None:
                addresses = {}
                for node in peers:
                    known = self.members.get(node)
                    if known is not None and known.peer:
                        addresses[node] = split_address(known.peer)
                set_peers(addresses)
        if self._was_member and not self.removed and self._left_out():
            self.removed = True
            self._note(
                logging.WARNING,
                f"Removed from the cluster (configuration at index {core.conf_index} "
                "committed): stopping",
            )
            self._stopping.set()

    # == applying ====================================================================

    def _apply(self, entry: Entry) -> None:
        result: Any = None
        if entry.kind is EntryKind.NORMAL:
            command = decode_command(entry.data)
            try:
                result = self._apply_command(entry, command)
            except Exception as exc:
                raise StateMachineFailed(
                    f"applying entry {entry.index} raised {type(exc).__name__}: {exc}"
                ) from exc
            self._bytes_since_snapshot += len(entry.data)
        self.applied = entry.index
        pending = self._proposals.pop(entry.index, None)
        if pending is None:
            return
        term, future = pending
        if future.done():
            return
        if term != entry.term:
            future.set_exception(
                LeadershipLost(f"entry {entry.index} went to another leader's entry")
            )
            self.metrics.proposals_lost()
        elif isinstance(result, Duplicate):
            future.set_result(Committed(result.index, result.term, result.result, True))
        elif isinstance(result, Stale):
            future.set_exception(StaleSession(result))
        else:
            future.set_result(Committed(entry.index, entry.term, result))

    def _apply_command(self, entry: Entry, command: Command) -> Any:
        known = entry.index <= self._sm_through  # the persistent state machine has it
        if command.client is None:
            return (
                None if known else self.state_machine.apply(entry.index, entry.term, command.data)
            )
        answer = self.sessions.check(command, entry.index)
        if answer is not None:
            return answer
        result = None if known else self.state_machine.apply(entry.index, entry.term, command.data)
        self.sessions.record(command, entry.index, entry.term, result)
        return result

    def _serve_reads(self) -> None:
        still = []
        for index, future in self._confirmed:
            if index <= self.applied:
                if not future.done():
                    future.set_result(self.applied)
            else:
                still.append((index, future))
        self._confirmed = still

    def _fail_proposals_from(self, index: int) -> None:
        """Entries from ``index`` on were replaced: their proposals cannot commit."""
        proposals = self._proposals
        # Keys are inserted in increasing index order (every insert first drops the keys
        # at or above it), so the last key says whether there is anything to do: a
        # proposal costs O(1) here, not O(waiting proposals).
        if not proposals or next(reversed(proposals)) < index:
            return
        for lost in [i for i in self._proposals if i >= index]:
            _term, future = self._proposals.pop(lost)
            if not future.done():
                future.set_exception(
                    LeadershipLost(f"entry {lost} was replaced by another leader's entry")
                )
                self.metrics.proposals_lost()

    # == snapshots: start-up, install ================================================

    def _left_out(self) -> bool:
        """A committed configuration of this node's life leaves it out (an uncommitted
        one may still be undone; one before it joined is an earlier life's)."""
        core = self._core
        return (
            bool(core.conf.voters)
            and self.id not in core.conf.ids()
            and 0 < core.conf_index <= core.log.committed
            and core.conf_index >= self.config.joined_at
        )

    def _refuse_if_removed(self) -> None:
        core = self._core
        if self._left_out():
            raise NodeRemoved(
                f"node {self.id} was removed from the cluster (the configuration at index "
                f"{core.conf_index}, voters {sorted(core.conf.voters)}, leaves it out); it "
                "will not take part. To bring it back, start it on a new data directory "
                "with --join"
            )

    async def _prepare_state_machine(self) -> None:
        """Bring the state machine to the latest checkpoint: restore it from the
        snapshot file, unless it keeps its own state and already holds that much."""
        snapfile.remove_temporaries(self.snapshot_dir)
        checkpoint = self.storage.checkpoint()
        meta = checkpoint.meta
        held = self._persisted_index()
        if meta.index > held:
            if not checkpoint.file:
                raise SnapshotFailed(
                    f"the log is compacted up to a snapshot at {meta.index}, but no snapshot "
                    f"file was kept and the state machine holds only up to {held}"
                )
            await self._restore(checkpoint, verified=False)
        else:
            if checkpoint.file:
                # Not needed to start, but sent to followers that fall behind: a damaged
                # one stops the node now rather than failing every transfer later.
                path = self.snapshot_dir / checkpoint.file
                try:
                    await asyncio.to_thread(snapfile.verify, path)
                except snapfile.SnapshotFileError as exc:
                    raise SnapshotFailed(str(exc)) from exc
            self.sessions.load(checkpoint.sessions)
            self._sm_through = held
        self.applied = max(self.applied, meta.index)
        self._prune_files()  # files of snapshots never recorded (a crash in between)

    def _persisted_index(self) -> int:
        if not isinstance(self.state_machine, PersistentStateMachine):
            return 0
        return self.state_machine.persisted_index()

    def _installing(self, meta: SnapshotMeta) -> Checkpoint:
        path = self._staged.get((meta.index, meta.term))
        if path is None:
            raise SnapshotFailed(f"snapshot {meta.index}@{meta.term} was never received")
        try:
            header = snapfile.read_header(path)
        except snapfile.SnapshotFileError as exc:
            raise SnapshotFailed(str(exc)) from exc
        return Checkpoint(meta, path.name, header.sessions)

    async def _restore(self, checkpoint: Checkpoint, *, verified: bool = True) -> None:
        """Replace the state machine's state (and the sessions) with a snapshot file's."""
        path = self.snapshot_dir / checkpoint.file
        try:
            header = await asyncio.to_thread(
                snapfile.open_body, path, self.state_machine.restore, verified=verified
            )
        except snapfile.SnapshotFileError as exc:
            raise SnapshotFailed(str(exc)) from exc
        except Exception as exc:
            raise StateMachineFailed(f"restoring from {path} raised {exc!r}") from exc
        meta = checkpoint.meta
        if (header.index, header.term) != (meta.index, meta.term):
            raise SnapshotFailed(
                f"{path} holds snapshot {header.index}@{header.term}, not {meta.index}@{meta.term}"
            )
        self.sessions.load(header.sessions)
        self._sm_through = 0
        self.applied = meta.index
        self._bytes_since_snapshot = 0
        self.snapshots_installed += 1
        for key in [k for k in self._staged if k[0] <= meta.index]:
            del self._staged[key]
        self._prune_files()

    async def _snapshot_arrived(
        self, src: NodeId, term: int, meta: SnapshotMeta, path: Path
    ) -> None:
        """A whole snapshot file arrived and was verified: let the core decide."""
        self._staged[(meta.index, meta.term)] = path
        self._deliver(InstallSnapshot(src, self.id, term, meta))

    # == snapshots: taking them, compacting ==========================================

    def _maybe_checkpoint(self) -> None:
        cfg = self.config
        if self._checkpointing or self._stopping.is_set() or self._now < self._no_checkpoint_until:
            return
        since = self.applied - self.storage.snapshot().index
        if since <= 0:
            return
        if since < cfg.snapshot_entries and self._bytes_since_snapshot < cfg.snapshot_bytes:
            return
        self._checkpointing = True
        self._spawn(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            captured = self.applied
            term = self._core.log.term(captured)
            if term is None:
                return
            meta = SnapshotMeta(captured, term, self._core.conf_at(captured))
            sessions = self.sessions.encode()
            file = ""
            if self._persistent:
                # The state machine's own store holds it: wait until it is on disk.
                while self._persisted_index() < captured and not self._stopping.is_set():
                    await asyncio.sleep(self.config.timing.tick_s)
            else:
                path = await self._write_snapshot(meta, sessions)
                file = path.name
            plan = plan_compaction(
                captured=captured,
                applied=self.applied,
                keep_entries=self.config.keep_entries,
                first_index=self._core.log.first_index(),
                bugs=self.config.bugs,
            )
            if plan.snapshot_index != captured:  # only with the injected bug
                skewed = self._core.log.term(plan.snapshot_index)
                if skewed is None:
                    return
                meta = SnapshotMeta(plan.snapshot_index, skewed, meta.conf)
                if file:
                    renamed = self.snapshot_dir / snapfile.file_name(meta.index, meta.term)
                    (self.snapshot_dir / file).replace(renamed)
                    file = renamed.name
            self._pending_compaction = (Checkpoint(meta, file, sessions), plan.compact_to)
            self._bytes_since_snapshot = 0
            self._wake()
        except (OSError, snapfile.SnapshotFileError) as exc:
            self._note(logging.WARNING, f"Taking a snapshot failed (will retry): {exc}")
        finally:
            if self._pending_compaction is None:
                self._checkpointing = False

    async def _write_snapshot(self, meta: SnapshotMeta, sessions: bytes) -> Path:
        """Capture the state machine now (on the loop) and write the file in a thread."""
        snap = self.state_machine.snapshot()
        name = snapfile.file_name(meta.index, meta.term)
        self._writing[name] += 1  # the caller records the file before it yields again
        try:
            return await asyncio.to_thread(
                snapfile.write, self.snapshot_dir, snapfile.header_for(meta, sessions), snap.write
            )
        finally:
            self._writing[name] -= 1
            if self._writing[name] <= 0:
                del self._writing[name]
            snap.release()

    async def _compact(self) -> None:
        """Record the snapshot and compact the log (in the core task, between Readies)."""
        assert self._pending_compaction is not None
        checkpoint, upto = self._pending_compaction
        self._pending_compaction = None
        self._checkpointing = False
        log_ = self._core.log
        if checkpoint.meta.index <= self.storage.snapshot().index:
            self._prune_files()  # a newer snapshot (from the leader) came meanwhile
            return
        # Never past what is durable in the log (a leader may hold unstable entries).
        upto = max(0, min(upto, log_.persisted_index(), self.storage.last_index()))
        try:
            await self.storage.compact_async(checkpoint, upto)
        except StorageFull as exc:  # nothing was changed: a later snapshot tries again
            self._note(logging.WARNING, f"Compacting the log failed, disk full: {exc}")
            self._no_checkpoint_until = self._now + DISK_FULL_RETRY_S[1]
            return
        except StorageError as exc:
            self.fatal = exc
            self._note(logging.CRITICAL, f"Storage failed, stopping the node: {exc}")
            self._stopping.set()
            return
        self._publish(
            ev.LogCompacted(
                node=self.id,
                role=self.role,
                term=self.term,
                snapshot_index=checkpoint.meta.index,
                first_index=self.storage.first_index(),
            )
        )
        self._prune_files()

    def _prune_files(self) -> None:
        """Keep the checkpoint's file and every file still on its way to being recorded,
        sent or installed; delete the rest.

        A file is under its final name before anyone records it (the rename happens in a
        thread, the receiver fsyncs the directory before staging it), and a prune may run
        in between: whatever is being written, landing or waiting to be compacted is kept.
        """
        keep = {self.storage.checkpoint().file}
        keep |= {s.outgoing.path.name for s in self._senders.values()}
        keep |= {p.name for p in self._staged.values()}
        keep |= set(self._writing)
        if self._receiver.landing is not None:
            keep.add(self._receiver.landing.name)
        if self._pending_compaction is not None:
            keep.add(self._pending_compaction[0].file)
        if self._send_cache is not None:
            keep.add(self._send_cache.path.name)
        for _index, _term, path in snapfile.list_snapshots(self.snapshot_dir):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    # == snapshots: sending ==========================================================

    def _start_snapshot_transfer(self, msg: InstallSnapshot) -> None:
        if msg.dst in self._senders or msg.dst in self.blocked:
            return  # one transfer per follower at a time
        self._spawn(self._send_snapshot(msg))

    async def _send_snapshot(self, msg: InstallSnapshot) -> None:
        ok = False
        try:
            outgoing = await self._outgoing(msg.snapshot.index)
            sender = SnapshotSender(
                self.id,
                msg.dst,
                msg.term,
                outgoing,
                self._send_wire,
                chunk_bytes=self.config.snapshot_chunk_bytes,
                ack_timeout_s=max(1.0, 2 * self.config.timing.election_max_s),
            )
            self._senders[msg.dst] = sender
            self._note(
                logging.INFO,
                f"Sending snapshot {outgoing.meta.index}@{outgoing.meta.term} "
                f"({sender.size} bytes) to node {msg.dst}",
            )
            ok = await sender.run()
            if ok:
                self.snapshots_sent += 1
        except (OSError, snapfile.SnapshotFileError, StateMachineFailed) as exc:
            self._note(logging.WARNING, f"Cannot send a snapshot to node {msg.dst}: {exc}")
        finally:
            self._senders.pop(msg.dst, None)
        self._wake(_REPORT, (msg.dst, ok))

    async def _outgoing(self, at_least: int) -> Outgoing:
        """A snapshot file covering at least ``at_least``: the checkpoint's, or one made
        now from the state machine (one that keeps its own state has no checkpoint file)."""
        checkpoint = self.storage.checkpoint()
        if checkpoint.file and checkpoint.meta.index >= at_least:
            return Outgoing(checkpoint.meta, self.snapshot_dir / checkpoint.file)
        async with self._cache_lock:
            cache = self._send_cache
            if cache is not None and cache.meta.index >= at_least and cache.path.exists():
                return cache
            captured = self.applied
            term = self._core.log.term(captured)
            if term is None:
                raise OSError(f"no term known for the applied index {captured}")
            meta = SnapshotMeta(captured, term, self._core.conf_at(captured))
            try:
                path = await self._write_snapshot(meta, self.sessions.encode())
            except Exception as exc:
                raise StateMachineFailed(f"writing a snapshot raised {exc!r}") from exc
            self._send_cache = Outgoing(meta, path)
            self._prune_files()
            return self._send_cache

    # == tasks, events, stopping =====================================================

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("background task failed: %r", exc)

    async def _stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _want_entry_events(self) -> None:
        """The core reports every client entry only when someone sees those events."""
        self._core.entry_events = bool(self._entry_subscribers) or self.events.level <= min(
            int(ev.ProposalReceived.level), int(ev.EntryCommitted.level)
        )

    def _publish(self, event: ev.Event) -> None:
        if not self._subscribers and int(event.level) < self.events.level:
            return  # nobody would see it (e.g. an entry's events below the log level)
        if isinstance(event, ev.ProposalReceived | ev.EntryCommitted):
            event = msgspec.structs.replace(event, data=self._display(event.data))
        self.events.event(event)
        subscribers = (
            self._entry_subscribers if isinstance(event, _ENTRY_EVENTS) else self._subscribers
        )
        for queue in subscribers:
            if queue.full():
                queue.get_nowait()  # the oldest goes: a slow reader never slows the node
            queue.put_nowait(event)

    def display(self, payload: bytes) -> bytes:
        """A command's payload as the state machine shows it to people (its
        ``describe``), or as it is."""
        if self._describe is not None:
            with contextlib.suppress(Exception):
                return self._describe(payload)
        return payload

    def _display(self, data: bytes) -> bytes:
        return self.display(command_payload(data))

    def _fail_everything(self) -> None:
        """The node stops: every waiting caller gets an answer. Proposals already in the
        log may still commit (outcome unknown); everything else never happened."""
        for _term, future in self._proposals.values():
            if not future.done():
                future.set_exception(OutcomeUnknown("the node stopped after accepting it"))
                self.metrics.proposals_lost()
        self._proposals.clear()
        stopped = NodeStopped("the node stopped")
        for future in [*self._reads.values(), *(f for _i, f in self._confirmed), *self._asks]:
            if not future.done():
                future.set_exception(stopped)
        self._reads.clear()
        self._confirmed.clear()
        while not self._inbox.empty():
            waiting = self._inbox.get_nowait()[2]
            if waiting is not None and not waiting.done():
                waiting.set_exception(stopped)

    async def _flush_deferred(self) -> None:
        """On a clean stop, write down the commit index that rode along unwritten."""
        if self._deferred_hard_state is not None and self.fatal is None:
            try:
                await self.storage.save_async(self._deferred_hard_state, ())
            except StorageError as exc:
                self._note(logging.WARNING, f"Could not save the commit index on stopping: {exc}")
            self._deferred_hard_state = None

    def _note(self, level: int, text: str) -> None:
        self.events.note(level, self.role, self.term, text)

    # == metrics (read when a scrape asks, on the node's loop) =========================

    def replication(self) -> Replication:
        """This node's last log index and, on the leader, each follower's match index."""
        core = self._core
        if core.role is not Role.LEADER:
            return Replication(core.log.last_index(), {})
        status = core.status()
        return Replication(
            status.last_index, {p.id: p.match for p in status.peers if p.id != self.id}
        )

    def pending_proposals(self) -> int:
        """Proposals taken and waiting for their commit."""
        return len(self._proposals)
