"""The lab's log phrases, and what a grader reads from a node's lines.

A node's own words around the phrases do not matter (``Received 2 votes. State: Leader``
and ``node 1 [Leader t3] Received 2 votes`` both say that node won): only the phrases
below are looked for, case and all, anywhere in a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from raftlog.grade.model import Line, RunRecord

STARTED: Final = "Node started!"
NEW_TERM: Final = "New election term"
VOTED: Final = "Voted for node"
RECEIVED: Final = "Received"  # "Received N votes"
HEARTBEAT: Final = "Sending a heartbeat"
HEARD: Final = "Heartbeat received"
LEADER_COMMITTED: Final = "Leader committed"
FOLLOWER_COMMITTED: Final = "Follower committed"
OFFLINE: Final = "offline"
TIMER_FIRED: Final = ("Election timeout", "Pre-vote for term")
"""Lines (raftlog's own) that say an election timer fired before any "New election term":
with PreVote a node may time out several times before it stands."""
TRANSFER: Final = "leadership transfer"
"""raftlog's own handover (a stopping leader asks a follower to campaign at once): that
election is not a timeout."""

_NEW_TERM = re.compile(r"New election term (\d+)")
_VOTED = re.compile(r"Voted for node (\d+)")
_RECEIVED = re.compile(r"Received (\d+) votes")
_NUMBER = re.compile(r"\d+")


def election_term(text: str) -> int | None:
    m = _NEW_TERM.search(text)
    return int(m.group(1)) if m else None


def voted_for(text: str) -> int | None:
    m = _VOTED.search(text)
    return int(m.group(1)) if m else None


def won(text: str) -> bool:
    """Does the line say its node became the leader?"""
    return bool(_RECEIVED.search(text)) or "State: Leader" in text


def is_timeout_election(text: str) -> bool:
    return election_term(text) is not None and TRANSFER not in text


def committed(text: str, who: str) -> str | None:
    """The entry of a ``Leader committed 'X'`` (``who`` Leader) or ``Follower committed
    'X'`` line, quoted or not; None if the line is not one."""
    phrase = f"{who} committed"
    at = text.find(phrase)
    if at < 0:
        return None
    rest = text[at + len(phrase) :].strip()
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        return rest[1:end] if end > 0 else rest[1:]
    return rest.split(" (", 1)[0].strip()


def mentions_node(text: str, node: int) -> bool:
    return str(node) in _NUMBER.findall(text)


@dataclass(frozen=True)
class Election:
    """Node ``node`` stood as a candidate in ``term`` at ``t`` (line ``line``)."""

    node: int
    term: int
    t: float
    line: Line
    transfer: bool


@dataclass(frozen=True)
class Win:
    """Node ``node`` said at ``t`` that it became the leader, in ``term`` (that of its last
    election in the same process; None if it logged none)."""

    node: int
    term: int | None
    t: float
    line: Line


@dataclass(frozen=True)
class Timeout:
    """Node ``node``'s election timer fired at ``t``: its line says "New election term"
    (not a leadership transfer) or, before that, "Election timeout" / "Pre-vote for
    term"; lines of one firing (less than ``merge_s`` apart) are one timeout."""

    node: int
    t: float
    line: Line


def timeouts(rec: RunRecord, merge_s: float) -> list[Timeout]:
    found: list[Timeout] = []
    last: dict[int, float] = {}
    for line in rec.lines:
        fired = is_timeout_election(line.text) or any(p in line.text for p in TIMER_FIRED)
        if not fired:
            continue
        if line.node in last and line.t - last[line.node] < merge_s:
            last[line.node] = line.t
            continue
        last[line.node] = line.t
        found.append(Timeout(line.node, line.t, line))
    return found


def elections(rec: RunRecord) -> list[Election]:
    found = []
    for line in rec.lines:
        term = election_term(line.text)
        if term is not None:
            found.append(Election(line.node, term, line.t, line, TRANSFER in line.text))
    return found


def wins(rec: RunRecord) -> list[Win]:
    found = []
    last_term: dict[tuple[int, int], int] = {}
    for line in sorted(rec.lines, key=lambda x: x.t):
        term = election_term(line.text)
        if term is not None:
            last_term[(line.node, line.life)] = term
        elif won(line.text):
            found.append(Win(line.node, last_term.get((line.node, line.life)), line.t, line))
    return found


def show(line: Line) -> str:
    """A line as evidence: time, node, text."""
    return f"{line.t:8.3f} s  node {line.node}: {line.text}"
