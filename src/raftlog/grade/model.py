"""What a grading run records, and what a check concludes (plain data, no I/O).

A :class:`RunRecord` is everything one scenario saw from outside the nodes: every node's
output lines with the time each was printed, every round of ``is_leader()`` polls, every
client call and its answer, and every action the grader took (a node started, stopped,
a link cut). The checks (:mod:`raftlog.grade.checks`) are functions of a record alone,
so each can be tested on a record written by hand.

Times are seconds since the run's ``t0`` (a unix time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Verdict = Literal["pass", "fail", "not observed"]
RUNS: Final = ("typical", "split-vote", "dead-leader", "dead-follower")
LAB_ELECTION_S: Final = (6.0, 10.0)
LAB_HEARTBEAT_S: Final = 2.0
SCALE_ENV: Final = "LAB_TIME_SCALE"
"""The environment variable that tells a node to multiply the lab's timings (``raftlog
grade --timings``); the reference node reads it."""


@dataclass(frozen=True)
class Timings:
    """The lab's timings times ``scale``, and how far an observed time may stray.

    An observed election timeout must lie in ``[low * (1 - rel) - abs, high * (1 + rel) +
    abs]``; a heartbeat interval in ``heartbeat * (1 -+ hb_rel) -+ abs``. The slack is for
    what observing from outside adds: a line is stamped when the stamper reads it, and a
    busy machine delays both the node and the stamper by tens of milliseconds.

    ``late_s`` is added to every deadline a check sets on something that takes time (a
    leader within the bound, a deposed leader stepping down, a timeout's upper bound, no
    gap in a leader's heartbeats): a machine busy with other work makes a node late by up
    to hundreds of milliseconds, never early, and that is not the node's fault. It does
    not scale: at the lab's timings it is 5 % of the bound; at x 0.1 it is what keeps a
    grade on a loaded machine from failing a good node. Lower bounds (a timeout or a
    heartbeat interval too short) get none: lateness cannot make them fail.
    """

    scale: float = 1.0
    rel: float = 0.15
    hb_rel: float = 0.25
    abs_s: float = 0.1
    late_s: float = 0.5

    @property
    def election_low(self) -> float:
        return LAB_ELECTION_S[0] * self.scale

    @property
    def election_high(self) -> float:
        return LAB_ELECTION_S[1] * self.scale

    @property
    def heartbeat(self) -> float:
        return LAB_HEARTBEAT_S * self.scale

    def late(self, deadline: float) -> float:
        """``deadline`` with the slack for a busy machine (``late_s``)."""
        return deadline + self.late_s

    def election_bounds(self) -> tuple[float, float]:
        return (
            self.election_low * (1 - self.rel) - self.abs_s,
            self.election_high * (1 + self.rel) + self.abs_s,
        )

    def heartbeat_bounds(self) -> tuple[float, float]:
        return (
            self.heartbeat * (1 - self.hb_rel) - self.abs_s / 2,
            self.heartbeat * (1 + self.hb_rel) + self.abs_s / 2,
        )

    def describe(self) -> str:
        lo, hi = self.election_low, self.election_high
        name = "the lab's" if self.scale == 1 else f"the lab's x {self.scale:g}"
        return f"{name}: election timeout {lo:g}-{hi:g} s, heartbeat {self.heartbeat:g} s"


@dataclass(frozen=True)
class Line:
    """One line a node printed, at ``t``; ``life`` counts the node's process starts (1:
    its first process)."""

    node: int
    t: float
    text: str
    life: int = 1
    stderr: bool = False


@dataclass(frozen=True)
class Poll:
    """One round of ``is_leader()`` on every node, sent at ``t``: each running node's
    answer (None: it gave none in time, or not a bool); nodes not running are left out."""

    t: float
    answers: dict[int, bool | None]

    def leaders(self) -> list[int]:
        return sorted(i for i, yes in self.answers.items() if yes is True)


@dataclass(frozen=True)
class Call:
    """The client's ``leader_receive_log(text)`` on ``node``, from ``start`` to ``end``;
    ``result`` True or False as answered, None if no answer came (``error`` says why)."""

    node: int
    text: str
    start: float
    end: float
    result: bool | None
    error: str = ""
    expect: bool = True
    """False for a call that must not be acknowledged (no majority)."""


@dataclass(frozen=True)
class Action:
    """What the grader did: ``start`` or ``stop`` (SIGTERM, then SIGKILL after a grace
    period) of ``nodes``, ``cut`` or ``heal`` of the link between two nodes; from ``t`` to
    ``end`` (when the action returned)."""

    kind: Literal["start", "stop", "cut", "heal"]
    nodes: tuple[int, ...]
    t: float
    end: float


@dataclass
class RunRecord:
    """Everything one scenario observed; see the module's docstring."""

    name: str
    timings: Timings
    t0: float
    nodes: list[int] = field(default_factory=lambda: [1, 2, 3])
    duration: float = 0.0
    attempt: int = 1
    lines: list[Line] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the scenario says it did and saw (the report shows them)."""
    error: str = ""
    """Why the scenario stopped early (a node would not start, ...); empty if it ran."""
    unbuilt: bool = False
    """The cluster could not be built (namespaces taken, ...): nothing of the submission
    was judged."""
    logs: dict[int, list[str]] = field(default_factory=dict)
    """Every node's log as written (stamped lines)."""

    def node_lines(self, node: int) -> list[Line]:
        return [line for line in self.lines if line.node == node]

    def starts(self, node: int) -> list[float]:
        """When the grader began each start of ``node`` (its lines come after)."""
        return [a.t for a in self.actions if a.kind == "start" and node in a.nodes]

    def stops(self, node: int) -> list[float]:
        return [a.t for a in self.actions if a.kind == "stop" and node in a.nodes]

    def running_at(self, node: int, t: float) -> bool:
        """Was ``node``'s process running at ``t`` (started and not stopped since)?"""
        events = sorted(
            [(a.end, True) for a in self.actions if a.kind == "start" and node in a.nodes]
            + [(a.t, False) for a in self.actions if a.kind == "stop" and node in a.nodes]
        )
        running = False
        for at, up in events:
            if at > t:
                break
            running = up
        return running


@dataclass(frozen=True)
class Check:
    """A check's conclusion on one run: ``verdict``, one line saying why, and the
    evidence (the lines, answers and times it rests on). A check that is not
    ``required`` never fails the grade."""

    run: str
    name: str
    verdict: Verdict
    summary: str
    evidence: tuple[str, ...] = ()
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.required and self.verdict == "fail"
