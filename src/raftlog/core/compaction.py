"""When a node records a snapshot and compacts its log: one rule, shared by the server and
the simulator.

A node captures its state machine at some applied index and writes it to a file while it
goes on applying. Once the file is durable, the snapshot is recorded *at the index it was
captured at*, and the log entries it covers can go. Some are kept anyway
(``keep_entries``) so that a follower only a little behind still catches up from the log
rather than with a whole snapshot.

Recording the snapshot at the applied index of the moment the write ended would claim
entries the file does not hold, and compact them away: after a restart they are lost from
the state (the injected bug ``compact-past-snapshot`` does this, to prove the simulator
notices).
"""

from __future__ import annotations

from typing import NamedTuple


class CompactionPlan(NamedTuple):
    snapshot_index: int
    """The index to record the snapshot at."""
    compact_to: int
    """Compact the log up to this index (inclusive); 0: nothing to compact."""


def plan_compaction(
    *,
    captured: int,
    applied: int,
    keep_entries: int,
    first_index: int,
    bugs: frozenset[str] = frozenset(),
) -> CompactionPlan:
    """For a snapshot captured at ``captured`` whose file is now durable, while the state
    machine has applied up to ``applied``."""
    covered = applied if "compact-past-snapshot" in bugs else captured
    target = covered - keep_entries
    return CompactionPlan(covered, target if target >= first_index else 0)
