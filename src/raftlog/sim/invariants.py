"""Raft's safety properties (Figure 3 of the paper, and a few more), checked as a run goes.

Every check is incremental: it looks only at the node that just moved, so it can run after
every step of a simulation.

- Election Safety: at most one leader per term; and its cause, one vote per node per term.
- Leader Append-Only: a leader never overwrites or deletes entries of its log.
- Log Matching: checked through its inductive form, every (index, term) ever seen on any
  node carries the same data and follows the same previous term.
- Leader Completeness: a leader holds every entry committed in an earlier term; and, so
  that a violation shows before it happens, no node that lacks the latest committed entry
  has a log at least as up-to-date as a majority's (it could win an election without it).
- State Machine Safety: no two nodes apply different entries at one index; a state
  restored from a snapshot is exactly the committed entries up to its index.
- Monotonic state: term and commit never fall (in memory within one process life, and on
  disk across crashes); the commit index never points past the end of the log; entries
  are applied strictly in order.
- Membership: a leader never has more than one uncommitted configuration change; a node
  removed by a committed configuration never becomes leader (the cluster checks that every
  committed entry is durable on a majority of the committing leader's voters).
"""

from __future__ import annotations

import msgspec

from raftlog.core.raft import Raft
from raftlog.core.types import ConfState, Entry, EntryKind, NodeId, Role, decode_conf


class Violation(Exception):
    """A safety or liveness property does not hold."""

    def __init__(self, prop: str, detail: str) -> None:
        super().__init__(prop, detail)
        self.prop = prop
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.prop}: {self.detail}"


class _NodeWatch:
    __slots__ = (
        "acked",
        "commit",
        "durable_commit",
        "durable_term",
        "leader_last",
        "leader_term",
        "term",
    )

    def __init__(self) -> None:
        self.term = 0
        self.commit = 0
        self.durable_term = 0
        self.durable_commit = 0
        self.leader_term = -1
        self.leader_last = (0, 0)
        self.acked = (0, 0, 0)
        """(term, index, entry term): the longest log prefix acknowledged to a leader."""


class SafetyChecker:
    def __init__(self) -> None:
        self._leaders: dict[int, NodeId] = {}
        self._entries: dict[tuple[int, int], tuple[int, EntryKind, bytes]] = {}
        """(index, term) -> (previous term, kind, data), from every log of every node."""
        self.committed: dict[int, tuple[int, EntryKind, bytes, int]] = {}
        """index -> (term, kind, data, the term in which its commit was first seen)."""
        self.top_committed = 0
        """The highest committed index seen."""
        self._watch: dict[NodeId, _NodeWatch] = {}
        self._votes: dict[tuple[NodeId, int], NodeId] = {}
        """(voter, term) -> the candidate it voted for."""
        self.committed_conf: ConfState | None = None
        """The latest committed configuration (None: the initial one)."""
        self._committed_conf_index = 0
        self.removed: set[NodeId] = set()
        """Nodes the latest committed configuration left out, after they were members."""

    # -- hooks -----------------------------------------------------------------------

    def restarted(self, node: NodeId, raft: Raft) -> None:
        """A new process life: in-memory baselines restart from what was durable."""
        watch = self._watch.setdefault(node, _NodeWatch())
        if raft.term < watch.durable_term:
            raise Violation(
                "Monotonic term",
                f"node {node} restarted at term {raft.term}, below its durable "
                f"term {watch.durable_term}",
            )
        watch.term = raft.term
        watch.commit = raft.log.committed
        watch.leader_term = -1

    def appended(self, node: NodeId, raft: Raft, entries: tuple[Entry, ...]) -> None:
        """``entries`` are about to be written to ``node``'s log (Log Matching)."""
        for entry in entries:
            prev = raft.log.term(entry.index - 1)
            if prev is None:
                continue
            key = (entry.index, entry.term)
            seen = self._entries.get(key)
            mine = (prev, entry.kind, entry.data)
            if seen is None:
                self._entries[key] = mine
            elif seen != mine:
                raise Violation(
                    "Log Matching",
                    f"node {node} holds entry {entry.index}@{entry.term} "
                    f"(prev term {prev}, data {entry.data!r}) but another log has "
                    f"(prev term {seen[0]}, data {seen[2]!r})",
                )

    def voted(self, voter: NodeId, term: int, candidate: NodeId) -> None:
        """``voter`` granted its vote in ``term`` (one vote per term, §5.2)."""
        earlier = self._votes.setdefault((voter, term), candidate)
        if earlier != candidate:
            raise Violation(
                "One vote per term",
                f"node {voter} voted for {earlier} and then for {candidate} in term {term}",
            )

    def acknowledged(self, node: NodeId, raft: Raft, term: int, match_index: int) -> None:
        """``node`` told the leader of ``term`` that its log matches up to ``match_index``.
        Within that term it may never lose those entries: the leader counts on them."""
        watch = self._watch.setdefault(node, _NodeWatch())
        entry_term = raft.log.term(match_index)
        if entry_term is None:
            raise Violation(
                "Durable before acknowledged",
                f"node {node} acknowledged entry {match_index} it does not hold",
            )
        if (term, match_index) > watch.acked[:2]:
            watch.acked = (term, match_index, entry_term)

    def check_electable(self, logs: dict[NodeId, tuple[int, int, int | None]]) -> None:
        """``logs[node] = (last_index, last_term, term at the latest committed index)``.

        In Raft a committed entry is held by a majority whose logs end later than the log
        of any node that lacks it, so no such node can collect a majority of votes. If
        one could, Leader Completeness is one election away from breaking (Figure 8).
        """
        top = self.top_committed
        if not top:
            return
        top_term = self.committed[top][0]
        need = len(logs) // 2 + 1
        for node, (last_index, last_term, term_at_top) in logs.items():
            if term_at_top == top_term:
                continue
            mine = (last_term, last_index)
            supporters = sorted(v for v, (li, lt, _) in logs.items() if mine >= (lt, li))
            if len(supporters) >= need:
                raise Violation(
                    "Leader Completeness",
                    f"node {node} lacks committed entry {top}@{top_term}, yet its log "
                    f"(last {last_index}@{last_term}) is as up-to-date as those of nodes "
                    f"{supporters}, a majority: it can be elected without the entry",
                )

    def applied(self, node: NodeId, raft: Raft, entry: Entry) -> None:
        self._commit_seen(node, entry, raft.term, "State Machine Safety")

    def restored(self, node: NodeId, index: int, state: list[bytes]) -> None:
        """``node``'s state machine now holds ``state``, said to be the data of the
        committed NORMAL entries up to ``index``."""
        if index > self.top_committed:
            raise Violation(
                "State Machine Safety",
                f"node {node} restored a snapshot at {index}, beyond anything committed "
                f"({self.top_committed})",
            )
        if any(i not in self.committed for i in range(1, index + 1)):
            return  # not every entry was seen committed: nothing to compare with
        expected = [
            self.committed[i][2]
            for i in range(1, index + 1)
            if self.committed[i][1] is EntryKind.NORMAL
        ]
        if state != expected:
            at = next(
                (k for k, (a, b) in enumerate(zip(state, expected, strict=False)) if a != b),
                min(len(state), len(expected)),
            )
            raise Violation(
                "State Machine Safety",
                f"node {node} restored a snapshot at index {index} whose state differs from "
                f"the committed log: {len(state)} items, expected {len(expected)}; first "
                f"difference at item {at}",
            )

    def after_step(self, node: NodeId, raft: Raft, durable_term: int, durable_commit: int) -> None:
        watch = self._watch.setdefault(node, _NodeWatch())
        log = raft.log
        if raft.term < watch.term:
            raise Violation(
                "Monotonic term", f"node {node} went from term {watch.term} to {raft.term}"
            )
        if durable_term < watch.durable_term:
            raise Violation(
                "Monotonic term",
                f"node {node}'s durable term fell from {watch.durable_term} to {durable_term}",
            )
        if log.committed < watch.commit:
            raise Violation(
                "Monotonic commit",
                f"node {node} went from commit {watch.commit} to {log.committed}",
            )
        if durable_commit < watch.durable_commit:
            raise Violation(
                "Monotonic commit",
                f"node {node}'s durable commit fell from {watch.durable_commit} "
                f"to {durable_commit}",
            )
        last = log.last_index()
        if log.committed > last:
            raise Violation(
                "Log Matching",
                f"node {node} lost committed entries: commit {log.committed}, last index {last}",
            )
        acked_term, acked_index, acked_entry_term = watch.acked
        covered = acked_index < log.first_index()  # in a snapshot from this term's leader
        if acked_term == raft.term and not covered and log.term(acked_index) != acked_entry_term:
            raise Violation(
                "Durable before acknowledged",
                f"node {node} acknowledged entries up to {acked_index}@{acked_entry_term} "
                f"in term {acked_term}, and no longer holds them (last index {last})",
            )
        if log.committed > watch.commit:
            start = max(watch.commit + 1, log.first_index())  # a snapshot covers the rest
            if log.committed >= start:
                for entry in log.entries(start, log.committed - start + 1, 1 << 62):
                    self._commit_seen(node, entry, raft.term, "State Machine Safety")
        watch.term = raft.term
        watch.commit = log.committed
        watch.durable_term = durable_term
        watch.durable_commit = durable_commit

        if raft.role is not Role.LEADER:
            watch.leader_term = -1
            return
        holder = self._leaders.setdefault(raft.term, node)
        if holder != node:
            raise Violation(
                "Election Safety", f"nodes {holder} and {node} are both leaders of term {raft.term}"
            )
        if watch.leader_term == raft.term:
            old_last, old_term = watch.leader_last
            if last < old_last or log.term(old_last) != old_term:
                raise Violation(
                    "Leader Append-Only",
                    f"leader {node} (term {raft.term}) had entry {old_last}@{old_term}; "
                    f"now its log ends at {last} with term {log.term(old_last)} there",
                )
        else:
            self._check_completeness(node, raft)
            if node in self.removed:
                raise Violation(
                    "Removed member became leader",
                    f"node {node} became leader of term {raft.term}, but the committed "
                    f"configuration {self.committed_conf} left it out",
                )
        pending = raft.pending_conf_changes()
        if pending > 1:
            raise Violation(
                "One configuration change at a time",
                f"leader {node} (term {raft.term}) has {pending} uncommitted configuration "
                f"changes (commit {log.committed}, last index {last})",
            )
        watch.leader_term = raft.term
        watch.leader_last = (last, log.last_term())

    # -- helpers ---------------------------------------------------------------------

    def _commit_seen(self, node: NodeId, entry: Entry, term: int, prop: str) -> None:
        known = self.committed.get(entry.index)
        if known is None:
            self.committed[entry.index] = (entry.term, entry.kind, entry.data, term)
            self.top_committed = max(self.top_committed, entry.index)
            if entry.kind is EntryKind.CONF_CHANGE and entry.index > self._committed_conf_index:
                self._conf_committed(entry)
            return
        if known[0] != entry.term or known[2] != entry.data:
            raise Violation(
                prop,
                f"node {node} committed {entry.index}@{entry.term} {entry.data!r}, but "
                f"{entry.index}@{known[0]} {known[2]!r} was committed before",
            )
        if term < known[3]:
            self.committed[entry.index] = (known[0], known[1], known[2], term)

    def _conf_committed(self, entry: Entry) -> None:
        try:
            conf = decode_conf(entry.data)
        except msgspec.DecodeError:
            return
        previous = self.committed_conf
        if previous is not None:
            self.removed |= previous.ids() - conf.ids()
        self.removed -= conf.ids()
        self.committed_conf = conf
        self._committed_conf_index = entry.index

    def _check_completeness(self, node: NodeId, raft: Raft) -> None:
        first = raft.log.first_index()
        for index, (term, _kind, data, commit_term) in self.committed.items():
            if index < first - 1:
                continue  # compacted into the leader's snapshot, which holds it
            if commit_term < raft.term and raft.log.term(index) != term:
                raise Violation(
                    "Leader Completeness",
                    f"node {node} became leader of term {raft.term} without entry "
                    f"{index}@{term} {data!r}, committed in term {commit_term}",
                )
