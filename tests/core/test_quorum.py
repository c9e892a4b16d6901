"""Majority quorum arithmetic: majority, committed_index, vote_result."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftlog.core.quorum import VoteResult, committed_index, majority, vote_result
from raftlog.core.types import NodeId


def ids(*numbers: int) -> frozenset[NodeId]:
    return frozenset(NodeId(n) for n in numbers)


def voters_of(size: int) -> frozenset[NodeId]:
    return ids(*range(1, size + 1))


def matches(*values: int) -> dict[NodeId, int]:
    """Match indexes of voters 1, 2, ... in order."""
    return {NodeId(i + 1): v for i, v in enumerate(values)}


@pytest.mark.parametrize(
    ("size", "expected"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)]
)
def test_majority_is_more_than_half(size: int, expected: int) -> None:
    assert majority(size) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((5,), 5),
        ((5, 3), 3),
        ((5, 3, 1), 3),
        ((1, 3, 5), 3),
        ((7, 7, 0), 7),
        ((4, 2, 8, 6), 4),  # needs 3 of 4
        ((9, 1, 1, 9, 5), 5),
        ((0, 0, 0, 0, 3), 0),
        ((6, 5, 4, 3, 2, 1), 3),  # needs 4 of 6
        ((7, 6, 5, 4, 3, 2, 1), 4),
        ((10, 10, 10, 10, 0, 0, 0), 10),
        ((10, 10, 10, 0, 0, 0, 0), 0),
    ],
)
def test_committed_index_is_the_highest_index_a_majority_holds(
    values: tuple[int, ...], expected: int
) -> None:
    voters = voters_of(len(values))
    assert committed_index(voters, matches(*values)) == expected


def test_committed_index_counts_missing_voters_as_zero_and_ignores_others() -> None:
    assert committed_index(voters_of(3), matches(5)) == 0
    assert committed_index(voters_of(3), matches(5, 4)) == 4
    assert committed_index(ids(1, 2, 3), {NodeId(1): 5, NodeId(9): 5, NodeId(8): 5}) == 0
    assert committed_index(frozenset(), matches(3)) == 0


@pytest.mark.parametrize(
    ("size", "granted", "refused", "expected"),
    [
        (1, 1, 0, VoteResult.WON),
        (2, 1, 0, VoteResult.PENDING),
        (2, 1, 1, VoteResult.LOST),
        (2, 2, 0, VoteResult.WON),
        (3, 1, 0, VoteResult.PENDING),
        (3, 2, 0, VoteResult.WON),
        (3, 1, 1, VoteResult.PENDING),
        (3, 1, 2, VoteResult.LOST),
        (4, 2, 1, VoteResult.PENDING),
        (4, 2, 2, VoteResult.LOST),
        (4, 3, 1, VoteResult.WON),
        (5, 2, 2, VoteResult.PENDING),
        (5, 3, 2, VoteResult.WON),
        (5, 2, 3, VoteResult.LOST),
        (6, 3, 3, VoteResult.LOST),
        (6, 4, 0, VoteResult.WON),
        (7, 3, 3, VoteResult.PENDING),
        (7, 4, 0, VoteResult.WON),
        (7, 1, 4, VoteResult.LOST),
    ],
)
def test_vote_result(size: int, granted: int, refused: int, expected: VoteResult) -> None:
    """WON once a majority granted; LOST once the voters that have not refused are too
    few for a majority; PENDING otherwise."""
    votes = {NodeId(i): True for i in range(1, granted + 1)}
    votes |= {NodeId(granted + i): False for i in range(1, refused + 1)}
    assert vote_result(voters_of(size), votes) is expected


def test_vote_result_ignores_votes_from_non_voters() -> None:
    votes = {NodeId(1): True, NodeId(7): True, NodeId(8): True}
    assert vote_result(ids(1, 2, 3), votes) is VoteResult.PENDING
    votes = {NodeId(7): False, NodeId(8): False, NodeId(9): False}
    assert vote_result(ids(1, 2, 3), votes) is VoteResult.PENDING


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=7), st.data())
def test_committed_index_matches_brute_force(values: list[int], data: st.DataObject) -> None:
    """Property: the result is the largest index that at least a majority of voters hold
    (match >= index), for 1 to 7 voters; voters without a match count as holding 0."""
    voters = voters_of(len(values))
    known = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    match = {NodeId(i + 1): v for i, v in enumerate(values) if known[i]}
    held = [match.get(v, 0) for v in voters]
    need = len(voters) // 2 + 1
    expected = max(i for i in range(0, 21) if sum(h >= i for h in held) >= need)
    assert committed_index(voters, match) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=7))
def test_vote_result_matches_brute_force(answers: list[bool | None]) -> None:
    """Property: WON iff granted > half; LOST iff granted can no longer exceed half even
    if every voter still silent grants."""
    voters = voters_of(len(answers))
    votes = {NodeId(i + 1): a for i, a in enumerate(answers) if a is not None}
    granted = answers.count(True)
    possible = granted + answers.count(None)
    if 2 * granted > len(answers):
        expected = VoteResult.WON
    elif 2 * possible <= len(answers):
        expected = VoteResult.LOST
    else:
        expected = VoteResult.PENDING
    assert vote_result(voters, votes) is expected
