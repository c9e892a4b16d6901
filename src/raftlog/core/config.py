"""Configuration of one Raft node. All durations are in ticks (``_ticks``)."""

from __future__ import annotations

import msgspec

from raftlog.core.errors import ConfigError
from raftlog.core.types import NodeId

KNOWN_BUGS: frozenset[str] = frozenset(
    {
        # Commit an entry of an earlier term by counting its replicas (Figure 8's trap).
        "commit-old-term",
        # Reply to a RequestVote before the vote is durable (and without forcing a sync).
        "forget-vote",
        # Truncate the log after prev_log_index on every AppendEntries, even a stale or
        # duplicated one, instead of only at the first real conflict.
        "truncate-on-stale",
        # Grant PreVotes without checking the candidate's log or whether a leader is alive.
        "no-prevote-check",
        # Install any snapshot the leader sends, even one the node's log already holds
        # (at or below its commit index): state goes back in time.
        "snapshot-rollback",
        # Record a snapshot at the index applied when its file was written instead of the
        # index it was captured at, and compact the log to it: entries the file does not
        # hold are gone after a restart.
        "compact-past-snapshot",
        # Accept a configuration change before the leader has committed an entry of its
        # own term (the single-server change bug: a new leader may not know of an
        # uncommitted change of its predecessor's, and two majorities can disagree).
        "config-before-noop",
        # Accept a configuration change while another is still uncommitted (two
        # single-server changes in flight add up to a two-server change).
        "two-changes-in-flight",
    }
)
"""Known bugs that can be injected for tests (``Config.bugs``). Off by default; they exist
only to prove that the simulator and its checkers catch them."""


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """How one node runs Raft.

    The election timeout is drawn uniformly from
    ``[election_timeout_min_ticks, election_timeout_max_ticks]`` every time a node resets
    its election timer (§5.2). A leader sends a heartbeat every ``heartbeat_ticks``.
    """

    id: NodeId
    voters: frozenset[NodeId]
    """The initial voters (when storage holds no configuration). Empty for a node that
    joins an existing cluster: it learns its configuration from the leader."""
    learners: frozenset[NodeId] = frozenset()
    election_timeout_min_ticks: int = 10
    election_timeout_max_ticks: int = 20
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    """Run a PreVote round before a real election (thesis §9.6)."""
    check_quorum: bool = True
    """A leader steps down when it has not heard from a quorum for an election timeout,
    and a node that hears from a leader ignores vote requests for that long (§6.2, §9.6)."""
    max_inflight_msgs: int = 256
    """AppendEntries messages with entries that may be unacknowledged per follower."""
    max_entries_per_msg: int = 1024
    max_bytes_per_msg: int = 1 << 20
    max_committed_bytes_per_ready: int = 64 << 20
    promote_max_lag: int = 1000
    """A learner is promoted to voter only once its log is within this many entries of
    the leader's commit index (and it has answered recently)."""
    bugs: frozenset[str] = frozenset()
    """Known bugs to inject (see KNOWN_BUGS). Test-only."""

    def validate(self) -> Config:
        """Return self, or raise ConfigError naming what is wrong."""
        if self.id <= 0:
            raise ConfigError(f"node id must be a positive integer, not {self.id}")
        if any(v <= 0 for v in self.voters):
            raise ConfigError(f"voter ids must be positive integers: {sorted(self.voters)}")
        if self.voters and self.id not in self.voters | self.learners:
            raise ConfigError(f"node {self.id} is not among the voters {sorted(self.voters)}")
        if self.voters & self.learners:
            raise ConfigError(
                f"nodes {sorted(self.voters & self.learners)} are voters and learners"
            )
        if self.heartbeat_ticks < 1:
            raise ConfigError("heartbeat_ticks must be at least 1")
        if self.election_timeout_min_ticks <= self.heartbeat_ticks:
            raise ConfigError(
                "the election timeout must be longer than the heartbeat interval "
                f"({self.election_timeout_min_ticks} <= {self.heartbeat_ticks} ticks)"
            )
        if self.election_timeout_max_ticks < self.election_timeout_min_ticks:
            raise ConfigError(
                "election_timeout_max_ticks must be at least election_timeout_min_ticks "
                f"({self.election_timeout_max_ticks} < {self.election_timeout_min_ticks})"
            )
        for name in ("max_inflight_msgs", "max_entries_per_msg", "max_bytes_per_msg"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.max_committed_bytes_per_ready < 1:
            raise ConfigError("max_committed_bytes_per_ready must be at least 1")
        unknown = self.bugs - KNOWN_BUGS
        if unknown:
            raise ConfigError(
                f"unknown bug(s) {sorted(unknown)}; known: {', '.join(sorted(KNOWN_BUGS))}"
            )
        return self
