"""A node's metrics, in the Prometheus text format (``GET /metrics``).

Names follow etcd's (``etcd_server_has_leader`` is ``raftlog_server_has_leader`` here).
Each node has its own registry (:func:`registry`), never prometheus_client's global one:
a test or a program may run several nodes in one process.

Cheap on the hot path, which appends 10-20k entries a second: what the node already
knows (role, term, commit and applied index, waiting proposals, the followers' progress,
the transport's counters) is read when a scrape asks, by a collector; the few things
counted as they happen are plain integers, and the histograms here take one observation
per Ready, per batch of proposals or per heartbeat, with a weight, and no lock (each has
one writer; a scrape reads them on the node's event loop).

What is counted where:

- ``proposals_*``: commands proposed through this node (:meth:`RaftNode.propose`).
  ``committed_total`` and ``applied_total`` count the entries this node saw committed
  and applied since it started (as etcd's, on every node); ``failed_total`` counts the
  proposals this node took that failed: dropped by the leader, replaced by another
  leader's entries, timed out, or left without an outcome when the node stopped (a
  proposal on a follower is not taken: it answers NotLeader, and the client API
  forwards it).
- ``proposal_commit_duration_seconds``: on the leader, from appending a batch of
  proposals to its log to their commit, one observation per entry (weighted per batch).
- ``disk_wal_fsync_duration_seconds``: each durable commit of the Raft log (SQLite's
  ``COMMIT`` in WAL mode: writing the WAL and its fsync), one per Ready.
- ``network_peer_round_trip_time_seconds``: on the leader, from sending a heartbeat to a
  follower to its answer arriving (the follower's queue included: the time Raft sees).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from raftlog.core.types import NO_NODE, NodeId, Role

if TYPE_CHECKING:
    from raftlog.server.node import RaftNode

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The exposition's media type (``text/plain; version=0.0.4``)."""

BUCKETS_S: tuple[float, ...] = tuple(0.0001 * 2**n for n in range(17))
"""Histogram buckets: 100 µs to 6.5 s, doubling (an fsync here takes 0.2-0.3 ms; a commit
at the lab's timings takes seconds)."""

MAX_BATCHES = 10_000
"""Proposal batches awaiting their commit that the latency histogram remembers (beyond,
the oldest are forgotten: a leader that cannot commit has other problems)."""


class Replication(NamedTuple):
    """What a scrape needs of the log: its last index and, on the leader, each
    follower's match index."""

    last_index: int
    matches: dict[NodeId, int]


class Histogram:
    """Bucket counts and a sum, observed with a weight. One writer; lock-free."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        """counts[i]: observations in (bounds[i-1], bounds[i]]; the last: above all."""
        self.total = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += count
        self.total += value * count

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        """Buckets as Prometheus wants them (``le`` and cumulative count), and the sum."""
        counts = list(self.counts)  # one copy: count and buckets agree
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, counts, strict=False):
            running += n
            buckets.append((_le(bound), running))
        buckets.append(("+Inf", running + counts[-1]))
        return buckets, self.total


def _le(bound: float) -> str:
    return repr(round(bound, 10))


class NodeMetrics:
    """What the node counts as it goes (the rest is read at scrape time). Its methods
    are the node's hooks; they run on the node's event loop, except
    :meth:`fsync_observed`, which the storage's writer thread calls."""

    def __init__(self) -> None:
        self.leader_changes = 0
        self.proposals_failed = 0
        self.commit_latency = Histogram()
        self.fsync = Histogram()
        self.rtt: dict[NodeId, Histogram] = {}
        self._leader = NO_NODE
        self._batches: deque[tuple[int, int, float]] = deque()
        """(first index, last index, when appended) of proposal batches, oldest first."""
        self._heartbeat_at: dict[NodeId, float] = {}
        self.commit_base: int | None = None
        self.applied_base: int | None = None
        self._registry: CollectorRegistry | None = None

    # -- hooks ---------------------------------------------------------------------

    def started(self, commit: int, applied: int) -> None:
        """The node runs: the committed and applied counters count from here."""
        self.commit_base, self.applied_base = commit, applied

    def leader_seen(self, leader: NodeId, role: Role) -> None:
        """The soft state changed. A new leader (not none) is a leader change, as etcd
        counts them; a node that is no longer leader forgets its batches."""
        if leader != self._leader:
            if leader != NO_NODE:
                self.leader_changes += 1
            self._leader = leader
        if role is not Role.LEADER:
            self._batches.clear()

    def appended(self, first: int, last: int) -> None:
        """A batch of proposals went into the leader's log."""
        batches = self._batches
        if len(batches) >= MAX_BATCHES:
            batches.popleft()
        batches.append((first, last, time.monotonic()))

    def committed(self, commit: int) -> None:
        """The commit index is now ``commit``: the batches it covers are observed."""
        batches = self._batches
        if not batches or batches[0][0] > commit:
            return
        now = time.monotonic()
        while batches and batches[0][0] <= commit:
            first, last, at = batches[0]
            if last <= commit:
                batches.popleft()
                self.commit_latency.observe(now - at, last - first + 1)
            else:  # a batch committed in part: the rest waits
                self.commit_latency.observe(now - at, commit - first + 1)
                batches[0] = (commit + 1, last, at)
                break

    def proposals_lost(self, count: int = 1) -> None:
        self.proposals_failed += count

    def heartbeat_sent(self, peer: NodeId) -> None:
        self._heartbeat_at[peer] = time.monotonic()

    def heartbeat_answered(self, peer: NodeId) -> None:
        sent = self._heartbeat_at.pop(peer, None)
        if sent is None:
            return
        histogram = self.rtt.get(peer)
        if histogram is None:
            histogram = self.rtt[peer] = Histogram()
        histogram.observe(time.monotonic() - sent)

    def fsync_observed(self, seconds: float) -> None:
        self.fsync.observe(seconds)


class NodeCollector(Collector):
    """The node's metrics, read from it when a scrape asks (on the node's event loop)."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node

    def collect(self) -> Iterable[Metric]:
        node = self.node
        m = node.metrics
        leader = node.leader != NO_NODE and not node.removed
        yield _gauge("raftlog_server_id", "This node's id.", int(node.id))
        yield _gauge(
            "raftlog_server_has_leader", "1 if this node knows of a leader, else 0.", leader
        )
        yield _gauge(
            "raftlog_server_is_leader",
            "1 if this node is the leader, else 0.",
            node.role is Role.LEADER,
        )
        yield _gauge("raftlog_server_term", "The Raft term this node is in.", node.term)
        yield CounterMetricFamily(
            "raftlog_server_leader_changes_seen",
            "Leader changes this node has seen (a new leader, not none).",
            value=m.leader_changes,
        )
        yield _gauge("raftlog_server_commit_index", "The highest committed log index.", node.commit)
        yield _gauge(
            "raftlog_server_applied_index",
            "The highest log index applied to the state machine.",
            node.applied,
        )
        progress = node.replication()
        yield _gauge(
            "raftlog_server_last_index", "The last index in this node's log.", progress.last_index
        )
        yield CounterMetricFamily(
            "raftlog_server_proposals_committed",
            "Entries this node has seen committed since it started.",
            value=_since(node.commit, m.commit_base),
        )
        yield CounterMetricFamily(
            "raftlog_server_proposals_applied",
            "Entries this node has applied since it started.",
            value=_since(node.applied, m.applied_base),
        )
        yield _gauge(
            "raftlog_server_proposals_pending",
            "Proposals taken by this node and waiting for their commit.",
            node.pending_proposals(),
        )
        yield CounterMetricFamily(
            "raftlog_server_proposals_failed",
            "Proposals taken by this node that failed: dropped, replaced by another "
            "leader's entries, timed out, or unanswered when the node stopped.",
            value=m.proposals_failed,
        )
        yield _histogram(
            "raftlog_server_proposal_commit_duration_seconds",
            "On the leader: from appending a proposal to its log to its commit.",
            {(): m.commit_latency},
        )
        yield CounterMetricFamily(
            "raftlog_server_dropped_messages",
            "Peer messages dropped on arrival (a full inbox, a bad message).",
            value=node.dropped_messages,
        )
        yield CounterMetricFamily(
            "raftlog_server_snapshots_sent",
            "Snapshots sent to followers.",
            value=node.snapshots_sent,
        )
        yield CounterMetricFamily(
            "raftlog_server_snapshots_installed",
            "Snapshots installed from a leader.",
            value=node.snapshots_installed,
        )
        lag = GaugeMetricFamily(
            "raftlog_server_follower_lag_entries",
            "On the leader: entries each follower's log is known to lack (last index - "
            "match index).",
            labels=["peer"],
        )
        for peer, match in sorted(progress.matches.items()):
            lag.add_metric([str(peer)], max(0, progress.last_index - match))
        yield lag
        yield _histogram(
            "raftlog_disk_wal_fsync_duration_seconds",
            "Durable commits of the Raft log (SQLite COMMIT in WAL mode: the WAL written "
            "and fsynced), one per batch of entries.",
            {(): m.fsync},
        )
        yield _histogram(
            "raftlog_network_peer_round_trip_time_seconds",
            "On the leader: from sending a heartbeat to a follower to its answer arriving.",
            {(str(peer),): h for peer, h in sorted(m.rtt.items())},
            labels=["peer"],
        )
        yield from _transport_metrics(node)


def _transport_metrics(node: RaftNode) -> Iterable[Metric]:
    peers_of = getattr(node.transport, "peers", None)
    infos = peers_of() if peers_of is not None else {}
    failures = CounterMetricFamily(
        "raftlog_network_peer_sent_failures",
        "Messages to a peer that were dropped (its queue full, or the peer unreachable).",
        labels=["peer"],
    )
    sent = CounterMetricFamily(
        "raftlog_network_peer_sent_messages", "Messages sent to a peer.", labels=["peer"]
    )
    received = CounterMetricFamily(
        "raftlog_network_peer_received_messages",
        "Messages received from a peer.",
        labels=["peer"],
    )
    connected = GaugeMetricFamily(
        "raftlog_network_peer_connected",
        "1 if this node has a working connection to the peer, else 0.",
        labels=["peer"],
    )
    for peer, info in sorted(infos.items()):
        label = [str(peer)]
        failures.add_metric(label, info.dropped)
        sent.add_metric(label, info.sent)
        received.add_metric(label, info.received)
        connected.add_metric(label, 1 if info.connected else 0)
    yield from (failures, sent, received, connected)


def _since(value: int, base: int | None) -> int:
    """How far ``value`` moved from ``base`` (0 before the node runs)."""
    return 0 if base is None else max(0, value - base)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _histogram(
    name: str,
    doc: str,
    series: dict[tuple[str, ...], Histogram],
    labels: Sequence[str] = (),
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels) if labels else None)
    for label_values, histogram in series.items():
        buckets, total = histogram.cumulative()
        family.add_metric(list(label_values), buckets, total)
    return family


def registry(node: RaftNode, *, process: bool = True) -> CollectorRegistry:
    """The node's own registry (made on first use): its metrics, and with ``process``
    the process's (CPU, memory, file descriptors, Python's GC)."""
    metrics = node.metrics
    if metrics._registry is None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(NodeCollector(node))
        if process:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
        metrics._registry = reg
    return metrics._registry


def exposition(node: RaftNode) -> bytes:
    """The node's metrics in the Prometheus text format; call on the node's loop."""
    return generate_latest(registry(node))
