"""The chaos runner's records as a typed recording (raftlog.chaos.recording, raftlog.timeline)."""

from __future__ import annotations

from typing import Any

import pytest

from raftlog.chaos.recording import recording_from_chaos
from raftlog.timeline import Recording, RecordingError, Span, decode, encode


def _status(t: float, node: int, state: str, term: int | None) -> dict[str, Any]:
    return {"type": "status", "time": t, "node": node, "state": state, "term": term,
            "commit": None, "leader": None}  # fmt: skip


def _op(**changes: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "type": "op", "id": 1, "client": 2, "kind": "append", "value": "c2-1", "call": 1.0,
        "ret": 1.25, "status": "ok", "index": 7, "result_len": None, "node": 3, "error": None,
    }  # fmt: skip
    op.update(changes)
    return op


def _fault(**changes: Any) -> dict[str, Any]:
    fault: dict[str, Any] = {
        "type": "fault", "start": 2.0, "end": 5.0, "kind": "pause", "target": "node 3",
        "detail": "SIGSTOP, then SIGCONT", "nodes": [3],
    }  # fmt: skip
    fault.update(changes)
    return fault


def _convert(**records: Any) -> Recording:
    kwargs: dict[str, Any] = {"ops": [], "faults": [], "statuses": [], "t0": 1_700_000_000.0}
    kwargs.update(records)
    return recording_from_chaos(**kwargs)


def test_samples_become_spans_with_marks() -> None:
    statuses = [
        _status(0.0, 1, "Follower", 1),
        _status(0.25, 1, "PreCandidate", 1),
        _status(0.5, 1, "Candidate", 2),
        _status(0.75, 1, "Leader", 2),
        _status(1.0, 1, "Leader", 2),
        _status(1.25, 1, "down", None),
        _status(0.0, 2, "Follower", 1),
        _status(1.0, 2, "Follower", 2),
    ]
    rec = _convert(statuses=statuses[::-1], nodes=[4], duration=3.0)  # any order
    assert rec.nodes == [1, 2, 4]
    assert rec.spans == [
        Span(node=1, role="follower", term=1, start=0.0, end=0.25),
        Span(node=1, role="precandidate", term=1, start=0.25, end=0.5),
        Span(node=1, role="candidate", term=2, start=0.5, end=0.75),
        Span(node=1, role="leader", term=2, start=0.75, end=1.25),
        Span(node=1, role="down", term=None, start=1.25, end=None),
        Span(node=2, role="follower", term=1, start=0.0, end=1.0),
        Span(node=2, role="follower", term=2, start=1.0, end=None),
    ]
    assert [(m.t, m.node, m.kind) for m in rec.marks] == [(0.75, 1, "BecameLeader")]
    assert rec.duration == 3.0
    assert rec.t0 == 1_700_000_000.0


def test_ops_and_faults() -> None:
    rec = _convert(
        ops=[_op(), _op(kind="read", value=None, ret=None, status="info", index=None)],
        faults=[_fault(start=6.0, end=None, kind="kill", nodes=[1, 1]), _fault()],
    )
    assert [(o.process, o.kind, o.start, o.end, o.outcome, o.value) for o in rec.ops] == [
        (2, "append", 1.0, 1.25, "ok", "c2-1"),
        (2, "read", 1.0, None, "info", None),
    ]
    assert (rec.ops[0].node, rec.ops[0].index) == (3, 7)
    assert [(f.kind, f.start, f.end, f.nodes) for f in rec.faults] == [
        ("pause", 2.0, 5.0, [3]),
        ("kill", 6.0, None, [1]),
    ]
    assert rec.duration == 6.0  # the last thing recorded
    fault_without_nodes = {k: v for k, v in _fault().items() if k != "nodes"}
    assert _convert(faults=[fault_without_nodes]).faults[0].nodes == []


def test_the_json_round_trips_in_the_documented_shape() -> None:
    rec = _convert(ops=[_op()], faults=[_fault()], statuses=[_status(0.0, 1, "Leader", 3)])
    assert decode(encode(rec)) == rec
    data = encode(rec).decode()
    for key in ('"version":1', '"source":"chaos"', '"t0":', '"duration":', '"nodes":[1]',
                '"spans":', '"faults":', '"ops":', '"marks":', '"end":null'):  # fmt: skip
        assert key in data, key


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"ops": [_op(call="soon")]}, r"op record 0: Expected `float`, got `str` - at `\$.call`"),
        ({"ops": [_op(ret=0.5)]}, r"op record 0: .*end 0.5 is before start 1.0"),
        ({"ops": [_op(status="maybe")]}, r"op record 0: status 'maybe' is not ok, fail or info"),
        ({"ops": [_op(client=None)]}, r"op record 0: .*`\$.client`"),
        ({"ops": [_op(call=float("nan"))]}, r"op record 0: .*start must be a finite time"),
        ({"faults": [{"kind": "kill"}]}, r"fault record 0: .*missing required field `start`"),
        ({"faults": [_fault(end=1.0)]}, r"fault record 0: .*end 1.0 is before start 2.0"),
        ({"faults": [_fault(nodes="3")]}, r"fault record 0: .*`\$.nodes`"),
        (
            {"statuses": [_status(0.0, 1, "Follower", 1), _status(0.5, 1, "Boss", 1)]},
            r"status record 1: state 'Boss' of node 1 is not one of Leader, Follower",
        ),
        ({"statuses": [_status(-1.0, 1, "Leader", 1)]}, r"status record 0: time -1.0 is before"),
        ({"statuses": [{**_status(0.0, 1, "Leader", 1), "node": "1"}]}, r"`\$.node`"),
        ({"statuses": [{**_status(0.0, 1, "Leader", 1), "term": True}]}, r"`\$.term`"),
    ],
)
def test_bad_records_are_clear_errors(records: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        _convert(**records)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "Expected `object`"),
        (b'{"version": 2, "source": "chaos", "t0": 0, "duration": 1, "nodes": []}', "version 2"),
        (b'{"version": 1, "source": "x", "t0": 0, "duration": 1, "nodes": []}', "source"),
        (
            b'{"version": 1, "source": "dashboard", "t0": 0, "duration": 1, "nodes": [],'
            b' "spans": [{"node": 1, "role": "leader", "term": 1, "start": 0, "end": null}]}',
            "node 1: the node is not in nodes",
        ),
        (
            b'{"version": 1, "source": "dashboard", "t0": 0, "duration": 1, "nodes": [1],'
            b' "spans": [{"node": 1, "role": "king", "term": 1, "start": 0, "end": null}]}',
            "role",
        ),
    ],
)
def test_decoding_checks_the_format(data: bytes, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        decode(data)


def test_unknown_keys_are_ignored() -> None:
    rec = decode(
        b'{"version": 1, "source": "dashboard", "t0": 5, "duration": 2, "nodes": [1],'
        b' "colour": "blue", "marks": [{"t": 1, "node": 1, "kind": "VoteGranted", "x": 1}]}'
    )
    assert rec.marks[0].kind == "VoteGranted"
