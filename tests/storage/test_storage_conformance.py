"""Conformance suite for Storage implementations (raftlog.storage.base.Storage).

Every test runs against each kind of storage in ``conftest.STORAGE_KINDS`` and uses only
the protocol: ``initial_state``, ``first_index``, ``last_index``, ``term``, ``entries``,
``save`` and ``sync``, plus the fixture's ``reopen`` hook (the same data, opened anew).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from raftlog.core.errors import EntryUnavailable, LogCompacted, UsageError
from raftlog.core.log import entry_size
from raftlog.core.types import ConfState, Entry, EntryKind, HardState, NodeId, SnapshotMeta
from raftlog.storage import Storage
from raftlog.storage.base import Checkpoint

NO_LIMIT = 1 << 62


class Factory(Protocol):
    """What the ``storage_factory`` fixture provides (see conftest.py)."""

    name: str

    def new(self) -> Storage: ...

    def reopen(self, storage: Storage) -> Storage: ...

    def close_all(self) -> None: ...


def entry(index: int, term: int, data: bytes | None = None) -> Entry:
    return Entry(index, term, data=f"{index}@{term}".encode() if data is None else data)


def entries_from(first: int, last: int, term: int) -> list[Entry]:
    return [entry(i, term) for i in range(first, last + 1)]


def whole_log(storage: Storage) -> list[Entry]:
    return list(storage.entries(storage.first_index(), storage.last_index() + 1, NO_LIMIT))


def expected_limit(entries: Sequence[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix whose total size is within max_bytes; at least one entry."""
    out: list[Entry] = []
    total = 0
    for e in entries:
        total += entry_size(e)
        if out and total > max_bytes:
            break
        out.append(e)
    return out


def assert_log(storage: Storage, log: Sequence[Entry]) -> None:
    """The storage holds exactly ``log`` (entries 1..len(log)), by every read method."""
    assert storage.first_index() == 1
    assert storage.last_index() == len(log)
    assert storage.term(0) == 0
    for e in log:
        assert storage.term(e.index) == e.term
    assert whole_log(storage) == list(log)
    with pytest.raises(EntryUnavailable):
        storage.term(len(log) + 1)


# --- an empty storage --------------------------------------------------------------------------


def test_empty_storage(storage: Storage) -> None:
    hard_state, conf_state = storage.initial_state()
    assert hard_state == HardState()
    assert conf_state is None
    assert storage.first_index() == 1
    assert storage.last_index() == 0
    assert storage.term(0) == 0
    assert list(storage.entries(1, 1, NO_LIMIT)) == []


def test_empty_storage_reads_out_of_range_raise(storage: Storage) -> None:
    with pytest.raises(EntryUnavailable):
        storage.term(1)
    with pytest.raises(LogCompacted):
        storage.term(-1)
    with pytest.raises(LogCompacted):
        storage.entries(0, 1, NO_LIMIT)
    with pytest.raises(EntryUnavailable):
        storage.entries(1, 2, NO_LIMIT)


def test_sync_on_an_empty_storage_changes_nothing(storage: Storage) -> None:
    storage.sync()
    storage.sync()
    assert storage.initial_state()[0] == HardState()
    assert_log(storage, [])


def test_saving_nothing_changes_nothing(storage: Storage) -> None:
    storage.save(HardState(term=1), entries_from(1, 2, 1))
    storage.save(None, [])
    assert storage.initial_state()[0] == HardState(term=1)
    assert_log(storage, entries_from(1, 2, 1))


# --- entries: saving and reading back ----------------------------------------------------------


def test_saved_entries_read_back(storage: Storage) -> None:
    log = [*entries_from(1, 3, 1), *entries_from(4, 6, 2)]
    storage.save(None, log)
    assert_log(storage, log)
    assert storage.initial_state()[0] == HardState()  # entries alone leave the hard state


@pytest.mark.parametrize(("lo", "hi"), [(1, 7), (1, 2), (2, 4), (3, 7), (6, 7), (4, 4), (7, 7)])
def test_entries_is_the_half_open_range(storage: Storage, lo: int, hi: int) -> None:
    log = entries_from(1, 6, 1)
    storage.save(None, log)
    assert list(storage.entries(lo, hi, NO_LIMIT)) == log[lo - 1 : hi - 1]


def test_entries_keep_every_field(storage: Storage) -> None:
    log = [
        Entry(1, 1, EntryKind.NOOP),
        Entry(2, 1, EntryKind.NORMAL, b""),
        Entry(3, 2, EntryKind.NORMAL, bytes(range(256))),  # not UTF-8, has NULs
        Entry(4, 2, EntryKind.CONF_CHANGE, b"\x00conf"),
        Entry(5, 2**40, EntryKind.NORMAL, b"x" * 100_000),
        Entry(6, 2**40, EntryKind.NORMAL, "é✓".encode()),
    ]
    storage.save(None, log)
    got = whole_log(storage)
    assert got == log
    assert [e.kind for e in got] == [e.kind for e in log]
    assert all(type(e.data) is bytes for e in got)


def test_entries_appended_in_several_saves(storage: Storage) -> None:
    log = [*entries_from(1, 2, 1), *entries_from(3, 3, 1), *entries_from(4, 7, 3)]
    storage.save(None, log[:2])
    storage.save(None, log[2:3])
    storage.save(None, log[3:])
    assert_log(storage, log)


def test_saved_entries_are_not_aliased_to_the_callers_list(storage: Storage) -> None:
    batch = entries_from(1, 3, 1)
    storage.save(None, batch)
    batch.clear()
    assert_log(storage, entries_from(1, 3, 1))


# --- entries: the size limit -------------------------------------------------------------------


def _sized_log() -> list[Entry]:
    return [entry(i, 1, b"x" * (10 * i)) for i in range(1, 7)]


@pytest.mark.parametrize("max_bytes", [0, 1, -1])
def test_entries_returns_one_entry_even_over_the_limit(storage: Storage, max_bytes: int) -> None:
    log = _sized_log()
    storage.save(None, log)
    assert list(storage.entries(1, 7, max_bytes)) == log[:1]
    assert list(storage.entries(4, 7, max_bytes)) == log[3:4]


def test_entries_respects_the_size_limit_exactly(storage: Storage) -> None:
    log = _sized_log()
    storage.save(None, log)
    sizes = [entry_size(e) for e in log]
    for lo in range(1, 7):
        total = 0
        for n in range(1, 8 - lo):
            total += sizes[lo - 1 + n - 1]
            # Exactly n entries fit in their total size; one byte less fits n - 1 (at least 1).
            assert list(storage.entries(lo, 7, total)) == log[lo - 1 : lo - 1 + n]
            assert list(storage.entries(lo, 7, total - 1)) == log[lo - 1 : lo - 1 + max(1, n - 1)]
    # The limit never takes entries past hi.
    assert list(storage.entries(2, 4, NO_LIMIT)) == log[1:3]
    assert list(storage.entries(2, 4, sum(sizes))) == log[1:3]


def test_one_huge_entry_is_returned_alone(storage: Storage) -> None:
    log = [entry(1, 1, b"small"), entry(2, 1, b"y" * 10_000), entry(3, 1, b"small")]
    storage.save(None, log)
    assert list(storage.entries(2, 4, 100)) == log[1:2]
    assert list(storage.entries(1, 4, 100)) == log[:1]


# --- the hard state ----------------------------------------------------------------------------


def test_hard_state_alone(storage: Storage) -> None:
    storage.save(None, entries_from(1, 3, 1))
    hs = HardState(term=3, vote=NodeId(2), commit=2)
    storage.save(hs, [])
    assert storage.initial_state()[0] == hs
    assert_log(storage, entries_from(1, 3, 1))  # the log is untouched


def test_hard_state_is_replaced_not_merged(storage: Storage) -> None:
    storage.save(HardState(term=5, vote=NodeId(1), commit=3), [])
    storage.save(HardState(term=6), [])
    assert storage.initial_state()[0] == HardState(term=6, vote=NodeId(0), commit=0)


def test_entries_alone_keep_the_hard_state(storage: Storage) -> None:
    hs = HardState(term=2, vote=NodeId(3), commit=0)
    storage.save(hs, [])
    storage.save(None, entries_from(1, 4, 2))
    assert storage.initial_state()[0] == hs
    assert_log(storage, entries_from(1, 4, 2))


def test_hard_state_and_entries_together(storage: Storage) -> None:
    storage.save(HardState(term=1, vote=NodeId(1)), entries_from(1, 2, 1))
    hs = HardState(term=4, vote=NodeId(2), commit=2)
    storage.save(hs, entries_from(2, 5, 4))
    assert storage.initial_state()[0] == hs
    assert_log(storage, [entry(1, 1), *entries_from(2, 5, 4)])


# --- conflicting appends truncate --------------------------------------------------------------


@pytest.mark.parametrize("start", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("count", [1, 2, 4])
def test_saving_inside_the_log_replaces_the_suffix(
    storage: Storage, start: int, count: int
) -> None:
    storage.save(None, entries_from(1, 5, 1))
    storage.save(None, entries_from(start, start + count - 1, 2))
    expected = [*entries_from(1, start - 1, 1), *entries_from(start, start + count - 1, 2)]
    assert_log(storage, expected)
    with pytest.raises(EntryUnavailable):
        storage.entries(1, len(expected) + 2, NO_LIMIT)


def test_resaving_the_same_entry_drops_everything_after_it(storage: Storage) -> None:
    # Storage does not compare terms: the entries replace the whole stored suffix.
    storage.save(None, entries_from(1, 5, 1))
    storage.save(None, [entry(2, 1)])
    assert_log(storage, entries_from(1, 2, 1))


def test_truncate_then_grow_again(storage: Storage) -> None:
    storage.save(None, entries_from(1, 6, 1))
    storage.save(None, entries_from(3, 3, 2))
    storage.save(None, entries_from(4, 8, 3))
    assert_log(storage, [*entries_from(1, 2, 1), entry(3, 2), *entries_from(4, 8, 3)])
    assert storage.term(5) == 3  # the old entry 5 (term 1) is gone


# --- invalid saves -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([entry(5, 2)], id="gap"),
        pytest.param([entry(5, 2), entry(6, 2)], id="gap-run"),
        pytest.param([entry(3, 2), entry(5, 2)], id="hole-in-batch"),
        pytest.param([entry(2, 2), entry(2, 2)], id="repeated-index"),
        pytest.param([entry(3, 2), entry(2, 2)], id="backwards"),
    ],
)
def test_invalid_save_raises_and_changes_nothing(storage: Storage, batch: list[Entry]) -> None:
    hs = HardState(term=1, vote=NodeId(1), commit=1)
    storage.save(hs, entries_from(1, 3, 1))
    with pytest.raises(UsageError):
        storage.save(HardState(term=9, vote=NodeId(9), commit=3), batch)
    # A save is atomic: neither the entries nor the hard state that came with them.
    assert storage.initial_state()[0] == hs
    assert_log(storage, entries_from(1, 3, 1))


def test_gap_on_an_empty_storage_raises(storage: Storage) -> None:
    with pytest.raises(UsageError):
        storage.save(None, [entry(2, 1)])
    assert_log(storage, [])


# --- reads out of range ------------------------------------------------------------------------


def test_reads_out_of_range_raise(storage: Storage) -> None:
    storage.save(None, entries_from(1, 4, 1))
    assert storage.term(0) == 0
    with pytest.raises(LogCompacted):
        storage.term(-1)
    with pytest.raises(EntryUnavailable):
        storage.term(5)
    with pytest.raises(EntryUnavailable):
        storage.term(100)
    with pytest.raises(LogCompacted):
        storage.entries(0, 2, NO_LIMIT)
    with pytest.raises(EntryUnavailable):
        storage.entries(1, 6, NO_LIMIT)
    with pytest.raises(EntryUnavailable):
        storage.entries(5, 7, NO_LIMIT)
    assert list(storage.entries(5, 5, NO_LIMIT)) == []  # empty, at the end: fine


# --- reopening ---------------------------------------------------------------------------------


def test_reopen_an_empty_storage(storage_factory: Factory) -> None:
    storage = storage_factory.new()
    storage.sync()
    again = storage_factory.reopen(storage)
    assert again.initial_state() == (HardState(), None)
    assert_log(again, [])


def test_reopen_returns_the_same_hard_state_and_log(storage_factory: Factory) -> None:
    storage = storage_factory.new()
    hs = HardState(term=7, vote=NodeId(3), commit=4)
    log = [Entry(1, 1, EntryKind.NOOP), *entries_from(2, 4, 1), Entry(5, 7, data=b"\x00\xff")]
    storage.save(hs, log)
    storage.sync()
    again = storage_factory.reopen(storage)
    assert again.initial_state()[0] == hs
    assert_log(again, log)
    assert list(again.entries(2, 6, 0)) == log[1:2]


def test_reopen_after_truncation_and_more_saves(storage_factory: Factory) -> None:
    storage = storage_factory.new()
    storage.save(HardState(term=1), entries_from(1, 6, 1))
    storage.sync()
    storage.save(HardState(term=2, vote=NodeId(2)), entries_from(3, 4, 2))
    storage.save(HardState(term=2, vote=NodeId(2), commit=3), [])
    storage.sync()
    again = storage_factory.reopen(storage)
    assert again.initial_state()[0] == HardState(term=2, vote=NodeId(2), commit=3)
    assert_log(again, [*entries_from(1, 2, 1), *entries_from(3, 4, 2)])
    # And the reopened storage carries on where the old one left off.
    again.save(None, entries_from(5, 5, 2))
    again.sync()
    third = storage_factory.reopen(again)
    assert_log(third, [*entries_from(1, 2, 1), *entries_from(3, 5, 2)])


# --- a model-based test ------------------------------------------------------------------------

_hard_states = st.builds(
    HardState,
    term=st.integers(min_value=0, max_value=2**40),
    vote=st.integers(min_value=0, max_value=9).map(NodeId),
    commit=st.integers(min_value=0, max_value=30),
)
_payloads = st.tuples(st.sampled_from(EntryKind), st.binary(max_size=48))


def make_machine(factory: Factory) -> type[RuleBasedStateMachine]:
    class StorageMachine(RuleBasedStateMachine):
        """Random saves (appends, truncations, hard states), invalid saves, syncs and
        reopens, against a plain list and a hard state."""

        def __init__(self) -> None:
            super().__init__()
            self.storage = factory.new()
            self.log: list[Entry] = []
            self.hard_state = HardState()

        def _batch(self, data: st.DataObject, start: int) -> list[Entry]:
            count = data.draw(st.integers(min_value=1, max_value=5), label="count")
            term = data.draw(st.integers(min_value=1, max_value=5), label="term")
            payloads = data.draw(st.lists(_payloads, min_size=count, max_size=count))
            return [Entry(start + k, term, kind, raw) for k, (kind, raw) in enumerate(payloads)]

        @rule(data=st.data(), hard_state=st.none() | _hard_states)
        def save(self, data: st.DataObject, hard_state: HardState | None) -> None:
            """Append at the end, or truncate and replace from inside the log."""
            start = data.draw(st.integers(min_value=1, max_value=len(self.log) + 1), label="start")
            hard_state_only = data.draw(st.integers(min_value=0, max_value=4), label="hs") == 0
            batch = [] if hard_state_only else self._batch(data, start)
            self.storage.save(hard_state, batch)
            if batch:
                del self.log[start - 1 :]
                self.log.extend(batch)
            if hard_state is not None:
                self.hard_state = hard_state

        @rule(data=st.data(), hard_state=st.none() | _hard_states)
        def save_with_a_gap(self, data: st.DataObject, hard_state: HardState | None) -> None:
            start = len(self.log) + data.draw(st.integers(min_value=2, max_value=4), label="gap")
            with pytest.raises(UsageError):
                self.storage.save(hard_state, self._batch(data, start))

        @rule()
        def sync(self) -> None:
            self.storage.sync()

        @rule()
        def reopen(self) -> None:
            self.storage.sync()
            self.storage = factory.reopen(self.storage)

        @precondition(lambda self: bool(self.log))
        @rule(data=st.data())
        def read_a_range(self, data: st.DataObject) -> None:
            n = len(self.log)
            lo = data.draw(st.integers(min_value=1, max_value=n + 1), label="lo")
            hi = data.draw(st.integers(min_value=lo, max_value=n + 1), label="hi")
            max_bytes = data.draw(st.integers(min_value=0, max_value=300), label="max_bytes")
            got = list(self.storage.entries(lo, hi, max_bytes))
            assert got == expected_limit(self.log[lo - 1 : hi - 1], max_bytes)

        @rule(data=st.data())
        def read_out_of_range(self, data: st.DataObject) -> None:
            n = len(self.log)
            beyond = data.draw(st.integers(min_value=n + 1, max_value=n + 3), label="beyond")
            with pytest.raises(EntryUnavailable):
                self.storage.term(beyond)
            with pytest.raises(EntryUnavailable):
                self.storage.entries(1, beyond + 1, NO_LIMIT)
            with pytest.raises(LogCompacted):
                self.storage.entries(0, n + 1, NO_LIMIT)

        @invariant()
        def matches_the_model(self) -> None:
            assert self.storage.initial_state()[0] == self.hard_state
            assert_log(self.storage, self.log)

        def teardown(self) -> None:
            factory.close_all()

    return StorageMachine


def test_storage_behaves_like_a_list(storage_factory: Factory) -> None:
    run_state_machine_as_test(
        make_machine(storage_factory),
        settings=settings(max_examples=60, stateful_step_count=25, deadline=None),
    )


# --- snapshots and compaction ---------------------------------------------------------------

VOTERS = ConfState(frozenset({NodeId(1), NodeId(2), NodeId(3)}))


def checkpoint(index: int, term: int, file: str = "", sessions: bytes = b"") -> Checkpoint:
    return Checkpoint(SnapshotMeta(index, term, VOTERS), file, sessions)


def test_no_checkpoint_at_first(storage: Storage) -> None:
    assert storage.snapshot() == SnapshotMeta()
    assert storage.checkpoint() == Checkpoint()


def test_compaction_drops_the_prefix_and_keeps_the_term_before_it(storage: Storage) -> None:
    log = entries_from(1, 4, 1) + entries_from(5, 8, 2)
    storage.save(HardState(2, NodeId(1), 8), log)
    cp = checkpoint(6, 2, "snap-6", b"sessions")
    storage.compact(cp, 5)
    storage.sync()
    assert (storage.first_index(), storage.last_index()) == (6, 8)
    assert storage.term(5) == 2  # the last compacted entry still answers its term
    with pytest.raises(LogCompacted):
        storage.term(4)
    with pytest.raises(LogCompacted):
        storage.entries(5, 7, NO_LIMIT)
    assert list(storage.entries(6, 9, NO_LIMIT)) == log[5:]
    assert storage.snapshot() == cp.meta and storage.checkpoint() == cp
    assert storage.initial_state()[1] == VOTERS
    # Appending and truncating after the compacted point work as before.
    storage.save(None, [entry(8, 3), entry(9, 3)])
    assert storage.last_index() == 9 and storage.term(8) == 3


def test_a_checkpoint_may_be_recorded_without_compacting(storage: Storage) -> None:
    storage.save(HardState(1, NodeId(1), 3), entries_from(1, 3, 1))
    storage.compact(checkpoint(3, 1), 0)
    assert storage.first_index() == 1 and storage.snapshot().index == 3


@pytest.mark.parametrize(
    ("cp", "upto", "why"),
    [
        (checkpoint(3, 1), 4, "past the snapshot"),
        (checkpoint(9, 1), 7, "past the log"),
    ],
)
def test_invalid_compaction_raises_and_changes_nothing(
    storage: Storage, cp: Checkpoint, upto: int, why: str
) -> None:
    log = entries_from(1, 5, 1)
    storage.save(HardState(1, NodeId(1), 5), log)
    with pytest.raises(UsageError):
        storage.compact(cp, upto)
    assert whole_log(storage) == log and storage.snapshot() == SnapshotMeta(), why


def test_an_older_checkpoint_is_refused(storage: Storage) -> None:
    storage.save(HardState(1, NodeId(1), 5), entries_from(1, 5, 1))
    storage.compact(checkpoint(4, 1), 2)
    with pytest.raises(UsageError):
        storage.compact(checkpoint(3, 1), 2)
    assert storage.snapshot().index == 4


def test_installing_a_snapshot_replaces_the_whole_log(storage: Storage) -> None:
    storage.save(HardState(1, NodeId(1), 2), entries_from(1, 6, 1))
    cp = checkpoint(10, 3, "snap-10", b"s")
    storage.save(HardState(3, NodeId(2), 10), [entry(11, 3)], cp)
    storage.sync()
    assert (storage.first_index(), storage.last_index()) == (11, 11)
    assert storage.term(10) == 3
    with pytest.raises(LogCompacted):
        storage.term(9)
    assert storage.checkpoint() == cp
    assert storage.initial_state()[0] == HardState(3, NodeId(2), 10)


def test_installing_a_snapshot_inside_the_log_drops_entries_after_it(storage: Storage) -> None:
    storage.save(HardState(1, NodeId(1), 2), entries_from(1, 6, 1))
    storage.save(HardState(2, NodeId(1), 4), [], checkpoint(4, 2))
    assert (storage.first_index(), storage.last_index()) == (5, 4)
    assert storage.term(4) == 2


def test_reopen_after_compaction_and_install(storage_factory: Factory) -> None:
    storage = storage_factory.new()
    storage.save(HardState(2, NodeId(1), 8), entries_from(1, 4, 1) + entries_from(5, 8, 2))
    cp = checkpoint(7, 2, "snap-7", b"\x01sessions")
    storage.compact(cp, 6)
    storage.sync()
    again = storage_factory.reopen(storage)
    assert (again.first_index(), again.last_index(), again.term(6)) == (7, 8, 2)
    assert again.checkpoint() == cp
    cp2 = checkpoint(20, 4, "snap-20")
    again.save(HardState(4, NodeId(3), 20), [], cp2)
    again.sync()
    third = storage_factory.reopen(again)
    assert (third.first_index(), third.last_index(), third.term(20)) == (21, 20, 4)
    assert third.checkpoint() == cp2
    assert third.initial_state() == (HardState(4, NodeId(3), 20), VOTERS)
