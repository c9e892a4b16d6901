"""Progress (a leader's view of one follower) and its Inflights window."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftlog.core.errors import UsageError
from raftlog.core.progress import Inflights, Progress, ProgressState

# -- Inflights --------------------------------------------------------------------------


def test_inflights_capacity_must_be_positive() -> None:
    with pytest.raises(UsageError):
        Inflights(0)


def test_inflights_fills_up_to_capacity() -> None:
    window = Inflights(3)
    for index in (2, 5, 9):
        assert not window.full()
        window.add(index)
    assert window.full()
    assert len(window) == 3
    with pytest.raises(UsageError):
        window.add(10)


def test_inflights_indexes_must_increase() -> None:
    window = Inflights(3)
    window.add(5)
    with pytest.raises(UsageError):
        window.add(5)
    with pytest.raises(UsageError):
        window.add(4)
    assert len(window) == 1


def test_inflights_free_le_forgets_acknowledged_messages() -> None:
    window = Inflights(4)
    for index in (2, 4, 6, 8):
        window.add(index)
    window.free_le(1)
    assert len(window) == 4
    window.free_le(5)  # acknowledges the messages ending at 2 and 4
    assert len(window) == 2
    assert not window.full()
    window.add(9)
    window.free_le(100)
    assert len(window) == 0


def test_inflights_free_first_and_reset() -> None:
    window = Inflights(2)
    window.free_first()  # empty: nothing to do
    window.add(3)
    window.add(7)
    window.free_first()
    assert len(window) == 1
    window.free_le(3)  # the freed message was the one ending at 3
    assert len(window) == 1
    window.reset()
    assert len(window) == 0
    window.add(1)  # after a reset any index may come next
    assert len(window) == 1


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 5),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(1, 4)),
            st.tuples(st.just("free_le"), st.integers(0, 40)),
            st.tuples(st.just("free_first"), st.just(0)),
        ),
        max_size=40,
    ),
)
def test_inflights_behaves_like_a_bounded_queue(capacity: int, ops: list[tuple[str, int]]) -> None:
    window = Inflights(capacity)
    model: deque[int] = deque()
    last = 0
    for op, arg in ops:
        if op == "add":
            if len(model) >= capacity:
                with pytest.raises(UsageError):
                    window.add(last + arg)
                continue
            last += arg
            window.add(last)
            model.append(last)
        elif op == "free_le":
            window.free_le(arg)
            while model and model[0] <= arg:
                model.popleft()
        elif model:
            window.free_first()
            model.popleft()
        assert len(window) == len(model)
        assert window.full() == (len(model) >= capacity)


# -- Progress ---------------------------------------------------------------------------


def test_new_progress_probes_from_next() -> None:
    pr = Progress(5, max_inflight=2)
    assert pr.state is ProgressState.PROBE
    assert (pr.match, pr.next) == (0, 5)
    assert not pr.is_paused()
    assert not pr.recent_active
    assert pr.describe() == "match=0 next=5 probe"


def test_probe_sends_one_message_then_waits() -> None:
    pr = Progress(5, max_inflight=2)
    pr.sent(None)
    assert pr.is_paused()
    assert pr.next == 5  # probing does not move next optimistically
    assert len(pr.inflights) == 0
    assert pr.maybe_update(4)  # the answer
    assert not pr.is_paused()
    assert (pr.match, pr.next) == (4, 5)


def test_maybe_update_ignores_old_news() -> None:
    pr = Progress(10, max_inflight=2)
    assert pr.maybe_update(6)
    assert (pr.match, pr.next) == (6, 10)
    pr.sent(None)
    assert not pr.maybe_update(6)
    assert not pr.maybe_update(3)
    assert pr.match == 6
    assert pr.is_paused()  # a stale answer does not unpause the probe
    assert pr.maybe_update(12)
    assert (pr.match, pr.next) == (12, 13)


def test_become_replicate_streams_from_match() -> None:
    pr = Progress(10, max_inflight=2)
    pr.maybe_update(6)
    pr.become_replicate()
    assert pr.state is ProgressState.REPLICATE
    assert pr.next == 7
    assert pr.describe() == "match=6 next=7 replicate"


def test_replicate_sends_optimistically_until_the_window_is_full() -> None:
    pr = Progress(1, max_inflight=2)
    pr.become_replicate()
    pr.sent(3)
    assert (pr.next, len(pr.inflights)) == (4, 1)
    assert not pr.is_paused()
    pr.sent(None)  # an empty append takes no slot
    assert (pr.next, len(pr.inflights)) == (4, 1)
    pr.sent(5)
    assert pr.next == 6
    assert pr.is_paused()
    assert pr.maybe_update(3)
    pr.inflights.free_le(3)
    assert not pr.is_paused()


def test_replicate_rejection_falls_back_to_match_plus_one() -> None:
    pr = Progress(1, max_inflight=4)
    pr.maybe_update(5)
    pr.become_replicate()
    pr.sent(8)
    pr.sent(10)
    assert not pr.maybe_decrease_to(4, hint=0)  # answers an older message: stale
    assert not pr.maybe_decrease_to(5, hint=0)
    assert pr.next == 11
    assert pr.maybe_decrease_to(8, hint=2)
    assert pr.next == 6  # never below match + 1, whatever the hint


@pytest.mark.parametrize(
    ("next_index", "match", "rejected", "hint", "result", "new_next"),
    [
        pytest.param(10, 0, 9, 4, True, 5, id="jump-to-hint"),
        pytest.param(10, 0, 9, 20, True, 9, id="hint-above-rejected"),
        pytest.param(10, 0, 8, 4, False, 10, id="stale-rejection"),
        pytest.param(10, 6, 9, 2, True, 7, id="not-below-match"),
        pytest.param(10, 0, 9, 0, True, 1, id="from-the-start"),
    ],
)
def test_probe_rejection_moves_next_to_the_hint(
    *, next_index: int, match: int, rejected: int, hint: int, result: bool, new_next: int
) -> None:
    """In PROBE a rejection of the message just sent (prev = next - 1) moves next to just
    after the follower's hint, between match + 1 and the rejected index; a rejection of
    anything else is stale and ignored."""
    pr = Progress(next_index, max_inflight=2)
    if match:
        pr.maybe_update(match)
    pr.sent(None)
    assert pr.maybe_decrease_to(rejected, hint) is result
    assert pr.next == new_next
    assert pr.is_paused() is not result  # a real rejection allows the next probe


def test_become_probe_resets_the_window() -> None:
    pr = Progress(1, max_inflight=2)
    pr.maybe_update(3)
    pr.become_replicate()
    pr.sent(5)
    pr.sent(7)
    pr.become_probe()
    assert pr.state is ProgressState.PROBE
    assert (pr.next, len(pr.inflights)) == (4, 0)
    assert not pr.is_paused()
