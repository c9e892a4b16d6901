"""A seeded, single-threaded, deterministic simulation of a Raft cluster under faults.

One run: N nodes (real :class:`~raftlog.core.Raft` cores over simulated disks), a network
that can drop, duplicate, delay and reorder messages and be cut (whole partitions, one
link, one direction), a nemesis that also crashes nodes (losing unsynced writes, sometimes
in the middle of handling a Ready) and pauses them, and clients that append unique values
and read through ReadIndex. Virtual time is in milliseconds; a node ticks every
``TICK_MS``. Everything random comes from one ``random.Random(seed)``, so a seed replays
exactly.

A run has four phases:

1. chaos: ``steps`` events with faults (if any are enabled) and clients working;
2. heal: every fault is repaired; a leader must appear and every client must complete a
   new append within a bound (liveness);
3. rejoin: a follower is cut off and let back several times; the leader must stay leader
   in its term (PreVote and CheckQuorum keep a rejoining node from disrupting it);
4. converge: all members apply the same log; the client history must be linearizable and
   every acknowledged append must be in the final log where it was acknowledged.

With the ``membership`` fault the cluster also changes: spare nodes (started empty, with no
configuration) are added as learners, learners promoted, voters (the leader among them)
and learners removed, one single-server change at a time, among all the other faults.
Removed nodes keep running (they must not disturb the cluster) and may be added again.

The safety properties of :mod:`raftlog.sim.invariants` are checked after every step.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from raftlog.check.logcheck import LogOp, check_log_history
from raftlog.core.config import Config
from raftlog.core.errors import ConfChangeRefused, NotLeader, ProposalDropped
from raftlog.core.events import BecameLeader, Event
from raftlog.core.messages import (
    AppendEntriesResponse,
    InstallSnapshot,
    Message,
    RequestVoteResponse,
)
from raftlog.core.raft import Ready
from raftlog.core.types import NO_NODE, ConfState, Entry, Member, NodeId, ReadState, Role
from raftlog.sim.invariants import SafetyChecker, Violation
from raftlog.sim.node import (
    ApplyOrderError,
    Capture,
    CrashPoint,
    SimNode,
    SnapshotPolicy,
    snapshot_file_name,
)

TICK_MS = 10
ALL_FAULTS: tuple[str, ...] = (
    "drop",
    "duplicate",
    "delay",
    "partition",
    "partial",
    "asymmetric",
    "crash",
    "pause",
    "membership",
)
NETWORK_WEATHER = ("drop", "duplicate", "delay")

_FAULT_WEIGHTS = {
    "drop": 1,
    "duplicate": 1,
    "delay": 1,
    "partition": 2,
    "partial": 1,
    "asymmetric": 1,
    "crash": 4,
    "pause": 1,
    "membership": 4,
}
"""Crashes come most often: they are where durability bugs hide."""

_CRASH_TRIGGERS: tuple[tuple[str, Callable[[Ready], bool] | None], ...] = (
    ("the next Ready", None),
    (
        "a vote",
        lambda rd: any(
            isinstance(m, RequestVoteResponse) and m.granted
            for m in (*rd.messages, *rd.persisted_messages)
        ),
    ),
    ("an append", lambda rd: bool(rd.entries)),
    ("a commit", lambda rd: bool(rd.committed_entries)),
)
"""When an armed crash strikes: the moments where durability matters most."""


def parse_faults(text: str) -> frozenset[str]:
    """``all``, ``none`` or a comma-separated list of fault names."""
    text = text.strip()
    if text == "all":
        return frozenset(ALL_FAULTS)
    if text in ("none", ""):
        return frozenset()
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = names - set(ALL_FAULTS)
    if unknown:
        raise ValueError(
            f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(ALL_FAULTS)}"
        )
    return names


@dataclass(frozen=True)
class SimOptions:
    nodes: int = 3
    faults: frozenset[str] = frozenset(ALL_FAULTS)
    steps: int = 4000
    clients: int = 3
    bugs: frozenset[str] = frozenset()
    trace: bool = False
    """Keep every trace line (otherwise only the last ``trace_tail``)."""
    trace_tail: int = 60


@dataclass
class SimResult:
    seed: int
    nodes: int
    violation: Violation | None
    steps: int
    virtual_ms: int
    ops_ok: int
    ops_fail: int
    ops_info: int
    max_term: int
    commit: int
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violation is None


@dataclass(frozen=True)
class _SnapshotDelivery:
    """An InstallSnapshot in flight, with the bytes of the snapshot it announces."""

    msg: InstallSnapshot
    data: bytes


# -- the event queue ------------------------------------------------------------------

_TICK, _DELIVER, _CLIENT_REQ, _CLIENT_RESP, _CLIENT_TIMEOUT, _CLIENT_NEXT, _CALL = range(7)


@dataclass
class _Request:
    op_id: int
    client: int
    kind: str  # "append" | "read"
    value: bytes
    node: NodeId


@dataclass
class _Response:
    op_id: int
    client: int
    status: str  # "ok" | "fail"
    position: int = 0
    result: tuple[bytes, ...] = ()
    leader_hint: NodeId = NO_NODE


@dataclass
class _OpenOp:
    op_id: int
    kind: str
    value: bytes
    call: int
    node: NodeId


class _Client:
    def __init__(self, client_id: int, target: NodeId) -> None:
        self.id = client_id
        self.target = target
        self.open: _OpenOp | None = None
        self.counter = 0
        self.ok_since_heal = False


class Cluster:
    """One simulated run. Use :func:`run` rather than driving it by hand."""

    def __init__(self, seed: int, options: SimOptions) -> None:
        self.seed = seed
        self.opt = options
        self.rng = random.Random(seed)
        self.now = 0
        self.steps = 0
        self._queue: list[tuple[int, int, int, Any]] = []
        self._seq = itertools.count()
        self.checker = SafetyChecker()
        self._trace: deque[tuple[int, str, Any]] = deque(
            maxlen=None if options.trace else options.trace_tail
        )
        initial = [NodeId(i) for i in range(1, options.nodes + 1)]
        # Spare nodes join and leave when membership changes are in the mix.
        spares = 2 if "membership" in options.faults else 0
        ids = [NodeId(i) for i in range(1, options.nodes + spares + 1)]
        self.ids = ids
        """Every node there is (members or not)."""
        self.initial = initial
        rng = self.rng
        # Per-run protocol parameters: small windows and batches make the interesting
        # interleavings (partial replication, probing, pipelining) common.
        # Narrow timeout ranges make split votes, and so competing candidates, common.
        timeout_max = rng.choice((20, 20, 12, 11))
        heartbeat_ticks = rng.choice((1, 2, 3))
        max_inflight_msgs = rng.choice((1, 2, 4, 64))
        max_entries_per_msg = rng.choice((1, 1, 2, 3, 8, 64))
        # Snapshots (drawn from their own generator, so that the rest of a seed's run
        # keeps its draws): none in some runs; in others every few entries, keeping a
        # few entries for followers a little behind, so that InstallSnapshot is common.
        snap_rng = random.Random(seed * 7919 + 17)
        self.snapshot_policy = SnapshotPolicy(
            entries=snap_rng.choice((0, 3, 5, 8, 20, 50)),
            keep_entries=snap_rng.choice((0, 0, 1, 2, 5)),
        )
        self._snap_rng = snap_rng
        # One run in five is the original Raft, without PreVote and CheckQuorum: more
        # elections, and schedules that the two protections would rule out (the safety
        # properties must hold without them; the stability check does not apply).
        self.classic = snap_rng.random() < 0.2
        self.nodes: dict[NodeId, SimNode] = {}
        for node_id in ids:
            config = Config(
                id=node_id,
                voters=frozenset(initial) if node_id in initial else frozenset(),
                election_timeout_min_ticks=10,
                election_timeout_max_ticks=timeout_max,
                heartbeat_ticks=heartbeat_ticks,
                max_inflight_msgs=max_inflight_msgs,
                max_entries_per_msg=max_entries_per_msg,
                pre_vote=not self.classic,
                check_quorum=not self.classic,
                bugs=options.bugs,
            )
            node = SimNode(
                node_id,
                config,
                random.Random(rng.getrandbits(64)),
                self,
                snapshots=self.snapshot_policy,
            )
            self.nodes[node_id] = node
            self.checker.restarted(node_id, node.raft)
            self._schedule(rng.randint(0, TICK_MS - 1), _TICK, node_id)
        # Network state.
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.max_delay_ms = 0
        self._held: dict[NodeId, list[tuple[int, Any]]] = {n: [] for n in ids}
        self._missed_ticks: dict[NodeId, int] = dict.fromkeys(ids, 0)
        self._restart_at: dict[NodeId, int] = {}
        # Clients and their history.
        self.clients = [_Client(c, rng.choice(ids)) for c in range(options.clients)]
        self.history: list[LogOp] = []
        self._op_ids = itertools.count(1)
        self._pending_appends: dict[NodeId, dict[int, tuple[int, _Request]]] = {n: {} for n in ids}
        self._pending_reads: dict[NodeId, dict[bytes, _Request]] = {n: {} for n in ids}
        self.accepting_ops = True
        self.chaos = True
        """In the chaos phase (faults may be injected)."""
        self.heal_time = -1
        for client in self.clients:
            self._schedule(rng.randint(0, 50), _CLIENT_NEXT, client.id)
        self.faults_injected = 0
        self.step_budget = 30 * options.steps + 50_000
        self.epoch = 0
        self._logs_changed = True
        """Some node's log (or liveness) changed since the last electability check."""
        self._checked_top = 0
        """Bumped by heal_all, so that repairs scheduled before it do nothing after."""
        self._quorum_checked = 0
        """Committed indexes up to here were checked to be on a majority."""
        self._last_leader: NodeId | None = None
        self._drill: tuple[NodeId, int] | None = None
        """A stale-configuration drill under way: (its first leader, when its cut ends)."""
        self.conf_changes = 0

    # == the event loop ==============================================================

    def _schedule(self, delay: int, kind: int, payload: Any) -> None:
        heapq.heappush(self._queue, (self.now + delay, next(self._seq), kind, payload))

    def call_later(self, delay: int, fn: Callable[[], None]) -> None:
        self._schedule(delay, _CALL, fn)

    def run_until(
        self,
        deadline: int | None = None,
        *,
        until: Callable[[], bool] | None = None,
        max_steps: int | None = None,
    ) -> bool:
        """Process events until ``until()`` holds (True), or the time or step budget runs
        out (False)."""
        stop_step = None if max_steps is None else self.steps + max_steps
        while self._queue:
            if self.steps > self.step_budget:
                raise Violation(
                    "Liveness",
                    f"the run took more than {self.step_budget} events: a message storm?",
                )
            if until is not None and until():
                return True
            if stop_step is not None and self.steps >= stop_step:
                return False
            time, _seq, kind, payload = self._queue[0]
            if deadline is not None and time > deadline:
                self.now = deadline
                return until is not None and until()
            heapq.heappop(self._queue)
            self.now = time
            self.steps += 1
            self._dispatch(kind, payload)
        return until is not None and until()

    def _dispatch(self, kind: int, payload: Any) -> None:
        if kind == _TICK:
            self._on_tick(payload)
        elif kind == _DELIVER:
            self._on_deliver(payload)
        elif kind == _CLIENT_REQ:
            self._on_client_request(payload)
        elif kind == _CLIENT_RESP:
            self._on_client_response(payload)
        elif kind == _CLIENT_TIMEOUT:
            self._on_client_timeout(*payload)
        elif kind == _CLIENT_NEXT:
            self._start_op(self.clients[payload])
        elif kind == _CALL:
            payload()

    def _after(self, node: SimNode) -> None:
        """After anything happened to ``node``: run its Ready loop, then check safety."""
        try:
            node.process_ready()
        except ApplyOrderError as exc:
            raise Violation("Apply order", str(exc)) from exc
        if node.alive:
            hard, _ = node.disk.durable.initial_state()
            self.checker.after_step(node.id, node.raft, hard.term, hard.commit)
        top = self.checker.top_committed
        if top > self._quorum_checked:
            self._check_majority(node, top)
        if self._logs_changed or top != self._checked_top:
            self._logs_changed = False
            self._checked_top = top
            if self._conf_settled():
                voters = self.voters()
                self.checker.check_electable(
                    {n.id: self._log_shape(n, top) for n in self.nodes.values() if n.id in voters}
                )

    def _conf_settled(self) -> bool:
        """Every member runs with the committed configuration (no change in flight)."""
        conf = self.checker.committed_conf
        if conf is None:
            return all(
                n.raft.conf.voters == frozenset(self.initial)
                for n in self.nodes.values()
                if n.alive and n.id in self.initial
            )
        return all(
            n.raft.conf == conf for n in self.nodes.values() if n.alive and n.id in conf.ids()
        )

    def _check_majority(self, node: SimNode, top: int) -> None:
        """Every newly committed entry is durable on a majority of the voters of the
        configuration the committing leader had (§4.1: in force when appended)."""
        checked, self._quorum_checked = self._quorum_checked, top
        raft = node.raft
        if raft.role is not Role.LEADER:
            return  # learned from a leader, which was checked when it committed
        voters = raft.voters
        for index in range(checked + 1, top + 1):
            known = self.checker.committed.get(index)
            if known is None:
                continue
            holders = [v for v in voters if self._holds_durably(self.nodes[v], index, known[0])]
            if len(holders) * 2 <= len(voters):
                raise Violation(
                    "Committed on a majority",
                    f"entry {index}@{known[0]} committed by leader {node.id} (term "
                    f"{raft.term}) is durable only on {sorted(holders)} of the voters "
                    f"{sorted(voters)}",
                )

    @staticmethod
    def _holds_durably(node: SimNode, index: int, term: int) -> bool:
        disk = node.disk.durable
        if index <= disk.snapshot().index or index < disk.first_index():
            return True  # in a durable snapshot, which holds only committed entries
        return index <= disk.last_index() and disk.term(index) == term

    def _log_shape(self, node: SimNode, at: int = 0) -> tuple[int, int, int | None]:
        """(last index, last term, term at index ``at``) of the log the node would run
        with: its memory if alive, its disk if not."""
        covered = self.checker.committed[at][0] if at in self.checker.committed else None
        if node.alive:
            log = node.raft.log
            term_at = log.term(at)
            if term_at is None and at < log.first_index():
                term_at = covered  # compacted into a snapshot: it holds the entry
            return log.last_index(), log.last_term(), term_at
        disk = node.disk.durable
        last = disk.last_index()
        if at < disk.first_index() - 1:
            term_at = covered
        else:
            term_at = disk.term(at) if at <= last else None
        return last, disk.term(last), term_at

    # == nodes =======================================================================

    def _on_tick(self, node_id: NodeId) -> None:
        self._schedule(TICK_MS, _TICK, node_id)
        node = self.nodes[node_id]
        if not node.alive:
            return
        if node.paused:
            self._missed_ticks[node_id] += 1
            return
        node.raft.tick()
        self._after(node)

    def _on_deliver(self, payload: Message | _SnapshotDelivery) -> None:
        msg = payload.msg if isinstance(payload, _SnapshotDelivery) else payload
        node = self.nodes[msg.dst]
        if not node.alive or (msg.src, msg.dst) in self.cut:
            self._trace_add("lost", msg)
            return
        if node.paused:
            self._held[msg.dst].append((_DELIVER, payload))
            return
        self._trace_add("recv", msg)
        if isinstance(payload, _SnapshotDelivery):
            node.stage(payload.msg.snapshot, payload.data)
            if self._snap_rng.random() < 0.5:  # the sender hears that the transfer worked
                self.call_later(1, functools.partial(self._report, msg.src, msg.dst, True))
        node.raft.step(msg)
        self._after(node)

    def _report(self, sender: NodeId, to: NodeId, ok: bool) -> None:
        node = self.nodes[sender]
        if node.alive and not node.paused:
            node.raft.report_snapshot(to, ok=ok)
            self._after(node)

    # NodeObserver --------------------------------------------------------------------

    def send(self, node: SimNode, msg: Message) -> None:
        if isinstance(msg, AppendEntriesResponse) and msg.success:
            self.checker.acknowledged(node.id, node.raft, msg.term, msg.match_index)
        elif isinstance(msg, RequestVoteResponse) and msg.granted:
            self.checker.voted(node.id, msg.term, msg.dst)
        payload: Message | _SnapshotDelivery = msg
        if isinstance(msg, InstallSnapshot):
            name = snapshot_file_name(msg.snapshot.index, msg.snapshot.term)
            payload = _SnapshotDelivery(msg, node.disk.files[name])
        link = (msg.src, msg.dst)
        rng = self.rng
        if link in self.cut or (self.drop_rate and rng.random() < self.drop_rate):
            self._trace_add("cut" if link in self.cut else "drop", msg)
            if isinstance(msg, InstallSnapshot) and self._snap_rng.random() < 0.5:
                # The transfer failed, and the sender hears of it.
                self.call_later(2, functools.partial(self._report, msg.src, msg.dst, False))
            return
        copies = 2 if self.dup_rate and rng.random() < self.dup_rate else 1
        for _ in range(copies):
            delay = rng.randint(1, 4)
            if self.max_delay_ms:
                delay += rng.randint(0, self.max_delay_ms)
            self._schedule(delay, _DELIVER, payload)

    def ready(self, node: SimNode, rd: Ready) -> None:
        for event in rd.events:
            self._trace_add("event", event)
            if isinstance(event, BecameLeader):
                previous, self._last_leader = self._last_leader, node.id
                if self._drill is not None and self.chaos and self._drill[0] != node.id:
                    old, until = self._drill
                    self._drill = None
                    self.call_later(
                        0,
                        functools.partial(
                            self.change_membership,
                            at=node,
                            remove=old,
                            cut_ms=max(0, until - self.now) + self._snap_rng.randint(200, 500),
                        ),
                    )
                elif (
                    self.chaos
                    and "membership" in self.opt.faults
                    and previous not in (None, node.id)
                    and self._snap_rng.random() < 0.4
                ):
                    # Operators change membership right after a failover, e.g. to remove
                    # the old leader: the new one is asked at once, before it may have
                    # committed an entry of its own term.
                    self.call_later(
                        self._snap_rng.randint(0, 3),
                        functools.partial(self.change_membership, at=node, remove=previous),
                    )
        if rd.entries:
            self.checker.appended(node.id, node.raft, rd.entries)
            self._logs_changed = True

    def applied(self, node: SimNode, entry: Entry, position: int) -> None:
        self.checker.applied(node.id, node.raft, entry)
        pending = self._pending_appends[node.id].pop(entry.index, None)
        if pending is None:
            return
        term, request = pending
        if term == entry.term:
            self._respond(request, _Response(request.op_id, request.client, "ok", position))
        else:
            # Another entry was committed at that index: ours never will be.
            self._respond(request, _Response(request.op_id, request.client, "fail"))

    def read_ready(self, node: SimNode, read: ReadState) -> None:
        request = self._pending_reads[node.id].pop(read.context, None)
        if request is not None:
            result = tuple(node.state_machine)
            self._respond(request, _Response(request.op_id, request.client, "ok", result=result))

    def read_dropped(self, node: SimNode, context: bytes) -> None:
        request = self._pending_reads[node.id].pop(context, None)
        if request is not None:
            self._respond(request, _Response(request.op_id, request.client, "fail"))

    def snapshot_started(self, node: SimNode, capture: Capture) -> None:
        # The file is written in the background while the node goes on.
        delay = self._snap_rng.randint(0, 40)
        self.call_later(delay, functools.partial(self._finish_snapshot, node, capture))

    def _finish_snapshot(self, node: SimNode, capture: Capture) -> None:
        node.finish_snapshot(capture)
        self.note(
            f"node {node.id} snapshot at {capture.meta.index}; log starts at "
            f"{node.disk.volatile.first_index()}"
        )
        self._logs_changed = True
        self._after(node)

    def restored(self, node: SimNode, index: int) -> None:
        self.checker.restored(node.id, index, node.state_machine)

    def crashed(self, node: SimNode, point: CrashPoint | None, lost_writes: int) -> None:
        where = f" ({point.value})" if point else ""
        self.note(f"node {node.id} crashed{where}, {lost_writes} unsynced writes lost")
        self._logs_changed = True
        self._pending_appends[node.id].clear()
        self._pending_reads[node.id].clear()
        self._held[node.id].clear()
        downtime = self._restart_at.pop(node.id, None)
        if downtime is not None:
            self.call_later(downtime, functools.partial(self._restart, node))

    def _restart(self, node: SimNode) -> None:
        if node.alive:
            return
        node.restart()
        self.note(f"node {node.id} restarted (life {node.lives})")
        self.checker.restarted(node.id, node.raft)
        self._after(node)

    # == clients =====================================================================

    def _start_op(self, client: _Client) -> None:
        if not self.accepting_ops or client.open is not None:
            return
        rng = self.rng
        op_id = next(self._op_ids)
        if rng.random() < 0.7:
            client.counter += 1
            kind, value = "append", f"c{client.id}-{client.counter}".encode()
        else:
            kind, value = "read", b""
        client.open = _OpenOp(op_id, kind, value, self.now, client.target)
        request = _Request(op_id, client.id, kind, value, client.target)
        self._schedule(rng.randint(1, 3), _CLIENT_REQ, request)
        self._schedule(60 * TICK_MS, _CLIENT_TIMEOUT, (client.id, op_id))

    def _on_client_request(self, request: _Request) -> None:
        node = self.nodes[request.node]
        if not node.alive:
            return  # the client will time out
        if node.paused:
            self._held[node.id].append((_CLIENT_REQ, request))
            return
        raft = node.raft
        try:
            if request.kind == "append":
                index, term = raft.propose(request.value)
                self._pending_appends[node.id][index] = (term, request)
            else:
                context = f"r{request.op_id}".encode()
                raft.read_index(context)
                self._pending_reads[node.id][context] = request
        except NotLeader as exc:
            self._respond(
                request,
                _Response(request.op_id, request.client, "fail", leader_hint=exc.leader_hint),
            )
        except ProposalDropped:
            self._respond(request, _Response(request.op_id, request.client, "fail"))
        self._after(node)

    def _respond(self, request: _Request, response: _Response) -> None:
        self._schedule(self.rng.randint(1, 3), _CLIENT_RESP, response)

    def _on_client_response(self, response: _Response) -> None:
        client = self.clients[response.client]
        op = client.open
        if op is None or op.op_id != response.op_id:
            return  # the client gave up on it already
        self._finish(client, response.status, response.position, response.result)
        if response.status == "fail":
            hint = response.leader_hint
            client.target = hint if hint != NO_NODE else self.rng.choice(self.ids)
        elif op.kind == "append" and 0 <= self.heal_time <= op.call:
            client.ok_since_heal = True

    def _on_client_timeout(self, client_id: int, op_id: int) -> None:
        client = self.clients[client_id]
        if client.open is None or client.open.op_id != op_id:
            return
        # Unknown outcome: the append may yet commit; a read without answer says nothing.
        self._finish(client, "info" if client.open.kind == "append" else "fail", 0, ())
        client.target = self.rng.choice(self.ids)

    def _finish(
        self, client: _Client, status: str, position: int, result: tuple[bytes, ...]
    ) -> None:
        op = client.open
        assert op is not None
        client.open = None
        self.history.append(
            LogOp(
                id=op.op_id,
                client=client.id,
                kind="append" if op.kind == "append" else "read",
                call=float(op.call),
                ret=math.inf if status == "info" else float(self.now),
                status="ok" if status == "ok" else ("info" if status == "info" else "fail"),
                value=op.value,
                position=position,
                result=result,
            )
        )
        self._schedule(self.rng.randint(0, 20), _CLIENT_NEXT, client.id)

    # == the nemesis =================================================================

    def _down_nodes(self) -> int:
        voters = self.voters()
        return sum(1 for n in self.nodes.values() if n.id in voters and (not n.alive or n.paused))

    def voters(self) -> frozenset[NodeId]:
        """The voters of the configuration in force (the latest committed one, as far as
        the checker has seen; the initial one before any)."""
        conf = self.checker.committed_conf
        return conf.voters if conf is not None else frozenset(self.initial)

    def nemesis_step(self) -> None:
        """Inject one fault now and schedule its repair; then schedule the next one."""
        rng = self.rng
        faults = sorted(self.opt.faults)
        if not faults or not self.chaos:
            return
        fault = rng.choices(faults, weights=[_FAULT_WEIGHTS[f] for f in faults])[0]
        duration = rng.randint(30, 1000)
        self.faults_injected += 1
        ids = self.ids
        if fault in NETWORK_WEATHER:
            self._weather(fault, duration)
        elif fault == "partition":
            leader = self.leader()
            if leader is not None and rng.random() < 0.4:
                side_a = {leader.id}  # isolate the leader
            else:
                shuffled = ids[:]
                rng.shuffle(shuffled)
                side_a = set(shuffled[: rng.randint(1, len(ids) // 2)])
            links = {
                (a, b) for a in ids for b in ids if a != b and ((a in side_a) != (b in side_a))
            }
            self._cut(links, duration, f"partition {sorted(side_a)} | {sorted(set(ids) - side_a)}")
        elif fault == "partial":
            a, b = rng.sample(ids, 2)
            self._cut({(a, b), (b, a)}, duration, f"cut link {a} <-> {b}")
        elif fault == "asymmetric":
            a, b = rng.sample(ids, 2)
            self._cut({(a, b)}, duration, f"cut link {a} -> {b}")
        elif fault == "crash":
            self._crash_some(duration)
        elif fault == "pause":
            self._pause_some(duration)
        elif fault == "membership":
            self.change_membership()
        self.call_later(rng.randint(0, 300), self.nemesis_step)

    def change_membership(
        self,
        only: str | None = None,
        at: SimNode | None = None,
        remove: NodeId | None = None,
        cut_ms: int | None = None,
    ) -> None:
        """Ask the leader for one single-server change: add a spare (or removed) node as a
        learner, promote a learner, remove a learner, or remove a voter (the leader too)
        while more than three remain. The leader may refuse (a change in flight, a
        learner not caught up, no entry of its term committed yet): that is fine."""
        leader = at if at is not None else self.leader()
        if leader is None or not leader.alive or leader.raft.role is not Role.LEADER:
            return
        rng = self.rng
        conf = leader.raft.conf
        voters, learners = set(conf.voters), set(conf.learners)
        outsiders = [n for n in self.ids if n not in voters | learners]
        choices = []
        if outsiders:
            choices.append("add a learner")
        if learners:
            choices += ["promote", "promote", "promote", "remove a learner"]
        if len(voters) > 3:
            choices += ["remove a voter", "remove a voter"]
        if only is not None:
            choices = [c for c in choices if c == only]
        if remove is not None:
            choices = ["remove the old leader"] if remove in voters and len(voters) > 3 else []
        if not choices:
            return
        action = rng.choice(choices)
        if action == "add a learner":
            node = rng.choice(outsiders)
            learners.add(node)
        elif action == "promote":
            node = rng.choice(sorted(learners))
            learners.discard(node)
            voters.add(node)
        elif action == "remove a learner":
            node = rng.choice(sorted(learners))
            learners.discard(node)
        elif action == "remove the old leader":
            assert remove is not None
            node = remove
            voters.discard(node)
        else:
            node = leader.id if rng.random() < 0.3 else rng.choice(sorted(voters))
            voters.discard(node)
        members = tuple(Member(m, f"n{m}:7000") for m in sorted(voters | learners))
        new = ConfState(frozenset(voters), frozenset(learners), members)
        try:
            index, _term = leader.raft.propose_conf_change(new)
        except (ConfChangeRefused, NotLeader, ProposalDropped) as exc:
            self.note(f"nemesis: {action} {node}: refused: {exc}")
            return
        self.conf_changes += 1
        self.note(f"nemesis: {action} {node} at index {index} (leader {leader.id})")
        roll = self._snap_rng.random()
        drill = action == "promote" and len(conf.voters) % 2 == 0 and self._drill is None
        if drill and self._snap_rng.random() < 0.5:
            # The stale-configuration drill (the classic single-server change race): the
            # promotion reaches only the promoted node, the others elect a new leader
            # that at once removes this one while its own messages reach only one voter,
            # and this one comes back before that new leader is heard by everyone.
            window = rng.randint(300, 600)
            links = {(leader.id, n) for n in self.ids if n not in (leader.id, node)}
            self._cut(links, window, f"drill: node {leader.id} reaches only {node}")
            self._drill = (leader.id, self.now + window)
        elif cut_ms is not None:
            others = sorted(n for n in voters if n != leader.id)
            keep = rng.choice(others) if others else leader.id
            links = {(leader.id, n) for n in self.ids if n not in (leader.id, keep)}
            self._cut(links, cut_ms, f"drill: node {leader.id} reaches only {keep}")
        elif roll < 0.4:
            # Membership bugs live where a change reaches only part of the cluster: the
            # proposer's messages now reach just one other node for a while (often the
            # node the change is about).
            others = [n for n in self.ids if n != leader.id]
            keep = node if node in others and rng.random() < 0.5 else rng.choice(others)
            links = {(leader.id, n) for n in self.ids if n not in (leader.id, keep)}
            self._cut(links, rng.randint(50, 800), f"node {leader.id} reaches only {keep}")
        elif roll < 0.55 and leader.crash_at is None:
            # ... or the proposer dies while the change is on its way out.
            point = rng.choice(tuple(CrashPoint))
            self._restart_at[leader.id] = rng.randint(1, 400)
            leader.crash_at = point
            leader.crash_when = None
            self.note(f"nemesis: node {leader.id} will crash {point.value}, with the change")
        self._after(leader)
        if action == "add a learner" and self.chaos:
            # A learner is usually promoted once it has caught up (if it is refused, it
            # stays a learner until a later change).
            epoch = self.epoch
            self.call_later(
                rng.randint(100, 800),
                lambda: self.change_membership("promote") if self.epoch == epoch else None,
            )

    def _weather(self, fault: str, duration: int) -> None:
        rng = self.rng
        if fault == "drop":
            rate = rng.uniform(0.05, 0.4)
            self.drop_rate = rate

            def fair() -> None:
                self.drop_rate = 0.0
        elif fault == "duplicate":
            self.dup_rate = rng.uniform(0.05, 0.5)

            def fair() -> None:
                self.dup_rate = 0.0
        else:
            self.max_delay_ms = rng.randint(10, 200)

            def fair() -> None:
                self.max_delay_ms = 0

        self.note(f"nemesis: {fault} for {duration} ms")
        self.call_later(duration, fair)

    def _cut(self, links: set[tuple[NodeId, NodeId]], duration: int, label: str) -> None:
        new = links - self.cut
        self.cut |= new
        self.note(f"nemesis: {label} for {duration} ms")

        epoch = self.epoch

        def heal() -> None:
            if self.epoch == epoch:  # heal_all already repaired everything
                self.cut -= new
                self.note(f"nemesis: healed {label}")

        self.call_later(duration, heal)

    def _pick_victim(self, *, leader_bias: float = 0.5) -> SimNode | None:
        """A running node to hurt: the leader with probability ``leader_bias``, else any.
        None if hurting one more would usually leave no quorum running."""
        rng = self.rng
        candidates = [n for n in self.nodes.values() if n.alive and not n.paused]
        if not candidates:
            return None
        voters = len(self.voters())
        if self._down_nodes() >= (voters - 1) // 2 and rng.random() < 0.8:
            return None  # usually keep a quorum running so that the run makes progress
        leaders = [n for n in candidates if n.raft.role is Role.LEADER]
        if leaders and rng.random() < leader_bias:
            return rng.choice(leaders)
        return rng.choice(candidates)

    def _crash_some(self, downtime: int) -> None:
        rng = self.rng
        point = rng.choice((None, *CrashPoint))
        # Strike now, or in the middle of a Ready: the next one, or the next that matters
        # most (a vote, an append, a commit).
        trigger, when = rng.choices(_CRASH_TRIGGERS, weights=(1, 3, 2, 2))[0]
        node = self._pick_victim(leader_bias=0.0 if trigger == "a vote" else 0.5)
        if node is None:
            return
        if rng.random() < 0.5:
            downtime = rng.randint(1, 5)  # restarted at once, as by a supervisor
        self._restart_at[node.id] = downtime
        if point is None:
            node.crash(None)
            return
        node.crash_at = point
        node.crash_when = when
        self.note(f"nemesis: node {node.id} will crash {point.value}, at {trigger}")

    def _pause_some(self, duration: int) -> None:
        node = self._pick_victim()
        if node is None:
            return
        node.paused = True
        self.note(f"nemesis: node {node.id} paused for {duration} ms")
        self.call_later(duration, lambda: self._resume(node))

    def _resume(self, node: SimNode) -> None:
        if not node.paused:
            return
        node.paused = False
        self.note(f"node {node.id} resumed")
        if not node.alive:
            return
        # A process that wakes up sees the time it missed at once.
        missed = min(self._missed_ticks[node.id], node.config.election_timeout_max_ticks * 2)
        self._missed_ticks[node.id] = 0
        held, self._held[node.id] = self._held[node.id], []
        for _ in range(missed):
            node.raft.tick()
        self._after(node)
        for kind, payload in held:
            if kind == _DELIVER:
                self._on_deliver(payload)
            else:
                self._on_client_request(payload)

    def heal_all(self) -> None:
        """Repair every fault: the network becomes reliable, every node runs."""
        self.epoch += 1
        self.cut.clear()
        self.drop_rate = self.dup_rate = 0.0
        self.max_delay_ms = 0
        self.note("heal: network repaired, all nodes running")
        for node in self.nodes.values():
            node.crash_at = None
            if node.paused:
                self._resume(node)
            if not node.alive:
                self._restart_at.pop(node.id, None)
                self._restart(node)

    # == observation =================================================================

    def leader(self) -> SimNode | None:
        """The leader of the highest term, if a majority of its configuration's voters
        follow it."""
        live = [n for n in self.nodes.values() if n.alive]
        leaders = [n for n in live if n.raft.role is Role.LEADER]
        if not leaders:
            return None
        best = max(leaders, key=lambda n: n.raft.term)
        voters = best.raft.voters
        followers = sum(
            1
            for n in live
            if n.id in voters and n.raft.term == best.raft.term and n.raft.leader == best.id
        )
        return best if followers * 2 > len(voters) else None

    def note(self, text: str) -> None:
        self._trace_add("note", text)

    def _trace_add(self, kind: str, item: Any) -> None:
        self._trace.append((self.now, kind, item))

    def trace_lines(self) -> list[str]:
        return [format_trace(t, kind, item) for t, kind, item in self._trace]


def format_trace(t: int, kind: str, item: Any) -> str:
    stamp = f"{t:>7}ms"
    if kind == "event":
        assert isinstance(item, Event)
        return f"{stamp} node {item.node} [{item.role.value} t{item.term}] {item.describe()}"
    if kind == "note":
        return f"{stamp} -- {item}"
    return f"{stamp}    {kind} {item.describe()}"


# == one run ===========================================================================


def run(seed: int, options: SimOptions) -> SimResult:
    """Run one seeded simulation and check it. Never raises for a property violation: the
    result carries it."""
    cluster = Cluster(seed, options)
    violation: Violation | None = None
    try:
        _run_phases(cluster)
    except Violation as exc:
        violation = exc
    return _result(cluster, violation)


def _run_phases(cluster: Cluster) -> None:
    opt = cluster.opt
    election_ms = 20 * TICK_MS  # the longest election timeout

    # 1. Chaos.
    if opt.faults:
        cluster.call_later(cluster.rng.randint(100, 400), cluster.nemesis_step)
    cluster.run_until(max_steps=opt.steps)

    # 2. Heal: a leader and a successful append per client within a bound.
    cluster.chaos = False
    cluster.heal_all()
    heal_time = cluster.heal_time = cluster.now
    if not cluster.run_until(
        heal_time + 30 * election_ms, until=lambda: cluster.leader() is not None
    ):
        raise Violation(
            "Liveness", f"no leader within {30 * election_ms} ms of healing every fault"
        )
    if not cluster.run_until(
        heal_time + 60 * election_ms, until=lambda: all(c.ok_since_heal for c in cluster.clients)
    ):
        stuck = [c.id for c in cluster.clients if not c.ok_since_heal]
        raise Violation(
            "Liveness",
            f"clients {stuck} completed no append within {60 * election_ms} ms of healing",
        )

    # 3. Rejoin: cut a follower off, let it back, and the leader must not be disturbed.
    for _round in range(0 if cluster.classic else 3):
        leader = cluster.leader()
        if leader is None:
            raise Violation("Liveness", "the leader vanished with a healthy network")
        members = leader.raft.conf.ids()
        victim = cluster.rng.choice(sorted(n for n in members if n != leader.id))
        term = leader.raft.term
        links = {(victim, n) for n in cluster.ids if n != victim} | {
            (n, victim) for n in cluster.ids if n != victim
        }
        cluster.cut |= links
        cluster.note(f"rejoin check: node {victim} cut off")
        cluster.run_until(cluster.now + 2 * election_ms)
        cluster.cut -= links
        cluster.note(f"rejoin check: node {victim} back")
        cluster.run_until(cluster.now + election_ms)
        now_leader = cluster.leader()
        terms = {n.raft.term for n in cluster.nodes.values() if n.id in members}
        if now_leader is not leader or leader.raft.term != term or max(terms) != term:
            raise Violation(
                "PreVote/CheckQuorum stability",
                f"node {victim} rejoined and disturbed leader {leader.id} of term {term}: "
                f"now leader {now_leader.id if now_leader else None}, terms {sorted(terms)}",
            )

    # 4. Converge and check the history.
    cluster.accepting_ops = False
    if not cluster.run_until(
        cluster.now + 30 * election_ms,
        until=lambda: all(c.open is None for c in cluster.clients) and _converged(cluster),
    ):
        raise Violation("Liveness", "nodes did not converge on one applied log after healing")
    leader = cluster.leader()
    final = (
        leader.state_machine if leader is not None else cluster.nodes[cluster.ids[0]].state_machine
    )
    verdict = check_log_history(cluster.history, final)
    if not verdict.ok:
        raise Violation("Linearizability", "; ".join(verdict.problems))


def _converged(cluster: Cluster) -> bool:
    leader = cluster.leader()
    if leader is None:
        return False
    nodes = [n for n in cluster.nodes.values() if n.id in leader.raft.conf.ids()]
    first = leader
    return all(
        n.alive
        and n.applied_index == first.applied_index
        and n.raft.log.committed == n.applied_index
        and n.raft.log.last_index() == first.raft.log.last_index()
        for n in nodes
    )


def _result(cluster: Cluster, violation: Violation | None) -> SimResult:
    counts = {"ok": 0, "fail": 0, "info": 0}
    for op in cluster.history:
        counts[op.status] += 1
    return SimResult(
        seed=cluster.seed,
        nodes=cluster.opt.nodes,
        violation=violation,
        steps=cluster.steps,
        virtual_ms=cluster.now,
        ops_ok=counts["ok"],
        ops_fail=counts["fail"],
        ops_info=counts["info"],
        max_term=max(n.raft.term for n in cluster.nodes.values()),
        commit=max(n.raft.log.committed for n in cluster.nodes.values()),
        trace=cluster.trace_lines(),
    )


def nodes_for_seed(seed: int, sizes: Iterable[int]) -> int:
    """The cluster size a seed runs with, for a list of sizes (replayable from the seed)."""
    sizes = list(sizes)
    return sizes[seed % len(sizes)]
