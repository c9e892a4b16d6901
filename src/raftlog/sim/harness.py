"""A hand-driven cluster: nothing happens unless a test (or a golden script) says so.

Nodes are :class:`~raftlog.sim.node.SimNode` (the same Ready handling as the simulator),
with no randomness in message order and no crash points: messages wait in flight until
``deliver`` or ``stabilize`` hands them over, in the order they were sent. Every event and
delivered message becomes an output line, which is what golden scripts compare.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from raftlog.core import events as ev
from raftlog.core.config import Config
from raftlog.core.errors import RaftError
from raftlog.core.messages import Heartbeat, HeartbeatResponse, Message
from raftlog.core.raft import Ready, Status
from raftlog.core.types import ConfState, Entry, EntryKind, NodeId, ReadState, show_data
from raftlog.sim.node import Capture, CrashPoint, SimNode

_HEARTBEAT_EVENTS = (ev.HeartbeatSent, ev.HeartbeatReceived)
_HEARTBEAT_MESSAGES = (Heartbeat, HeartbeatResponse)


@dataclass
class HarnessOptions:
    nodes: int = 3
    seed: int = 0
    election_timeout_min_ticks: int = 10
    election_timeout_max_ticks: int = 20
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_msgs: int = 256
    max_entries_per_msg: int = 1024
    bugs: frozenset[str] = frozenset()
    learners: frozenset[int] = frozenset()
    """Nodes that start as learners (the others start as voters)."""
    promote_max_lag: int = 1000
    quiet_heartbeats: bool = True
    """Leave heartbeats (events and messages) out of the output lines."""


@dataclass
class Harness:
    options: HarnessOptions = field(default_factory=HarnessOptions)

    def __post_init__(self) -> None:
        rng = random.Random(self.options.seed)
        self.ids = [NodeId(i) for i in range(1, self.options.nodes + 1)]
        self.inflight: list[Message] = []
        self.lines: list[str] = []
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self.reads: dict[NodeId, list[ReadState]] = {n: [] for n in self.ids}
        self.dropped_reads: dict[NodeId, list[bytes]] = {n: [] for n in self.ids}
        self.applied_log: dict[NodeId, list[Entry]] = {n: [] for n in self.ids}
        self.readies: list[tuple[NodeId, Ready]] = []
        self.nodes: dict[NodeId, SimNode] = {}
        for node_id in self.ids:
            self.nodes[node_id] = SimNode(
                node_id,
                self.config(node_id),
                random.Random(rng.getrandbits(64)),
                self,
                early_send=1.0,
            )
        self.process()

    def config(self, node_id: NodeId) -> Config:
        o = self.options
        return Config(
            id=node_id,
            voters=frozenset(n for n in self.ids if n not in o.learners),
            learners=frozenset(NodeId(n) for n in o.learners),
            election_timeout_min_ticks=o.election_timeout_min_ticks,
            election_timeout_max_ticks=o.election_timeout_max_ticks,
            heartbeat_ticks=o.heartbeat_ticks,
            pre_vote=o.pre_vote,
            check_quorum=o.check_quorum,
            max_inflight_msgs=o.max_inflight_msgs,
            max_entries_per_msg=o.max_entries_per_msg,
            promote_max_lag=o.promote_max_lag,
            bugs=o.bugs,
        )

    # -- NodeObserver ----------------------------------------------------------------

    def send(self, node: SimNode, msg: Message) -> None:
        self.inflight.append(msg)

    def ready(self, node: SimNode, rd: Ready) -> None:
        self.readies.append((node.id, rd))
        for event in rd.events:
            if self.options.quiet_heartbeats and isinstance(event, _HEARTBEAT_EVENTS):
                continue
            self.lines.append(
                f"node {event.node} [{event.role.value} t{event.term}] {event.describe()}"
            )

    def applied(self, node: SimNode, entry: Entry, position: int) -> None:
        self.applied_log[node.id].append(entry)

    def read_ready(self, node: SimNode, read: ReadState) -> None:
        self.reads[node.id].append(read)
        self.lines.append(f"node {node.id} read ready: index {read.index} ctx {read.context!r}")

    def read_dropped(self, node: SimNode, context: bytes) -> None:
        self.dropped_reads[node.id].append(context)
        self.lines.append(f"node {node.id} read dropped: ctx {context!r}")

    def crashed(self, node: SimNode, point: CrashPoint | None, lost_writes: int) -> None:
        self.lines.append(f"node {node.id} crashed ({lost_writes} unsynced writes lost)")

    def snapshot_started(self, node: SimNode, capture: Capture) -> None:
        node.finish_snapshot(capture)  # written at once: scripts see no background work
        self.lines.append(
            f"node {node.id} snapshot at {capture.meta.index}; log starts at "
            f"{node.disk.volatile.first_index()}"
        )

    def restored(self, node: SimNode, index: int) -> None:
        self.lines.append(f"node {node.id} state restored from snapshot at {index}")

    # -- driving ---------------------------------------------------------------------

    def node(self, node_id: int) -> SimNode:
        return self.nodes[NodeId(node_id)]

    def process(self) -> None:
        """Run every live node's Ready loop."""
        for node in self.nodes.values():
            if node.alive:
                node.process_ready()

    def tick(self, node_id: int, count: int = 1) -> None:
        node = self.node(node_id)
        for _ in range(count):
            node.raft.tick()
            node.process_ready()

    def tick_all(self, count: int = 1) -> None:
        for _ in range(count):
            for node in self.nodes.values():
                if node.alive:
                    node.raft.tick()
            self.process()

    def elapse(self, ticks: int) -> None:
        """Let time pass with the network working: every tick, each live node ticks and
        then every message in flight is delivered."""
        for _ in range(ticks):
            for node in self.nodes.values():
                if node.alive:
                    node.raft.tick()
            self.stabilize()

    def campaign(self, node_id: int) -> None:
        self.node(node_id).raft.campaign()
        self.process()

    def propose(self, node_id: int, data: bytes) -> tuple[int, int]:
        result = self.node(node_id).raft.propose(data)
        self.process()
        return result

    def change(self, node_id: int, voters: Iterable[int], learners: Iterable[int] = ()) -> int:
        """Ask node ``node_id`` (the leader) for a new configuration; returns its index."""
        conf = ConfState(
            frozenset(NodeId(v) for v in voters), frozenset(NodeId(v) for v in learners)
        )
        index, _term = self.node(node_id).raft.propose_conf_change(conf)
        self.process()
        return index

    def read_index(self, node_id: int, context: bytes) -> None:
        self.node(node_id).raft.read_index(context)
        self.process()

    def transfer(self, node_id: int, to: int) -> None:
        self.node(node_id).raft.transfer_leader(NodeId(to))
        self.process()

    def deliver(self, where: Callable[[Message], bool] | None = None) -> int:
        """Deliver the messages in flight now (not those they cause), in send order."""
        batch: list[Message] = []
        keep: list[Message] = []
        for msg in self.inflight:
            (batch if where is None or where(msg) else keep).append(msg)
        self.inflight = keep
        delivered = 0
        for msg in batch:
            node = self.nodes[msg.dst]
            quiet = self.options.quiet_heartbeats and isinstance(msg, _HEARTBEAT_MESSAGES)
            if not node.alive or (msg.src, msg.dst) in self.cut:
                if not quiet:
                    self.lines.append(f"  dropped {msg.describe()}")
                continue
            if not quiet:
                self.lines.append(f"  deliver {msg.describe()}")
            node.raft.step(msg)
            node.process_ready()
            delivered += 1
        return delivered

    def stabilize(self, max_rounds: int = 1000) -> None:
        """Deliver until no message is in flight."""
        for _ in range(max_rounds):
            self.process()
            if not self.inflight:
                return
            self.deliver()
        raise RuntimeError(f"not stable after {max_rounds} rounds")

    def drop(self, where: Callable[[Message], bool] | None = None) -> int:
        kept = [m for m in self.inflight if where is not None and not where(m)]
        dropped = len(self.inflight) - len(kept)
        self.inflight = kept
        return dropped

    def partition(self, *groups: Iterable[int]) -> None:
        sides = [{NodeId(n) for n in group} for group in groups]
        self.cut = {
            (a, b)
            for i, side in enumerate(sides)
            for j, other in enumerate(sides)
            if i != j
            for a in side
            for b in other
        }

    def isolate(self, node_id: int) -> None:
        others = [n for n in self.ids if n != node_id]
        self.partition([node_id], others)

    def heal(self) -> None:
        self.cut = set()

    def crash(self, node_id: int) -> None:
        self.node(node_id).crash()

    def restart(self, node_id: int) -> None:
        node = self.node(node_id)
        node.restart()
        self.applied_log[node.id] = []
        node.process_ready()

    def status(self, node_id: int) -> Status:
        return self.node(node_id).raft.status()

    def log(self, node_id: int) -> list[Entry]:
        raft = self.node(node_id).raft
        return raft.log.entries(raft.log.first_index(), 1 << 30, 1 << 62)

    def take_lines(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


# == golden scripts ====================================================================


class ScriptError(Exception):
    pass


def run_command(h: Harness, line: str) -> list[str]:
    """Run one script command on ``h`` and return its output lines."""
    words = shlex.split(line)
    cmd, args = words[0], words[1:]

    def nums() -> list[int]:
        return [int(a) for a in args]

    try:
        if cmd == "campaign":
            h.campaign(int(args[0]))
        elif cmd == "tick":
            h.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)
        elif cmd == "tick-all":
            h.tick_all(int(args[0]) if args else 1)
        elif cmd == "elapse":
            h.elapse(int(args[0]))
        elif cmd == "propose":
            index, term = h.propose(int(args[0]), " ".join(args[1:]).encode())
            h.lines.append(f"proposed at index {index} term {term}")
        elif cmd == "read-index":
            h.read_index(int(args[0]), args[1].encode())
        elif cmd == "transfer":
            h.transfer(int(args[0]), int(args[1]))
        elif cmd == "deliver":
            if args:
                dst = int(args[0])
                h.deliver(lambda m: m.dst == dst)
            else:
                h.deliver()
        elif cmd == "stabilize":
            h.stabilize()
        elif cmd == "drop":
            count = h.drop()
            h.lines.append(f"dropped {count} messages")
        elif cmd == "partition":
            groups: list[list[int]] = [[]]
            for a in args:
                if a == "|":
                    groups.append([])
                else:
                    groups[-1].append(int(a))
            h.partition(*groups)
        elif cmd == "isolate":
            h.isolate(int(args[0]))
        elif cmd == "heal":
            h.heal()
        elif cmd == "crash":
            h.crash(int(args[0]))
        elif cmd == "restart":
            h.restart(int(args[0]))
        elif cmd == "status":
            for n in nums() or h.ids:
                s = h.status(n)
                h.lines.append(
                    f"node {s.id}: {s.role.value} term={s.term} vote={s.vote} "
                    f"leader={s.leader} commit={s.commit} applied={s.applied} "
                    f"last={s.last_index}@{s.last_term}"
                )
        elif cmd == "log":
            for n in nums() or h.ids:
                shown = " ".join(_entry_word(e) for e in h.log(n)) or "(empty)"
                h.lines.append(f"node {n} log: {shown}")
        else:
            raise ScriptError(f"unknown command {cmd!r}")
    except RaftError as exc:
        h.lines.append(f"error: {type(exc).__name__}: {exc}")
    return h.take_lines()


def _entry_word(e: Entry) -> str:
    if e.kind is EntryKind.NOOP:
        return f"{e.index}@{e.term}:noop"
    return f"{e.index}@{e.term}:{show_data(e.data)}"


@dataclass
class GoldenBlock:
    command: str
    expected: list[str]
    line: int


def parse_script(text: str) -> tuple[HarnessOptions, list[GoldenBlock]]:
    """A script: optional ``# options: key=value ...`` header lines, then blocks of one
    command line, a ``----`` line, the expected output, and a blank line."""
    options = HarnessOptions()
    blocks: list[GoldenBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# options:"):
            for pair in line.split(":", 1)[1].split():
                key, _, value = pair.partition("=")
                current = getattr(options, key)
                if isinstance(current, bool):
                    setattr(options, key, value == "true")
                elif isinstance(current, frozenset):
                    setattr(options, key, frozenset(v for v in value.split(",") if v))
                else:
                    setattr(options, key, int(value))
            i += 1
            continue
        if not line.strip() or line.startswith("#"):
            i += 1
            continue
        start = i
        command = line.strip()
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ScriptError(f"line {start + 1}: expected '----' after {command!r}")
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i] != "":
            expected.append(lines[i])
            i += 1
        blocks.append(GoldenBlock(command, expected, start + 1))
    return options, blocks


def render_script(header: list[str], blocks: list[tuple[str, list[str]]]) -> str:
    out = [*header]
    if header:
        out.append("")
    for command, output in blocks:
        out.append(command)
        out.append("----")
        out.extend(output if output else ["ok"])
        out.append("")
    return "\n".join(out)


def run_script(text: str) -> tuple[list[GoldenBlock], list[list[str]]]:
    """Run a script; return its blocks and the actual output of each."""
    options, blocks = parse_script(text)
    h = Harness(options)
    h.take_lines()
    outputs = []
    for block in blocks:
        output = run_command(h, block.command)
        outputs.append(output if output else ["ok"])
    return blocks, outputs
