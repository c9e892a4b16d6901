"""The asyncio node: one task owns one Raft core and drives it.

The core task is the only code that touches the core. It waits for the next tick or the
next request in its bounded inbox (peer messages, proposals, reads, transfers, status
questions), feeds them to the core, and then handles every Ready in the contract's order
(:mod:`raftlog.core.raft`): send what needs no durability, write entries and hard state
(one transaction, in the storage's writer thread), send the acknowledgements, apply
committed entries and answer their proposers, serve confirmed reads, advance.

Other tasks (the HTTP API, the transport) talk to it only through the inbox and through
futures it resolves. A storage error stops the node: it never goes on with state it cannot
trust.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from raftlog.core import events as ev
from raftlog.core.config import KNOWN_BUGS, Config
from raftlog.core.errors import NotLeader, RaftError, StorageError
from raftlog.core.messages import (
    AppendEntriesResponse,
    HeartbeatResponse,
    Message,
    message_problem,
)
from raftlog.core.raft import Raft, Ready, Status
from raftlog.core.storage import LogReader
from raftlog.core.types import (
    NO_NODE,
    ClientCommand,
    Entry,
    EntryKind,
    HardState,
    NodeId,
    Role,
    encode_command,
)
from raftlog.server.eventlog import EventLog
from raftlog.server.statemachine import StateMachine
from raftlog.server.timing import Timing

log = logging.getLogger("raftlog.server")


class NodeStorage(LogReader, Protocol):
    """What the node needs from its storage: the core's reads, plus an async write that
    is durable when it returns."""

    async def save_async(
        self, hard_state: HardState | None, entries: tuple[Entry, ...]
    ) -> None: ...


class NodeTransport(Protocol):
    async def start(self) -> None: ...

    def send(self, msg: Message) -> bool: ...

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
    }
)
"""Known bugs of the node (test-only), on top of the core's KNOWN_BUGS."""

_BUGGY_WRITE_DELAY_S = 0.05

LEASE_FRACTION = 0.5
"""A leader serves lease reads while a quorum acknowledged it within this fraction of the
minimum election timeout: the rest covers the acknowledgements' travel time and clock
drift (followers refuse votes for a whole minimum election timeout after hearing from it)."""


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


@dataclass
class NodeConfig:
    node_id: NodeId
    voters: frozenset[NodeId]
    timing: Timing
    cluster_id: str = "raftlog"
    pre_vote: bool = True
    check_quorum: bool = True
    inbox_size: int = 10_000
    max_batch: int = 1024
    """Inbox items handled before the core's Ready is processed (group commit)."""
    first_campaign_at: float | None = None
    """Campaign at this wall-clock time (``time.time()``) if no leader was heard by then:
    pins the first election timeout, for demos that need two nodes to time out together."""
    bugs: frozenset[str] = field(default_factory=frozenset)
    seed: int | None = None

    def core_config(self) -> Config:
        t = self.timing
        return Config(
            id=self.node_id,
            voters=self.voters,
            election_timeout_min_ticks=t.election_min_ticks,
            election_timeout_max_ticks=t.election_max_ticks,
            heartbeat_ticks=t.heartbeat_ticks,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum and "stale-read" not in self.bugs,
            bugs=self.bugs & KNOWN_BUGS,
        ).validate()


# Inbox items: (kind, payload, future or None).
_MSG, _PROPOSE, _READ, _TRANSFER, _STATUS = range(5)


class RaftNode:
    """A running Raft node. Create it, then ``await node.run()``; stop it with
    ``node.stop()`` or ``await node.shutdown()``."""

    def __init__(
        self,
        config: NodeConfig,
        storage: NodeStorage,
        transport_factory: Callable[[Callable[[Message], None]], NodeTransport],
        state_machine: StateMachine,
        events: EventLog,
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
        self._stopping = asyncio.Event()
        self._stopped = False
        self.fatal: BaseException | None = None
        # Published by the core task for readers on the same loop.
        self.role = Role.FOLLOWER
        self.leader = NO_NODE
        self.term = self._core.term
        self.commit = self._core.log.committed
        self.applied = 0
        self.dropped_messages = 0
        self._heard_leader = False
        self.blocked: frozenset[NodeId] = frozenset()
        self.held: frozenset[NodeId] = frozenset()
        self._held_messages: list[Message] = []
        self._now = 0.0
        self._last_heard: dict[NodeId, float] = {}
        self._acked: dict[NodeId, tuple[float, int]] = {}
        """When each peer last acknowledged us as leader, and in which term."""

    # == public API (any task) =======================================================

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    async def run(self) -> None:
        """Run until stopped. Raises NodeStartError if the transport cannot start, and the
        storage error that stopped the node, if any."""
        try:
            await self.transport.start()
        except OSError as exc:
            raise NodeStartError(f"cannot listen for peers: {exc}") from exc
        try:
            await self._core_task()
            await self._flush_deferred()
        finally:
            self._stopped = True
            self.role, self.leader = Role.FOLLOWER, NO_NODE
            self._fail_everything()
            await self.transport.close()
        if self.fatal is not None:
            raise self.fatal

    def stop(self) -> None:
        self._stopping.set()

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
    ) -> tuple[int, int, Any]:
        """Replicate ``data``; returns (index, term, state machine result) once committed
        and applied here. With ``client`` and ``seq`` the entry travels in a session
        envelope, so that the state machine applies a retried request once. Raises
        NotLeader, ProposalDropped, LeadershipLost, RequestTimeout or OutcomeUnknown
        (it may or may not commit), NodeStopped."""
        if client is None:
            payload: tuple[bytes, EntryKind] = (bytes(data), EntryKind.NORMAL)
        else:
            if seq is None or seq < 1:
                raise ValueError("a session request needs seq >= 1")
            command = ClientCommand(client, seq, bytes(data))
            payload = (encode_command(command), EntryKind.CLIENT)
        result: tuple[int, int, Any] = await self._ask(_PROPOSE, payload, timeout)
        return result

    async def read_barrier(self, timeout: float | None = None, *, lease: bool = False) -> int:
        """Wait until a linearizable read may be served here (ReadIndex, §6.4): returns
        the applied index it is safe to read at. Leader only (NotLeader otherwise).

        With ``lease``, a leader whose lease holds answers at once, without a round of
        heartbeats (faster; correct only while clocks drift less than the lease margin,
        see LEASE_FRACTION); otherwise it falls back to ReadIndex."""
        index: int = await self._ask(_READ, lease, timeout)
        return index

    async def transfer_leadership(self, to: NodeId, timeout: float | None = None) -> None:
        await self._ask(_TRANSFER, to, timeout)

    async def status(self) -> Status:
        status: Status = await self._ask(_STATUS, None, 5.0)
        return status

    async def shutdown(self, *, transfer: bool = True) -> None:
        """Stop gracefully: a leader first hands leadership to its most up-to-date
        follower (waiting up to two election timeouts), then the node stops."""
        if transfer and self.is_leader and not self._stopped and len(self.config.voters) > 1:
            try:
                status = await self.status()
                peers = [p for p in status.peers if p.id != self.id and p.recent_active]
                if peers:
                    target = max(peers, key=lambda p: p.match).id
                    self._note(logging.INFO, f"Stopping: handing leadership to node {target}")
                    await self.transfer_leadership(target, timeout=1.0)
                    deadline = 2 * self.config.timing.election_max_s
                    async with asyncio.timeout(deadline):
                        while self.is_leader and not self._stopped:
                            await asyncio.sleep(self.config.timing.tick_s)
            except (RaftError, TimeoutError) as exc:
                self._note(logging.WARNING, f"Leadership transfer before stopping failed: {exc}")
        self.stop()

    # == the inbox ===================================================================

    def block_peers(self, peers: set[NodeId]) -> None:
        """Test-only fault injection: drop every message to or from ``peers`` (a network
        partition as seen from this node; the connections stay up)."""
        self.blocked = frozenset(peers)

    def hold_peers(self, peers: set[NodeId]) -> None:
        """Test-only fault injection: keep every message from ``peers`` instead of
        delivering it (a link that delays without losing). Messages held from a peer that
        is no longer in ``peers`` are delivered now, in the order they arrived, all in one
        batch (the core steps them all before it sends anything)."""
        self.held = frozenset(peers)
        keep: list[Message] = []
        for msg in self._held_messages:
            if msg.src in self.held:
                keep.append(msg)
                continue
            try:
                self._inbox.put_nowait((_MSG, msg, None))
            except asyncio.QueueFull:
                self.dropped_messages += 1
        self._held_messages = keep

    def _send(self, msg: Message) -> None:
        if msg.dst not in self.blocked:
            self.transport.send(msg)

    def _on_message(self, msg: Message) -> None:
        """Transport callback: never blocks; drops when the inbox is full (Raft retries)."""
        if msg.src in self.blocked:
            return
        if msg.src in self.held:
            if len(self._held_messages) < self.config.inbox_size:
                self._held_messages.append(msg)
            else:
                self.dropped_messages += 1
            return
        try:
            self._inbox.put_nowait((_MSG, msg, None))
        except asyncio.QueueFull:
            self.dropped_messages += 1

    async def _ask(self, kind: int, payload: Any, timeout: float | None) -> Any:
        if self._stopped or self._stopping.is_set():
            raise NodeStopped("the node is stopping")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._asks.add(future)
        # Waiting for room in the inbox must not outlive the answer (e.g. a stop).
        put = asyncio.ensure_future(self._inbox.put((kind, payload, future)))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no outcome within {timeout} s") from None
        finally:
            self._asks.discard(future)
            if not put.done():
                put.cancel()

    # == the core task ===============================================================

    async def _core_task(self) -> None:
        loop = asyncio.get_running_loop()
        timing = self.config.timing
        tick_s = timing.tick_s
        max_catch_up = 2 * timing.election_max_ticks
        self._now = loop.time()
        next_tick = self._now + tick_s
        inbox = self._inbox
        await self._process_ready()
        while not self._stopping.is_set():
            wait = next_tick - loop.time()
            if wait > 0 and inbox.empty():
                try:
                    async with asyncio.timeout(wait):
                        item = await inbox.get()
                    self._handle(item)
                except TimeoutError:
                    pass
            handled = 0
            while handled < self.config.max_batch and not inbox.empty():
                self._handle(inbox.get_nowait())
                handled += 1
            now = self._now = loop.time()
            if now >= next_tick:
                missed = int((now - next_tick) / tick_s) + 1
                if missed > 2:
                    # The clock jumped (a pause, SIGSTOP): read what the peers sent in the
                    # meantime before the burst of ticks decides they are gone.
                    await asyncio.sleep(0)
                    while not inbox.empty():
                        self._handle(inbox.get_nowait())
                if not self._waiting_for_pinned_campaign():
                    for _ in range(min(missed, max_catch_up)):
                        self._core.tick()
                next_tick += missed * tick_s
            await self._process_ready()
            if self.fatal is not None:
                return

    def _handle(self, item: tuple[int, Any, asyncio.Future[Any] | None]) -> None:
        kind, payload, future = item
        core = self._core
        if kind == _MSG:
            problem = message_problem(payload)
            if problem is not None or payload.dst != self.id:
                self.dropped_messages += 1
                log.warning("dropped a bad message from node %s: %s", payload.src, problem)
                return
            self._last_heard[payload.src] = self._now
            if (
                isinstance(payload, AppendEntriesResponse | HeartbeatResponse)
                and payload.term == core.term
            ):
                self._acked[payload.src] = (self._now, payload.term)
            core.step(payload)
            return
        assert future is not None
        if future.done():
            return  # the asker gave up
        try:
            if kind == _PROPOSE:
                data, entry_kind = payload
                index, term = core.propose(data, entry_kind)
                self._fail_proposals_from(index)  # older entries there were truncated away
                self._proposals[index] = (term, future)
            elif kind == _READ:
                if core.role is Role.LEADER and (
                    "stale-read" in self.config.bugs or (payload and self._lease_holds())
                ):
                    future.set_result(self.applied)  # no round of heartbeats
                    return
                context = next(self._read_ids).to_bytes(8, "big")
                core.read_index(context)
                self._reads[context] = future
            elif kind == _TRANSFER:
                core.transfer_leader(payload)
                future.set_result(None)
            elif kind == _STATUS:
                future.set_result(core.status())
        except RaftError as exc:  # NotLeader, ProposalDropped, UsageError: the asker's answer
            future.set_exception(exc)

    def _lease_holds(self) -> bool:
        """A quorum acknowledged this leader, in this term, within the lease; and it has
        committed (and applied) an entry of its own term."""
        core = self._core
        if core.log.term(core.log.committed) != core.term or self.applied < core.log.committed:
            return False
        horizon = self._now - LEASE_FRACTION * self.config.timing.election_min_s
        fresh = 1 + sum(
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
            except StorageError as exc:
                self.fatal = exc
                self._note(logging.CRITICAL, f"Storage failed, stopping the node: {exc}")
                self._stopping.set()
                return
            core.advance(rd)

    async def _handle_ready(self, rd: Ready) -> None:
        send = self._send
        for msg in rd.messages:  # 0. need no durability
            send(msg)
        if "ack-before-fsync" in self.config.bugs:  # the injected bug: promises before the write
            for msg in rd.persisted_messages:
                send(msg)
            if rd.persisted_messages and (rd.entries or rd.must_sync):
                await asyncio.sleep(_BUGGY_WRITE_DELAY_S)
        if rd.entries or rd.must_sync:  # 1-2. one durable write
            await self.storage.save_async(rd.hard_state or self._deferred_hard_state, rd.entries)
            self._deferred_hard_state = None
        elif rd.hard_state is not None:
            # Only the commit index moved: it can be relearned, so it rides along with
            # the next durable write instead of costing an fsync of its own.
            self._deferred_hard_state = rd.hard_state
        for event in rd.events:  # logged once durable: a vote on screen is a vote on disk
            self.events.event(event)
            if isinstance(event, ev.LogTruncated):
                self._fail_proposals_from(event.from_index)
        if "ack-before-fsync" not in self.config.bugs:
            for msg in rd.persisted_messages:  # 3. acknowledgements, now true
                send(msg)
        if rd.soft_state is not None:
            self.role = rd.soft_state.role
            self.leader = rd.soft_state.leader
            if self.leader != NO_NODE:
                self._heard_leader = True
        self.term = self._core.term
        for entry in rd.committed_entries:  # 4. apply, in order, once
            self._apply(entry)
        self.commit = self._core.log.committed
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

    def _apply(self, entry: Entry) -> None:
        result: Any = None
        if entry.kind is EntryKind.NORMAL or entry.kind is EntryKind.CLIENT:
            result = self.state_machine.apply(entry)
        self.applied = entry.index
        pending = self._proposals.pop(entry.index, None)
        if pending is None:
            return
        term, future = pending
        if future.done():
            return
        if term == entry.term:
            future.set_result((entry.index, entry.term, result))
        else:
            future.set_exception(
                LeadershipLost(f"entry {entry.index} went to another leader's entry")
            )

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
        for lost in [i for i in self._proposals if i >= index]:
            _term, future = self._proposals.pop(lost)
            if not future.done():
                future.set_exception(
                    LeadershipLost(f"entry {lost} was replaced by another leader's entry")
                )

    def _fail_everything(self) -> None:
        """The node stops: every waiting caller gets an answer. Proposals already in the
        log may still commit (outcome unknown); everything else never happened."""
        for _term, future in self._proposals.values():
            if not future.done():
                future.set_exception(OutcomeUnknown("the node stopped after accepting it"))
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
