"""The chaos runner's raw records (``history.jsonl``'s dicts) as one typed :class:`Recording`.

The runner records three kinds of dict (see ``runner.py``): ``op`` (``client``, ``kind``,
``value``, ``call``, ``ret``, ``status``, ``node``, ``index``, ``error``), ``fault``
(``kind``, ``start``, ``end``, ``target``, ``detail``, ``nodes``) and ``status``, a sample
of one node every 250 ms (``time``, ``node``, ``state``, ``term``, ``commit``, ``leader``).
:func:`recording_from_chaos` validates them, once, and turns them into the recording:
each status sample holds until the node's next sample, consecutive samples with the same
role and term make one span, and each leader span starts with a ``BecameLeader`` mark.
Anything malformed is a :class:`RecordingError` naming the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec

from raftlog.timeline import Mark, Op, Recording, RecordingError, Role, Span, TimelineFault

# A node's ``state`` (core.Role's names) as a recording's role.
ROLE_OF_STATE: Final[Mapping[str, Role]] = {
    "Leader": "leader",
    "Follower": "follower",
    "Candidate": "candidate",
    "PreCandidate": "precandidate",
    "down": "down",
}

_T = TypeVar("_T")


class _RawOp(msgspec.Struct, kw_only=True):
    client: int
    kind: str
    value: str | None = None
    call: float
    ret: float | None = None
    status: str
    node: int | None = None
    index: int | None = None
    error: str | None = None


class _RawFault(msgspec.Struct, kw_only=True):
    kind: str
    start: float
    end: float | None = None
    target: str = ""
    detail: str = ""
    nodes: list[int] = msgspec.field(default_factory=list)


class _RawStatus(msgspec.Struct, kw_only=True):
    time: float
    node: int
    state: str
    term: int | None = None


def _convert(what: str, i: int, record: Mapping[str, Any], into: type[_T]) -> _T:
    try:
        return msgspec.convert(record, type=into, strict=True)
    except msgspec.ValidationError as exc:
        raise RecordingError(f"{what} record {i}: {exc} (record: {_preview(record)})") from exc


def _preview(record: object) -> str:
    text = repr(record)
    return text if len(text) <= 200 else text[:199] + "…"


def recording_from_chaos(
    *,
    ops: Sequence[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
    statuses: Sequence[Mapping[str, Any]],
    t0: float,
    duration: float = 0.0,
    nodes: Iterable[int] = (),
) -> Recording:
    """The run's records as a recording. ``duration`` is the run's planned length (the
    recording lasts at least that, and until its last record); ``nodes`` adds nodes that
    have no status sample (a node that joined and left between two samples)."""
    typed_ops: list[Op] = []
    for i, record in enumerate(ops):
        raw = _convert("op", i, record, _RawOp)
        if raw.status not in ("ok", "fail", "info"):
            raise RecordingError(f"op record {i}: status {raw.status!r} is not ok, fail or info")
        try:
            typed_ops.append(
                Op(
                    process=raw.client,
                    kind=raw.kind,
                    start=raw.call,
                    end=raw.ret,
                    outcome=raw.status,  # type: ignore[arg-type]  # checked just above
                    value=raw.value,
                    node=raw.node,
                    index=raw.index,
                    error=raw.error,
                )
            )
        except ValueError as exc:
            raise RecordingError(f"op record {i}: {exc}") from exc

    typed_faults: list[TimelineFault] = []
    for i, record in enumerate(faults):
        f = _convert("fault", i, record, _RawFault)
        try:
            typed_faults.append(
                TimelineFault(
                    kind=f.kind,
                    start=f.start,
                    end=f.end,
                    nodes=sorted(set(f.nodes)),
                    target=f.target,
                    detail=f.detail,
                )
            )
        except ValueError as exc:
            raise RecordingError(f"fault record {i}: {exc}") from exc

    samples: dict[int, list[tuple[float, Role, int | None]]] = {}
    for i, record in enumerate(statuses):
        s = _convert("status", i, record, _RawStatus)
        role = ROLE_OF_STATE.get(s.state)
        if role is None:
            known = ", ".join(ROLE_OF_STATE)
            raise RecordingError(
                f"status record {i}: state {s.state!r} of node {s.node} is not one of {known}"
            )
        if not s.time >= 0:
            raise RecordingError(f"status record {i}: time {s.time!r} is before time 0")
        samples.setdefault(s.node, []).append((s.time, role, s.term))

    spans: list[Span] = []
    marks: list[Mark] = []
    for node, node_samples in samples.items():
        node_samples.sort(key=lambda sample: sample[0])
        start, role, term = node_samples[0]
        for t, next_role, next_term in node_samples[1:]:
            if (next_role, next_term) != (role, term):
                spans.append(Span(node=node, role=role, term=term, start=start, end=t))
                start, role, term = t, next_role, next_term
        spans.append(Span(node=node, role=role, term=term, start=start, end=None))
    for span in spans:
        if span.role == "leader":
            marks.append(
                Mark(
                    t=span.start,
                    node=span.node,
                    kind="BecameLeader",
                    text=f"node {span.node} seen as leader of term {span.term}",
                )
            )
    spans.sort(key=lambda span: (span.node, span.start))
    marks.sort(key=lambda mark: mark.t)

    end = max(
        [
            duration,
            *(s.start for s in spans),
            *(t for f in typed_faults for t in (f.start, f.end) if t is not None),
            *(t for op in typed_ops for t in (op.start, op.end) if t is not None),
        ]
    )
    try:
        return Recording(
            source="chaos",
            t0=t0,
            duration=end,
            nodes=sorted(set(samples) | set(nodes)),
            spans=spans,
            faults=sorted(typed_faults, key=lambda f: f.start),
            ops=typed_ops,
            marks=marks,
        )
    except ValueError as exc:
        raise RecordingError(str(exc)) from exc
