"""RaftLog: the durable part read through storage, and the unstable tail in memory."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftlog.core.errors import EntryUnavailable, LogCompacted, UsageError
from raftlog.core.log import (
    ENTRY_OVERHEAD_BYTES,
    AppendOutcome,
    InvariantViolation,
    RaftLog,
    entry_size,
    limit_size,
)
from raftlog.core.types import ConfState, Entry, EntryKind, HardState, NodeId, SnapshotMeta
from raftlog.storage.memory import MemoryStorage

BIG = 1 << 40


def ent(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(index, term, EntryKind.NORMAL, data)


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [ent(start + i, t) for i, t in enumerate(terms)]


def make_log(
    stored: Sequence[Entry] = (), unstable: Sequence[Entry] = ()
) -> tuple[RaftLog, MemoryStorage]:
    storage = MemoryStorage(HardState(), stored)
    log = RaftLog(storage)
    log.append(unstable)
    return log, storage


def everything(log: RaftLog) -> list[Entry]:
    return log.entries(log.first_index(), BIG, BIG)


def persist(log: RaftLog, storage: MemoryStorage) -> None:
    """Do what a caller does with a Ready's entries."""
    unstable = log.unstable_entries()
    storage.append(unstable)
    if unstable:
        log.stable_to(unstable[-1].index, unstable[-1].term)


class CompactedStorage:
    """A LogReader whose entries up to 4 (term 2) were compacted; it holds 5..7."""

    def __init__(self) -> None:
        self._entries = ents(2, 3, 3, start=5)

    def initial_state(self) -> tuple[HardState, ConfState | None]:
        return HardState(term=3, commit=4), None

    def snapshot(self) -> SnapshotMeta:
        return SnapshotMeta(4, 2, ConfState(frozenset({NodeId(1)})))

    def first_index(self) -> int:
        return 5

    def last_index(self) -> int:
        return 7

    def term(self, index: int) -> int:
        if index < 4:
            raise LogCompacted(f"{index} compacted")
        if index == 4:
            return 2
        if index > 7:
            raise EntryUnavailable(f"{index} beyond 7")
        return self._entries[index - 5].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> Sequence[Entry]:
        if lo < 5:
            raise LogCompacted(f"{lo} compacted")
        return limit_size(self._entries[lo - 5 : hi - 5], max_bytes)


# -- reading ----------------------------------------------------------------------------


def test_new_log_reads_what_storage_holds() -> None:
    log, _ = make_log(ents(1, 1, 2))
    assert (log.first_index(), log.last_index(), log.last_term()) == (1, 3, 2)
    assert [log.term(i) for i in range(5)] == [0, 1, 1, 2, None]
    assert not log.has_unstable()
    assert log.persisted_index() == 3
    assert (log.committed, log.applied) == (0, 0)
    assert everything(log) == ents(1, 1, 2)


def test_empty_log() -> None:
    log, _ = make_log()
    assert (log.first_index(), log.last_index(), log.last_term()) == (1, 0, 0)
    assert log.term(0) == 0
    assert log.term(1) is None
    assert everything(log) == []
    assert log.find_conflict_by_term(5, 3) == (0, 0)


def test_compacted_prefix_reads_as_unavailable() -> None:
    log = RaftLog(CompactedStorage())
    assert (log.first_index(), log.last_index(), log.committed) == (5, 7, 4)
    assert log.term(3) is None
    assert log.term(4) == 2
    assert log.entries(5, BIG, BIG) == ents(2, 3, 3, start=5)
    with pytest.raises(LogCompacted):
        log.entries(3, BIG, BIG)
    assert log.find_conflict_by_term(7, 2) == (5, 2)
    assert log.find_conflict_by_term(7, 3) == (7, 3)
    # below the last known term the search stops at the compacted part, with no term:
    # the leader probes from there
    assert log.find_conflict_by_term(7, 1) == (3, 0)


@pytest.mark.parametrize(
    ("last_index", "last_term", "expected"),
    [
        (3, 2, True),  # equal
        (4, 2, True),  # same term, longer
        (2, 2, False),  # same term, shorter
        (1, 3, True),  # higher term wins whatever the length
        (9, 1, False),  # lower term loses whatever the length
    ],
)
def test_is_up_to_date_compares_last_term_then_index(
    last_index: int, last_term: int, expected: bool
) -> None:
    log, _ = make_log(ents(1, 1, 2))
    assert log.is_up_to_date(last_index, last_term) is expected


def test_entries_respect_count_and_byte_limits() -> None:
    stored = [ent(i, 1, b"x" * 10) for i in range(1, 4)]
    unstable = [ent(i, 2, b"y" * 10) for i in range(4, 7)]
    log, _ = make_log(stored, unstable)
    size = 10 + ENTRY_OVERHEAD_BYTES

    assert log.entries(2, 3, BIG) == [*stored[1:], unstable[0]]  # across the boundary
    assert log.entries(1, BIG, 2 * size) == stored[:2]
    assert log.entries(2, BIG, 3 * size) == [*stored[1:], unstable[0]]
    assert log.entries(5, BIG, 1) == [unstable[1]]  # at least one entry, even oversize
    assert log.entries(1, BIG, 1) == [stored[0]]
    assert log.entries(7, BIG, BIG) == []
    assert log.entries(3, 0, BIG) == []


def test_limit_size_and_entry_size() -> None:
    entries = [ent(1, 1, b"abc"), ent(2, 1, b""), ent(3, 1, b"x" * 100)]
    assert entry_size(entries[0]) == 3 + ENTRY_OVERHEAD_BYTES
    assert list(limit_size(entries, BIG)) == entries
    assert list(limit_size(entries, 2 * ENTRY_OVERHEAD_BYTES + 3)) == entries[:2]
    assert list(limit_size(entries, 0)) == entries[:1]
    assert list(limit_size([], 10)) == []


# -- find_conflict / find_conflict_by_term ---------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], 0),
        (ents(1, 2), 0),  # all held
        (ents(2, 3, start=2), 0),
        (ents(1, 2, 3, 4, 4), 4),  # new entries from 4
        (ents(3, 4, start=3), 4),
        (ents(4, 4, start=4), 4),
        ([ent(1, 4)], 1),  # conflict at once
        (ents(2, 4, 4, start=2), 3),
        (ents(1, 2, 4), 3),
    ],
)
def test_find_conflict_returns_first_missing_or_mismatching_index(
    entries: list[Entry], expected: int
) -> None:
    log, _ = make_log(ents(1, 2, 3))
    assert log.find_conflict(entries) == expected


@pytest.mark.parametrize(
    ("index", "term", "expected"),
    [
        (6, 5, (6, 5)),  # matches where asked
        (6, 4, (2, 2)),  # skips the whole of term 5
        (6, 2, (2, 2)),
        (6, 1, (0, 0)),  # nothing of term <= 1
        (10, 5, (6, 5)),  # beyond the log: clamped to its end
        (3, 3, (2, 2)),
        (0, 0, (0, 0)),
        (1, 2, (1, 2)),
    ],
)
def test_find_conflict_by_term_returns_last_index_with_term_at_most(
    index: int, term: int, expected: tuple[int, int]
) -> None:
    log, _ = make_log(ents(2, 2, 5, 5, 5, 5))
    assert log.find_conflict_by_term(index, term) == expected


# -- maybe_append -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prev", "entries", "commit", "outcome", "log_after", "committed"),
    [
        pytest.param((3, 2), [], 3, None, ents(1, 2, 3), 1, id="prev-term-mismatch"),
        pytest.param((4, 3), [], 3, None, ents(1, 2, 3), 1, id="prev-missing"),
        pytest.param((3, 3), [], 3, (3, 0), ents(1, 2, 3), 3, id="heartbeat-like"),
        pytest.param((3, 3), [ent(4, 4)], 3, (4, 0), ents(1, 2, 3, 4), 3, id="append-commit-3"),
        pytest.param((3, 3), [ent(4, 4)], 9, (4, 0), ents(1, 2, 3, 4), 4, id="commit-capped"),
        pytest.param((2, 2), [ent(3, 3)], 3, (3, 0), ents(1, 2, 3), 3, id="duplicate"),
        pytest.param((1, 1), [ent(2, 2)], 3, (2, 0), ents(1, 2, 3), 2, id="stale-prefix"),
        pytest.param((2, 2), [ent(3, 4)], 2, (3, 3), ents(1, 2, 4), 2, id="conflict-at-3"),
        pytest.param((1, 1), ents(4, 4, start=2), 1, (3, 2), ents(1, 4, 4), 1, id="conflict-at-2"),
        pytest.param(
            (1, 1), [ent(2, 2), ent(3, 3), ent(4, 3)], 1, (4, 0), ents(1, 2, 3, 3), 1, id="extend"
        ),
    ],
)
def test_maybe_append(
    *,
    prev: tuple[int, int],
    entries: list[Entry],
    commit: int,
    outcome: tuple[int, int] | None,
    log_after: list[Entry],
    committed: int,
) -> None:
    """The follower side of AppendEntries: refuse on a prev mismatch; otherwise append
    only what is new, truncating from the first real conflict; commit at most up to the
    last entry the message vouched for."""
    log, _ = make_log(ents(1, 2, 3))
    log.commit_to(1)
    result = log.maybe_append(prev[0], prev[1], commit, entries)
    assert result == (AppendOutcome(*outcome) if outcome else None)
    assert everything(log) == log_after
    assert log.committed == committed


def test_maybe_append_refuses_to_overwrite_committed_entries() -> None:
    log, _ = make_log(ents(1, 2, 3))
    log.commit_to(2)
    with pytest.raises(InvariantViolation):
        log.maybe_append(1, 1, 2, [ent(2, 4)])
    assert everything(log) == ents(1, 2, 3)


def test_maybe_append_truncate_always_is_the_injected_bug() -> None:
    log, _ = make_log(ents(1, 1, 1, 1))
    outcome = log.maybe_append(1, 1, 0, [ent(2, 1)], truncate_always=True)
    assert outcome == AppendOutcome(2, 2)
    assert everything(log) == ents(1, 1)


# -- append / stable_to -----------------------------------------------------------------


def test_append_at_end_extends_the_unstable_tail() -> None:
    log, _ = make_log(ents(1, 1))
    log.append(ents(2, 2, start=3))
    assert log.unstable_entries() == tuple(ents(2, 2, start=3))
    assert log.last_index() == 4
    assert log.persisted_index() == 2
    log.append([])
    assert log.last_index() == 4


def test_append_truncates_within_the_unstable_tail() -> None:
    log, _ = make_log(ents(1), ents(1, 1, 1, start=2))
    log.append([ent(3, 2)])
    assert everything(log) == [ent(1, 1), ent(2, 1), ent(3, 2)]
    assert log.unstable_entries() == (ent(2, 1), ent(3, 2))


def test_append_truncates_into_the_stable_part() -> None:
    """Appending over entries already in storage moves the unstable offset down: the log
    reads the new entries, while storage still holds the old ones until they are
    persisted (and must not count as persisted)."""
    log, storage = make_log(ents(1, 1, 1, 1))
    log.append([ent(2, 2)])
    assert everything(log) == [ent(1, 1), ent(2, 2)]
    assert [log.term(i) for i in range(1, 5)] == [1, 2, None, None]
    assert log.last_index() == 2
    assert log.persisted_index() == 1
    assert log.unstable_entries() == (ent(2, 2),)
    assert storage.all_entries() == ents(1, 1, 1, 1)  # untouched until persisted

    persist(log, storage)
    assert storage.all_entries() == [ent(1, 1), ent(2, 2)]
    assert not log.has_unstable()
    assert log.persisted_index() == 2
    assert everything(log) == [ent(1, 1), ent(2, 2)]


def test_append_with_a_gap_or_over_committed_entries_raises() -> None:
    log, _ = make_log(ents(1, 1, 1))
    with pytest.raises(UsageError):
        log.append([ent(5, 1)])
    log.commit_to(2)
    with pytest.raises(InvariantViolation):
        log.append([ent(2, 2)])
    log.append([ent(3, 2)])  # just after the commit index is fine
    assert log.last_term() == 2


def test_stable_to_marks_a_prefix_durable() -> None:
    log, storage = make_log((), ents(1, 1, 1))
    storage.append(ents(1, 1))
    log.stable_to(2, 1)
    assert log.unstable_entries() == (ent(3, 1),)
    assert log.persisted_index() == 2
    log.stable_to(1, 1)  # already stable: nothing changes
    assert log.unstable_entries() == (ent(3, 1),)


def test_stable_to_ignores_an_entry_replaced_since_it_was_handed_out() -> None:
    """A Ready handed out 1@1..2@1; before it was persisted a new leader replaced index 2.
    Persisting the old entries must not mark the new 2@2 durable."""
    log, storage = make_log()
    log.append(ents(1, 1))
    handed_out = log.unstable_entries()
    log.append([ent(2, 2)])
    storage.append(handed_out)
    log.stable_to(2, 1)
    assert log.unstable_entries() == (ent(1, 1), ent(2, 2))
    assert log.term(2) == 2
    assert log.persisted_index() == 0

    persist(log, storage)
    assert storage.all_entries() == [ent(1, 1), ent(2, 2)]
    assert not log.has_unstable()


def test_stable_to_beyond_the_log_is_ignored() -> None:
    log, _ = make_log((), ents(1))
    log.stable_to(5, 1)
    assert log.unstable_entries() == (ent(1, 1),)


# -- commit / apply ---------------------------------------------------------------------


def test_commit_to_only_rises_and_never_beyond_the_last_index() -> None:
    log, _ = make_log(ents(1, 1, 1))
    assert log.commit_to(2)
    assert not log.commit_to(1)
    assert not log.commit_to(2)
    assert log.committed == 2
    with pytest.raises(InvariantViolation):
        log.commit_to(4)
    assert log.committed == 2
    assert log.commit_to(3)


def test_next_committed_hands_out_committed_entries_after_applied() -> None:
    log, _ = make_log([ent(i, 1, b"12345") for i in range(1, 6)])
    assert not log.has_next_committed()
    log.commit_to(4)
    assert log.has_next_committed()
    assert [e.index for e in log.next_committed(BIG)] == [1, 2, 3, 4]
    assert [e.index for e in log.next_committed(1)] == [1]  # at least one
    log.applied_to(2)
    assert [e.index for e in log.next_committed(BIG)] == [3, 4]
    log.applied_to(4)
    assert not log.has_next_committed()
    assert log.next_committed(BIG) == []


def test_applied_to_must_stay_between_applied_and_committed() -> None:
    log, _ = make_log(ents(1, 1, 1))
    log.commit_to(2)
    with pytest.raises(UsageError):
        log.applied_to(3)
    log.applied_to(2)
    with pytest.raises(UsageError):
        log.applied_to(1)


# -- a model-based property test --------------------------------------------------------


class RaftLogModel(RuleBasedStateMachine):
    """RaftLog against a plain list under random appends (with truncation anywhere after
    the commit index, into the stable part too), Ready-style persistence (hand out the
    unstable tail, maybe append more, then persist what was handed out) and commits.

    Every append uses a fresh term, so an (index, term) pair names one entry, as Log
    Matching guarantees in a real cluster."""

    def __init__(self) -> None:
        super().__init__()
        self.storage = MemoryStorage()
        self.log = RaftLog(self.storage)
        self.model: list[Entry] = []
        self.term = 0
        self.handed_out: tuple[Entry, ...] | None = None

    @rule(data=st.data(), count=st.integers(1, 4))
    def append(self, data: st.DataObject, count: int) -> None:
        first = data.draw(st.integers(self.log.committed + 1, len(self.model) + 1), "first")
        self.term += 1
        new = [ent(first + i, self.term) for i in range(count)]
        self.log.append(new)
        self.model = self.model[: first - 1] + new

    @precondition(lambda self: self.handed_out is None)
    @rule()
    def hand_out(self) -> None:
        self.handed_out = self.log.unstable_entries()

    @precondition(lambda self: self.handed_out is not None)
    @rule()
    def persist(self) -> None:
        assert self.handed_out is not None
        self.storage.append(self.handed_out)
        if self.handed_out:
            last = self.handed_out[-1]
            self.log.stable_to(last.index, last.term)
        self.handed_out = None

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.model)), "commit")
        self.log.commit_to(index)

    @invariant()
    def reads_match_the_model(self) -> None:
        log, model = self.log, self.model
        assert log.last_index() == len(model)
        assert [log.term(i) for i in range(1, len(model) + 2)] == [
            *(e.term for e in model),
            None,
        ]
        assert everything(log) == model
        if model:
            assert log.last_term() == model[-1].term

    @invariant()
    def persisted_prefix_is_really_in_storage(self) -> None:
        persisted = self.log.persisted_index()
        assert 0 <= persisted <= self.log.last_index()
        assert self.storage.all_entries()[:persisted] == self.model[:persisted]

    @invariant()
    def commit_is_within_the_log(self) -> None:
        assert self.log.committed <= self.log.last_index()


TestRaftLogModel = RaftLogModel.TestCase
TestRaftLogModel.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


@settings(max_examples=200, deadline=None)
@given(
    log_terms=st.lists(st.integers(1, 4), max_size=12).map(sorted),
    index=st.integers(0, 15),
    term=st.integers(0, 5),
)
def test_find_conflict_by_term_matches_its_definition(
    log_terms: list[int], index: int, term: int
) -> None:
    """The answer is the largest i <= min(index, last) with term(i) <= term (0 if none)."""
    log, _ = make_log(ents(*log_terms))
    top = min(index, len(log_terms))
    expected = next((i for i in range(top, 0, -1) if log_terms[i - 1] <= term), 0)
    assert log.find_conflict_by_term(index, term) == (expected, log.term(expected))
