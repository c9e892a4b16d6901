"""What a leader knows about each follower's log (§5.3: ``next_index``, ``match_index``).

A follower is either being *probed* (the leader is looking for where their logs agree and
sends one AppendEntries at a time), *replicated* to (the logs agree up to ``match``; the
leader streams entries optimistically, with at most ``max_inflight`` unacknowledged
messages in flight), or sent a *snapshot* (it needs entries the leader has compacted away;
nothing else is sent until the snapshot is acknowledged or reported failed).
"""

from __future__ import annotations

import enum
from collections import deque

from raftlog.core.errors import UsageError


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A bounded window of in-flight AppendEntries, remembered by their last index.

    Invariant: indexes in the window strictly increase.
    """

    __slots__ = ("_capacity", "_window")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise UsageError("inflight capacity must be at least 1")
        self._capacity = capacity
        self._window: deque[int] = deque()

    def add(self, last_index: int) -> None:
        if self.full():
            raise UsageError("inflight window is full")
        if self._window and last_index <= self._window[-1]:
            raise UsageError("inflight indexes must increase")
        self._window.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose last entry is at or below ``index`` (acknowledged)."""
        window = self._window
        while window and window[0] <= index:
            window.popleft()

    def free_first(self) -> None:
        """Forget the oldest message: it was probably lost (see the leader's heartbeat
        response handling)."""
        if self._window:
            self._window.popleft()

    def full(self) -> bool:
        return len(self._window) >= self._capacity

    def reset(self) -> None:
        self._window.clear()

    def __len__(self) -> int:
        return len(self._window)


class Progress:
    """A leader's view of one follower.

    Invariants: ``0 <= match < next``; in REPLICATE, ``next - 1`` is the last index sent.
    """

    __slots__ = (
        "active_last_round",
        "inflights",
        "match",
        "next",
        "offline",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "removal_rounds",
        "removal_told",
        "snapshot_rounds",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        """In PROBE: an AppendEntries is out and unanswered; wait for an answer (or a
        heartbeat response) before probing again."""
        self.recent_active = False
        """Heard from since the last CheckQuorum round."""
        self.active_last_round = False
        """Heard from during the previous CheckQuorum round."""
        self.offline = False
        """Reported offline (no answer for a whole CheckQuorum round)."""
        self.inflights = Inflights(max_inflight)
        self.pending_snapshot = 0
        """In SNAPSHOT: the index of the snapshot sent (the follower is caught up to at
        least it once it acknowledges)."""
        self.snapshot_rounds = 0
        """In SNAPSHOT: CheckQuorum rounds the snapshot has been out without an answer."""
        self.removal_rounds = 0
        """For a node a committed configuration removed, which the leader still tells:
        the CheckQuorum rounds since the removal committed."""
        self.removal_told = False
        """... and it held the removal's entry when a round ended, so that every
        heartbeat of the round after carried a commit index that covers it."""

    @property
    def responsive(self) -> bool:
        """Heard from in this CheckQuorum round or the one before: a round has just
        started does not make every follower look silent."""
        return self.recent_active or self.active_last_round

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def become_snapshot(self, index: int) -> None:
        """A snapshot up to ``index`` went out: wait for its answer."""
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_rounds = 0
        self.probe_sent = False
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def maybe_update(self, index: int) -> bool:
        """The follower holds the leader's log up to ``index``. False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, hint: int) -> bool:
        """The follower rejected ``prev_log_index == rejected``; its log may match up to
        ``hint``. False if the rejection is stale (answers an older message)."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.state is ProgressState.SNAPSHOT:
            return False  # answers something sent before the snapshot
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent(self, last_index: int | None) -> None:
        """An AppendEntries went out carrying entries up to ``last_index`` (None: none)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                self.next = last_index + 1
                self.inflights.add(last_index)
        else:
            self.probe_sent = True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.SNAPSHOT:
            return True
        return self.inflights.full()

    def describe(self) -> str:
        pending = f" pending={self.pending_snapshot}" if self.pending_snapshot else ""
        return f"match={self.match} next={self.next} {self.state.value}{pending}"
