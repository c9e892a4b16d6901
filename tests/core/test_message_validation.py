"""message_problem(): what a garbled or hostile frame could get wrong."""

from __future__ import annotations

import pytest

from raftlog.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    Message,
    PreVote,
    RequestVote,
    message_problem,
)
from raftlog.core.types import Entry, NodeId

N1, N2 = NodeId(1), NodeId(2)


@pytest.mark.parametrize(
    "msg",
    [
        AppendEntries(N1, N2, 3, 4, 2, (Entry(5, 2), Entry(6, 3)), 4),
        AppendEntries(N1, N2, 3, 0, 0, (), 0),
        RequestVote(N1, N2, 3, 10, 3),
        PreVote(N1, N2, 4, 10, 3),
        Heartbeat(N1, N2, 3, 7, b"ctx"),
        AppendEntriesResponse(N1, N2, 3, False, reject_index=4, hint_index=2, hint_term=1),
    ],
)
def test_messages_of_a_correct_peer_pass(msg: Message) -> None:
    assert message_problem(msg) is None


@pytest.mark.parametrize(
    ("msg", "problem"),
    [
        (AppendEntries(N1, N2, 3, 4, 2, (Entry(6, 2),), 4), "index 6 where 5"),
        (AppendEntries(N1, N2, 3, 4, 2, (Entry(5, 2), Entry(6, 1)), 4), "out of order"),
        (AppendEntries(N1, N2, 3, 4, 2, (Entry(5, 4),), 4), "out of order"),
        (AppendEntries(N1, N2, 3, 4, 5, (), 4), "above the message term"),
        (AppendEntries(N1, N2, 3, -1, 0, (), 0), "negative"),
        (RequestVote(N1, N2, 3, 10, 4), "bad last log position"),
        (PreVote(N1, N2, 3, -2, 1), "bad last log position"),
        (Heartbeat(N1, N2, 3, -5), "negative commit"),
        (AppendEntriesResponse(N1, N2, 3, True, match_index=-1), "negative index"),
        (Heartbeat(NodeId(0), N2, 3, 0), "bad header"),
        (Heartbeat(N1, N2, -1, 0), "bad header"),
    ],
)
def test_impossible_messages_are_named(msg: Message, problem: str) -> None:
    found = message_problem(msg)
    assert found is not None and problem in found
