"""A *recording*: what a timeline shows, as typed records (a leaf module: imports no raftlog).

One format for the chaos report and the dashboard's export, and what
``dashboard/static/timeline.js`` (``RaftTimeline.render``) draws. As JSON::

    {"version": 1, "source": "chaos" | "dashboard" | "grade", "t0": unix seconds of time 0,
     "duration": seconds, "nodes": [1, 2, 3],
     "spans":  [{"node", "role", "term", "start", "end"}],      end null: until the end
     "faults": [{"kind", "start", "end", "nodes", "target", "detail"}],
     "ops":    [{"process", "kind", "start", "end", "outcome", "value"}],
     "marks":  [{"t", "node", "kind", "text"}]}

Times are seconds since ``t0``. Readers ignore keys they do not know; the optional
``ops_total`` and ``op_buckets`` stand in for ``ops`` when a recording leaves them out
(a chaos run of 100k operations embedded in one page).

Every record checks its own invariants when built or decoded (finite times, an end not
before its start), so a :class:`Recording` that exists is one the renderer can draw.
"""

from __future__ import annotations

import math
from typing import Final, Literal

import msgspec

__all__ = [
    "ROLES",
    "LatencySeries",
    "Mark",
    "Op",
    "OpBuckets",
    "Outcome",
    "Recording",
    "RecordingError",
    "Role",
    "Span",
    "TimelineFault",
    "decode",
    "encode",
]

VERSION: Final = 1

Role = Literal["leader", "follower", "candidate", "precandidate", "down"]
ROLES: Final[tuple[Role, ...]] = ("leader", "follower", "candidate", "precandidate", "down")
Outcome = Literal["ok", "fail", "info"]  # info: the outcome is unknown
Source = Literal["chaos", "dashboard", "grade"]


class RecordingError(ValueError):
    """Input that does not make a valid recording; the message names the record and field."""


def _check_interval(what: str, start: float, end: float | None) -> None:
    if not math.isfinite(start) or start < 0:
        raise ValueError(f"{what}: start must be a finite time >= 0, not {start!r}")
    if end is not None and (not math.isfinite(end) or end < start):
        raise ValueError(f"{what}: end {end!r} is before start {start!r} or not finite")


class Span(msgspec.Struct, frozen=True, kw_only=True):
    """Node ``node`` had role ``role`` in term ``term`` from ``start`` to ``end`` (None: to
    the end of the recording). A node's spans do not overlap."""

    node: int
    role: Role
    term: int | None = None  # None: unknown (a node that is down)
    start: float
    end: float | None = None

    def __post_init__(self) -> None:
        _check_interval(f"span of node {self.node}", self.start, self.end)


class TimelineFault(msgspec.Struct, frozen=True, kw_only=True):
    """A fault injected from ``start`` to ``end`` (None: still active at the end); ``nodes``
    are the nodes it touched (empty: the whole cluster, or not known)."""

    kind: str
    start: float
    end: float | None = None
    nodes: list[int] = msgspec.field(default_factory=list)
    target: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        _check_interval(f"fault {self.kind!r}", self.start, self.end)


class Op(msgspec.Struct, frozen=True, kw_only=True):
    """A client operation, invoked at ``start`` and answered at ``end`` (None: never
    answered). ``node``, ``index`` and ``error`` are extras the report uses."""

    process: int  # the client
    kind: str  # "append" or "read"
    start: float
    end: float | None = None
    outcome: Outcome
    value: str | None = None
    node: int | None = None  # the node the client last sent it to
    index: int | None = None  # the log index of an acknowledged append
    error: str | None = None

    def __post_init__(self) -> None:
        _check_interval(f"op of process {self.process}", self.start, self.end)


class Mark(msgspec.Struct, frozen=True, kw_only=True):
    """A moment worth a tick: an event of node ``node`` (None: of the cluster) at ``t``;
    ``kind`` is the event's class name (``BecameLeader``, ...)."""

    t: float
    node: int | None = None
    kind: str
    text: str = ""

    def __post_init__(self) -> None:
        _check_interval(f"mark {self.kind!r}", self.t, None)


class LatencySeries(msgspec.Struct, frozen=True):
    """Per bucket, the median and maximum latency (seconds) of ok operations of one kind."""

    median: list[float | None]
    max: list[float | None]


class OpBuckets(msgspec.Struct, frozen=True, kw_only=True):
    """Operations counted per bucket ``[start + i*width, start + (i+1)*width)`` of their
    completion (of their invocation when never answered)."""

    start: float
    width: float
    ok: list[int]
    fail: list[int]
    info: list[int]
    latency: dict[str, LatencySeries] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"op buckets: width must be > 0, not {self.width!r}")
        if not len(self.ok) == len(self.fail) == len(self.info):
            raise ValueError("op buckets: ok, fail and info differ in length")


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """What a timeline shows; see the module's docstring for the JSON."""

    version: int = VERSION
    source: Source
    t0: float  # unix seconds of time 0
    duration: float
    nodes: list[int]
    spans: list[Span] = msgspec.field(default_factory=list)
    faults: list[TimelineFault] = msgspec.field(default_factory=list)
    ops: list[Op] = msgspec.field(default_factory=list)
    marks: list[Mark] = msgspec.field(default_factory=list)
    ops_total: int | None = None  # set when ``ops`` was left out
    op_buckets: OpBuckets | None = None  # stands in for ``ops`` when they were left out

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ValueError(f"recording version {self.version} (this reader knows {VERSION})")
        if not (math.isfinite(self.duration) and self.duration >= 0):
            raise ValueError(f"recording duration must be >= 0, not {self.duration!r}")
        known = set(self.nodes)
        for span in self.spans:
            if span.node not in known:
                raise ValueError(f"span of node {span.node}: the node is not in nodes")


def encode(recording: Recording) -> bytes:
    """The recording as JSON."""
    return msgspec.json.encode(recording)


def decode(data: bytes | str) -> Recording:
    """A recording from JSON; :class:`RecordingError` says what is wrong and where."""
    try:
        return msgspec.json.decode(data, type=Recording)
    except msgspec.DecodeError as exc:
        raise RecordingError(f"not a recording: {exc}") from exc
