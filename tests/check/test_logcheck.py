"""Tests of the linear-time append-only log checker (raftlog.check.logcheck).

Three layers:

* hand-written histories, one per kind of valid behaviour and one per kind of violation,
  each asserting the exact problem reported;
* a property: histories recorded around a real sequential log (every operation takes
  effect at an instant inside its interval) are accepted, and one mutation of each kind
  makes them rejected, with the problem naming it;
* a cross-check against the general WGL checker (raftlog.check.wgl) with a tiny log model:
  on small histories, valid, mutated or arbitrary, both checkers give the same verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftlog.check.history import Operation
from raftlog.check.logcheck import LogCheckResult, LogOp, Status, check_log_history
from raftlog.check.models import Model
from raftlog.check.wgl import check

INF = math.inf
Draw = Callable[[st.SearchStrategy[Any]], Any]  # st.DrawFn, or st.DataObject.draw
GHOST = b"ghost"  # a value no client ever appends
ALL_PROBLEMS = 10_000  # max_problems for tests that look for one problem among several


class History:
    """Writes small histories tersely; ids and clients are numbered in creation order."""

    def __init__(self) -> None:
        self.ops: list[LogOp] = []

    def append(
        self,
        value: bytes,
        call: float,
        ret: float = INF,
        status: Status = "ok",
        position: int = 0,
    ) -> LogOp:
        op = LogOp(
            id=len(self.ops),
            client=len(self.ops),
            kind="append",
            call=call,
            ret=INF if status == "info" else ret,
            status=status,
            value=value,
            position=position,
        )
        self.ops.append(op)
        return op

    def read(
        self,
        result: tuple[bytes, ...],
        call: float,
        ret: float = INF,
        status: Status = "ok",
    ) -> LogOp:
        op = LogOp(
            id=len(self.ops),
            client=len(self.ops),
            kind="read",
            call=call,
            ret=INF if status == "info" else ret,
            status=status,
            result=result,
        )
        self.ops.append(op)
        return op

    def check(self, final_log: Sequence[bytes]) -> LogCheckResult:
        return check_log_history(self.ops, final_log, max_problems=ALL_PROBLEMS)


def real_time_problem(first: LogOp, then: LogOp) -> str:
    return (
        f"real-time order violated: {first.describe()} finished before {then.describe()} "
        "began, yet the log orders it after"
    )


# --- valid histories ---------------------------------------------------------------------------


def test_empty_history_and_log_is_linearizable() -> None:
    result = check_log_history([], [])
    assert result.ok
    assert result.problems == ()
    assert result.checked_ops == 0
    assert result.describe() == "linearizable (0 operations)"


def test_sequential_history_is_linearizable() -> None:
    h = History()
    h.read((), 0, 1)
    h.append(b"a", 2, 3, position=1)
    h.read((b"a",), 4, 5)
    h.append(b"b", 6, 7, position=2)
    h.append(b"c", 8, 9, position=3)
    h.read((b"a", b"b", b"c"), 10, 11)
    result = h.check([b"a", b"b", b"c"])
    assert result.ok, result.describe()
    assert result.checked_ops == 6


@pytest.mark.parametrize("a_first", [True, False])
def test_concurrent_appends_may_land_in_either_order(a_first: bool) -> None:
    h = History()
    h.append(b"a", 0, 10, position=1 if a_first else 2)
    h.append(b"b", 1, 5, position=2 if a_first else 1)
    final = [b"a", b"b"] if a_first else [b"b", b"a"]
    assert h.check(final).ok


@pytest.mark.parametrize("sees", [True, False])
def test_read_concurrent_with_an_append_may_or_may_not_see_it(sees: bool) -> None:
    h = History()
    h.append(b"a", 0, 10, position=1)
    h.read((b"a",) if sees else (), 2, 3)
    h.read((b"a",), 11, 12)
    assert h.check([b"a"]).ok


def test_concurrent_reads_may_disagree_while_an_append_is_in_flight() -> None:
    h = History()
    h.append(b"a", 0, 10, position=1)
    h.read((b"a",), 1, 4)
    h.read((), 2, 5)  # overlaps the first read: may be ordered before it
    assert h.check([b"a"]).ok


def test_reads_of_equal_length_are_unordered_among_themselves() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    for k in range(4):
        h.read((b"a",), 2 + 2 * k, 3 + 2 * k)
    h.append(b"b", 20, 21, position=2)
    assert h.check([b"a", b"b"]).ok


def test_a_return_and_a_call_at_the_same_instant_are_concurrent() -> None:
    h = History()
    h.append(b"a", 0, 5, position=2)
    h.append(b"b", 5, 6, position=1)  # called when a returned: may precede it
    h.read((b"b",), 5, 7)  # called when a returned: may precede it too
    assert h.check([b"b", b"a"]).ok


def test_indeterminate_append_present_in_the_final_log() -> None:
    h = History()
    h.append(b"a", 0, status="info")
    h.read((), 1, 2)
    h.append(b"b", 3, 4, position=1)
    h.read((b"b", b"a"), 10, 11)  # a took effect long after its client gave up
    result = h.check([b"b", b"a"])
    assert result.ok, result.describe()
    assert result.checked_ops == 4  # the indeterminate append takes part


def test_indeterminate_append_absent_from_the_final_log() -> None:
    h = History()
    h.append(b"a", 0, status="info")
    h.append(b"b", 3, 4, position=1)
    h.read((b"b",), 10, 11)
    result = h.check([b"b"])
    assert result.ok, result.describe()
    assert result.checked_ops == 2  # the lost indeterminate append never happened


def test_failed_append_absent_from_the_log_is_ignored() -> None:
    h = History()
    h.append(b"a", 0, 1, status="fail")
    h.append(b"b", 2, 3, position=1)
    assert h.check([b"b"]).ok


@pytest.mark.parametrize("status", ["fail", "info"])
def test_reads_that_did_not_succeed_are_ignored(status: Status) -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    # Nonsense answers: wrong values, stale, from the future. None of it counts.
    h.read((GHOST, b"z"), 2, 3, status=status)
    h.read((), 4, 5, status=status)
    h.read((b"a", b"b"), 6, 7, status=status)
    result = h.check([b"a"])
    assert result.ok, result.describe()
    assert result.checked_ops == 1


# --- violations --------------------------------------------------------------------------------


def test_lost_acknowledged_append() -> None:
    h = History()
    a = h.append(b"a", 0, 1, position=1)
    h.append(b"b", 2, 3, position=2)
    result = h.check([b"b"])
    assert not result.ok
    assert (
        f"acknowledged append lost or misplaced: {a.describe()}, but the value is not in the log"
    ) in result.problems
    assert result.describe().startswith("not linearizable:\n  ")


def test_misplaced_acknowledged_append() -> None:
    h = History()
    a = h.append(b"a", 0, 1, position=2)
    result = h.check([b"a"])
    assert not result.ok
    assert result.problems == (
        f"acknowledged append lost or misplaced: {a.describe()}, but the value is at position 1",
    )


def test_duplicate_value_in_the_log() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    h.append(b"b", 2, 3, position=2)
    result = h.check([b"a", b"b", b"a"])
    assert not result.ok
    assert f"value {b'a'!r} is in the log twice (positions 1, 3)" in result.problems


def test_value_no_client_appended_in_the_log() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    result = h.check([b"a", GHOST])
    assert not result.ok
    assert result.problems == (f"value {GHOST!r} at position 2 was never appended by a client",)


def test_value_of_a_failed_append_in_the_log() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    b = h.append(b"b", 2, 3, status="fail")
    result = h.check([b"a", b"b"])
    assert not result.ok
    assert result.problems == (
        f"value {b'b'!r} is at position 2 but its append failed: {b.describe()}",
    )


def test_the_same_value_appended_twice_is_reported() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    h.append(b"a", 2, 3, status="fail")
    result = h.check([b"a"])
    assert not result.ok
    assert f"value {b'a'!r} was appended twice: values must be unique" in result.problems


@pytest.mark.parametrize(
    ("answer", "differs_at"),
    [
        ((b"b",), 1),  # wrong value
        ((b"a", GHOST), 2),  # a value never appended
        ((b"b", b"a"), 1),  # right values, wrong order
        ((b"a", b"b", b"c"), 3),  # longer than the final log
    ],
)
def test_read_that_is_not_a_prefix_of_the_final_log(
    answer: tuple[bytes, ...], differs_at: int
) -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    h.append(b"b", 0, 1, position=2)
    r = h.read(answer, 2, 3)
    result = h.check([b"a", b"b"])
    assert not result.ok
    assert (
        f"read is not a prefix of the final log (differs at position {differs_at}): {r.describe()}"
    ) in result.problems


def test_stale_read() -> None:
    h = History()
    a = h.append(b"a", 0, 1, position=1)
    r = h.read((), 2, 3)  # began after a was acknowledged, yet does not see it
    result = h.check([b"a"])
    assert not result.ok
    assert result.problems == (real_time_problem(a, r),)


def test_stale_read_missing_only_the_last_acknowledged_append() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    b = h.append(b"b", 2, 3, position=2)
    r = h.read((b"a",), 4, 5)
    result = h.check([b"a", b"b"])
    assert result.problems == (real_time_problem(b, r),)


@pytest.mark.parametrize("status", ["ok", "info"])
def test_read_that_sees_the_future(status: Status) -> None:
    h = History()
    r = h.read((b"a",), 0, 1)
    a = h.append(b"a", 2, 3, status=status, position=1)  # invoked after the read returned
    result = h.check([b"a"])
    assert not result.ok
    assert result.problems == (real_time_problem(r, a),)


def test_appends_ordered_against_real_time() -> None:
    h = History()
    a = h.append(b"a", 0, 1, position=2)
    b = h.append(b"b", 2, 3, position=1)  # a finished before b began, yet b comes first
    result = h.check([b"b", b"a"])
    assert not result.ok
    assert result.problems == (real_time_problem(a, b),)


def test_reads_going_backwards_in_real_time() -> None:
    h = History()
    h.append(b"a", 0, status="info")
    first = h.read((b"a",), 1, 2)
    later = h.read((), 3, 4)  # began after the first read returned, sees less
    result = h.check([b"a"])
    assert not result.ok
    assert result.problems == (real_time_problem(first, later),)


def test_max_problems_caps_the_report() -> None:
    h = History()
    for k in range(20):
        h.append(b"v%d" % k, 0, 1, position=k + 1)
    result = check_log_history(h.ops, [], max_problems=3)
    assert not result.ok
    assert len(result.problems) == 3


def test_lost_acknowledged_append_with_no_position_is_rejected() -> None:
    h = History()
    a = h.append(b"a", 0, 1)  # acknowledged, but the harness recorded no position
    h.read((), 2, 3)  # and a later read does not see it
    result = h.check([])
    general = check(AppendLogModel(), as_wgl_history(h.ops, []))
    assert not general.linearizable
    assert not result.ok
    assert any(a.describe() in p for p in result.problems)


def test_max_problems_zero_still_rejects() -> None:
    h = History()
    h.append(b"a", 0, 1, position=1)
    assert not check_log_history(h.ops, [], max_problems=0).ok


def test_describe_renders_operations() -> None:
    h = History()
    assert h.append(b"a", 1, 2.5, position=3).describe() == (
        "op 0 client 0 append b'a' -> position 3 ok [1, 2.5]"
    )
    assert h.append(b"b", 4, status="info").describe() == "op 1 client 1 append b'b' info [4, ?]"
    assert h.read((b"a", b"b"), 5, 6).describe() == "op 2 client 2 read -> 2 values ok [5, 6]"
    assert h.read((), 7, 8, status="fail").describe() == "op 3 client 3 read fail [7, 8]"


# --- histories recorded around a real log ------------------------------------------------------

_OUTCOMES = ("ok", "ok", "ok", "fail", "info-applied", "info-lost")


@dataclass(frozen=True)
class Recorded:
    """A history and the final log of the sequential log it was recorded around."""

    ops: tuple[LogOp, ...]
    final: tuple[bytes, ...]


@st.composite
def recorded_histories(draw: st.DrawFn, max_ops: int = 14) -> Recorded:
    """Clients run operations one at a time against a real sequential log.

    Each operation that takes effect does so at an instant (its linearization point) inside
    its interval; indeterminate appends may take effect at any instant after their call
    (also after the client gave up), or never. Failed operations do not take effect. Times
    are small integers, so calls and returns often tie. A client whose operation is
    indeterminate is replaced by a new one (as in Jepsen).
    """
    n_slots = draw(st.integers(min_value=1, max_value=4))
    n_ops = draw(st.integers(min_value=0, max_value=max_ops))
    free = [draw(st.integers(min_value=0, max_value=3)) for _ in range(n_slots)]
    client_of = list(range(n_slots))
    next_client = n_slots
    planned: list[tuple[int, int, str, int, int, str]] = []  # id, client, kind, call, ret, how
    points: list[tuple[int, int, int]] = []  # (instant, tie-break, id) of those taking effect
    for op_id in range(n_ops):
        slot = draw(st.integers(min_value=0, max_value=n_slots - 1))
        kind = draw(st.sampled_from(("append", "read")))
        call = free[slot] + draw(st.integers(min_value=0, max_value=3))
        ret = call + draw(st.integers(min_value=0, max_value=4))
        how = draw(st.sampled_from(_OUTCOMES))
        if how == "ok":
            points.append((draw(st.integers(call, ret)), draw(st.integers(0, 9)), op_id))
        elif how == "info-applied":
            points.append((draw(st.integers(call, call + 8)), draw(st.integers(0, 9)), op_id))
        planned.append((op_id, client_of[slot], kind, call, ret, how))
        free[slot] = ret
        if how.startswith("info"):
            client_of[slot] = next_client
            next_client += 1

    # Run the log: the operations that take effect, in linearization order.
    log: list[bytes] = []
    answers: dict[int, tuple[int, tuple[bytes, ...]]] = {}
    for _, _, op_id in sorted(points):
        if planned[op_id][2] == "append":
            log.append(b"v%d" % op_id)
        answers[op_id] = (len(log), tuple(log))

    ops: list[LogOp] = []
    for op_id, client, kind, call, ret, how in planned:
        status: Status = "ok" if how == "ok" else "fail" if how == "fail" else "info"
        position, result = answers.get(op_id, (0, ()))
        op = LogOp(
            id=op_id,
            client=client,
            kind="append" if kind == "append" else "read",
            call=call,
            ret=INF if status == "info" else ret,
            status=status,
        )
        if kind == "append":
            op = msgspec.structs.replace(
                op, value=b"v%d" % op_id, position=position if status == "ok" else 0
            )
        elif status == "ok":
            op = msgspec.structs.replace(op, result=result)
        elif status == "fail":
            # A failed read's answer is meaningless: make it nonsense.
            op = msgspec.structs.replace(op, result=draw(st.sampled_from([(), (GHOST,)])))
        ops.append(op)
    return Recorded(tuple(ops), tuple(log))


@dataclass(frozen=True)
class Mutant:
    """A mutated history and the problem the checker must report for it."""

    kind: str
    ops: tuple[LogOp, ...]
    final: tuple[bytes, ...]
    expect: Callable[[str], bool]


def _slotted(h: Recorded) -> list[LogOp]:
    """The appends whose value is in the final log (ok or indeterminate)."""
    return [op for op in h.ops if op.kind == "append" and op.value in h.final]


def _new_read(h: Recorded, call: float, ret: float, result: tuple[bytes, ...]) -> LogOp:
    return LogOp(
        id=max((op.id for op in h.ops), default=-1) + 1,
        client=max((op.client for op in h.ops), default=-1) + 1,
        kind="read",
        call=call,
        ret=ret,
        status="ok",
        result=result,
    )


def _replace(h: Recorded, new: LogOp) -> tuple[LogOp, ...]:
    return tuple(new if op.id == new.id else op for op in h.ops)


def _insert(final: tuple[bytes, ...], at: int, value: bytes) -> tuple[bytes, ...]:
    return (*final[:at], value, *final[at:])


def _lost(draw: Draw, h: Recorded) -> Mutant | None:
    acked = [op for op in h.ops if op.kind == "append" and op.status == "ok"]
    if not acked:
        return None
    a = draw(st.sampled_from(acked))
    final = tuple(v for v in h.final if v != a.value)
    text = f"acknowledged append lost or misplaced: {a.describe()}, but the value is not in the log"
    return Mutant("lost", h.ops, final, lambda p: p == text)


def _misplaced(draw: Draw, h: Recorded) -> Mutant | None:
    acked = [op for op in h.ops if op.kind == "append" and op.status == "ok"]
    if not acked:
        return None
    a = draw(st.sampled_from(acked))
    wrong = draw(st.integers(1, len(h.final) + 1).filter(lambda p: p != a.position))
    moved = msgspec.structs.replace(a, position=wrong)
    text = (
        f"acknowledged append lost or misplaced: {moved.describe()}, "
        f"but the value is at position {a.position}"
    )
    return Mutant("misplaced", _replace(h, moved), h.final, lambda p: p == text)


def _duplicate(draw: Draw, h: Recorded) -> Mutant | None:
    if not h.final:
        return None
    value = draw(st.sampled_from(h.final))
    final = _insert(h.final, draw(st.integers(0, len(h.final))), value)
    text = f"value {value!r} is in the log twice"
    return Mutant("duplicate", h.ops, final, lambda p: p.startswith(text))


def _never_appended(draw: Draw, h: Recorded) -> Mutant | None:
    at = draw(st.integers(0, len(h.final)))
    text = f"value {GHOST!r} at position {at + 1} was never appended by a client"
    return Mutant("never-appended", h.ops, _insert(h.final, at, GHOST), lambda p: p == text)


def _failed_in_log(draw: Draw, h: Recorded) -> Mutant | None:
    failed = [op for op in h.ops if op.kind == "append" and op.status == "fail"]
    present = _slotted(h)
    if not failed and not present:
        return None
    if failed and (not present or draw(st.booleans())):
        # The log holds the value of an append that was reported as failed.
        a = draw(st.sampled_from(failed))
        at = draw(st.integers(0, len(h.final)))
        ops, final, pos = h.ops, _insert(h.final, at, a.value), at + 1
    else:
        # An append whose value is in the log is reported as failed.
        b = draw(st.sampled_from(present))
        a = msgspec.structs.replace(b, status="fail", ret=b.call + 1, position=0)
        ops, final, pos = _replace(h, a), h.final, h.final.index(a.value) + 1
    text = f"value {a.value!r} is at position {pos} but its append failed: {a.describe()}"
    return Mutant("failed-in-log", ops, final, lambda p: p == text)


def _not_prefix(draw: Draw, h: Recorded) -> Mutant | None:
    reads = [op for op in h.ops if op.kind == "read" and op.status == "ok"]
    if not reads:
        return None
    r = draw(st.sampled_from(reads))
    n = len(r.result)
    how = draw(st.sampled_from(("extend", "replace", "drop")))
    if how == "replace" and n:
        k = draw(st.integers(0, n - 1))
        result = (*r.result[:k], GHOST, *r.result[k + 1 :])
    elif how == "drop" and n >= 2:
        k = draw(st.integers(0, n - 2))  # not the last one: that would leave a prefix
        result = (*r.result[:k], *r.result[k + 1 :])
    else:
        result = (*r.result, GHOST)
    bad = msgspec.structs.replace(r, result=result)
    text = "read is not a prefix of the final log (differs at position "
    return Mutant(
        "not-prefix",
        _replace(h, bad),
        h.final,
        lambda p: p.startswith(text) and p.endswith(bad.describe()),
    )


def _stale_read(draw: Draw, h: Recorded) -> Mutant | None:
    acked = [op for op in h.ops if op.kind == "append" and op.status == "ok"]
    if not acked:
        return None
    a = draw(st.sampled_from(acked))
    call = a.ret + draw(st.sampled_from((0.5, 1, 3)))
    ret = call + draw(st.integers(0, 2))
    r = _new_read(h, call, ret, h.final[: draw(st.integers(0, a.position - 1))])
    text = f" finished before {r.describe()} began, yet the log orders it after"
    return Mutant(
        "stale-read",
        (*h.ops, r),
        h.final,
        lambda p: p.startswith("real-time order violated: ") and p.endswith(text),
    )


def _future_read(draw: Draw, h: Recorded) -> Mutant | None:
    present = _slotted(h)
    if not present:
        return None
    a = draw(st.sampled_from(present))
    pos = h.final.index(a.value) + 1
    ret = a.call - draw(st.sampled_from((0.5, 1, 3)))
    call = ret - draw(st.integers(0, 2))
    r = _new_read(h, call, ret, h.final[: draw(st.integers(pos, len(h.final)))])
    text = f" finished before {a.describe()} began, yet the log orders it after"
    return Mutant(
        "future-read",
        (*h.ops, r),
        h.final,
        lambda p: p.startswith("real-time order violated: ") and p.endswith(text),
    )


def _appends_against_real_time(draw: Draw, h: Recorded) -> Mutant | None:
    present = _slotted(h)
    pairs = [
        (a, b)
        for a in present
        for b in present
        if a.status == "ok" and h.final.index(a.value) > h.final.index(b.value)
    ]
    if not pairs:
        return None
    a, b = draw(st.sampled_from(pairs))
    # a (later in the log) now finishes before b (earlier in the log) begins.
    ret = b.call - draw(st.sampled_from((0.5, 1, 3)))
    moved = msgspec.structs.replace(a, call=ret - draw(st.integers(0, 2)), ret=ret)
    text = f" finished before {b.describe()} began, yet the log orders it after"
    return Mutant(
        "appends-against-real-time",
        _replace(h, moved),
        h.final,
        lambda p: p.startswith("real-time order violated: ") and p.endswith(text),
    )


def _reads_backwards(draw: Draw, h: Recorded) -> Mutant | None:
    reads = [op for op in h.ops if op.kind == "read" and op.status == "ok" and op.result]
    if not reads:
        return None
    first = draw(st.sampled_from(reads))
    call = first.ret + draw(st.sampled_from((0.5, 1, 3)))
    ret = call + draw(st.integers(0, 2))
    later = _new_read(h, call, ret, h.final[: draw(st.integers(0, len(first.result) - 1))])
    text = f" finished before {later.describe()} began, yet the log orders it after"
    return Mutant(
        "reads-backwards",
        (*h.ops, later),
        h.final,
        lambda p: p.startswith("real-time order violated: ") and p.endswith(text),
    )


Mutation = Callable[[Draw, Recorded], Mutant | None]
MUTATIONS: tuple[Mutation, ...] = (
    _lost,
    _misplaced,
    _duplicate,
    _never_appended,
    _failed_in_log,
    _not_prefix,
    _stale_read,
    _future_read,
    _appends_against_real_time,
    _reads_backwards,
)


def mutate(draw: Draw, h: Recorded) -> Mutant:
    """Apply one mutation, drawn among those applicable (never-appended always is)."""
    order: list[Mutation] = draw(st.permutations(MUTATIONS))
    for mutation in order:
        mutant = mutation(draw, h)
        if mutant is not None:
            return mutant
    raise AssertionError("never-appended applies to every history")


@settings(max_examples=200, deadline=None)
@given(recorded_histories(), st.data())
def test_recorded_histories_are_accepted_and_mutants_rejected(
    h: Recorded, data: st.DataObject
) -> None:
    result = check_log_history(h.ops, h.final, max_problems=ALL_PROBLEMS)
    assert result.ok, result.describe()
    # Every ok op, and every indeterminate append that took effect, takes part.
    assert result.checked_ops == sum(
        1 for op in h.ops if op.status == "ok" or (op.kind == "append" and op.value in h.final)
    )

    mutant = mutate(data.draw, h)
    result = check_log_history(mutant.ops, mutant.final, max_problems=ALL_PROBLEMS)
    assert not result.ok, mutant.kind
    assert any(mutant.expect(p) for p in result.problems), (mutant.kind, result.problems)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_every_mutation_applies_to_a_rich_history_and_is_caught(data: st.DataObject) -> None:
    h = History()
    h.append(b"v0", 0, 2, position=1)
    h.read((b"v0",), 3, 4)
    h.append(b"v2", 1, status="info")
    h.append(b"v3", 5, 6, position=3)
    h.append(b"v4", 5, 6, status="fail")
    h.append(b"v5", 9, status="info")
    recorded = Recorded(tuple(h.ops), (b"v0", b"v2", b"v3"))
    assert check_log_history(recorded.ops, recorded.final).ok
    for mutation in MUTATIONS:
        mutant = mutation(data.draw, recorded)
        assert mutant is not None, mutation.__name__
        result = check_log_history(mutant.ops, mutant.final, max_problems=ALL_PROBLEMS)
        assert not result.ok, mutant.kind
        assert any(mutant.expect(p) for p in result.problems), (mutant.kind, result.problems)


# --- cross-check with the general checker ------------------------------------------------------


class AppendLogModel(Model[tuple[bytes, ...]]):
    """An append-only log: the state is the tuple of values.

    ``append``: input the value; an ok append's output is its 1-based position. ``read``:
    an ok read's output is the whole log.
    """

    name = "append-log"

    def init(self) -> tuple[bytes, ...]:
        return ()

    def step(self, state: tuple[bytes, ...], op: Operation) -> tuple[bool, tuple[bytes, ...]]:
        if op.f == "append":
            assert isinstance(op.input, bytes)
            legal = op.status != "ok" or op.output == len(state) + 1
            return legal, (*state, op.input)
        return op.status != "ok" or op.output == state, state

    def constrains_nothing(self, op: Operation) -> bool:
        return op.f == "read" and op.status != "ok"


def as_wgl_history(ops: Sequence[LogOp], final: Sequence[bytes]) -> list[Operation]:
    """The same history for the general checker. The final log becomes one more read,
    called after everything else was called or returned: an indeterminate append is in the
    final log iff it took effect before that read."""
    converted: list[Operation] = []
    for op in ops:
        output: Hashable
        if op.kind == "append":
            output = op.position if op.status == "ok" else None
            inp: Hashable = op.value
        else:
            output = op.result if op.status == "ok" else None
            inp = None
        converted.append(
            Operation(op.id, op.client, op.kind, inp, output, op.call, op.ret, op.status)
        )
    times = [t for op in ops for t in (op.call, op.ret) if not math.isinf(t)]
    end = max(times, default=0) + 1
    last_id = max((op.id for op in ops), default=-1) + 1
    converted.append(Operation(last_id, -1, "read", None, tuple(final), end, end + 1, "ok"))
    return converted


def assert_checkers_agree(ops: Sequence[LogOp], final: Sequence[bytes]) -> bool:
    fast = check_log_history(ops, final)
    general = check(AppendLogModel(), as_wgl_history(ops, final), timeout_s=30)
    assert general.verdict != "unknown"
    assert fast.ok == general.linearizable, (fast.describe(), general.explanation)
    return fast.ok


@settings(max_examples=200, deadline=None)
@given(recorded_histories(max_ops=7), st.data())
def test_agrees_with_wgl_on_recorded_and_mutated_histories(
    h: Recorded, data: st.DataObject
) -> None:
    assert assert_checkers_agree(h.ops, h.final)
    mutant = mutate(data.draw, h)
    assert len(mutant.ops) <= 8
    assert not assert_checkers_agree(mutant.ops, mutant.final)


_ANY_STATUSES: tuple[Status, ...] = ("ok", "ok", "ok", "fail", "info")


@st.composite
def arbitrary_histories(draw: st.DrawFn) -> Recorded:
    """Small histories with no real log behind them: random intervals and statuses, a final
    log that is a random arrangement of some appended values, and answers that are mostly
    consistent with it (right positions, prefixes), so that both verdicts are common."""
    n = draw(st.integers(min_value=0, max_value=8))
    kinds = [draw(st.sampled_from(("append", "read"))) for _ in range(n)]
    values = [b"v%d" % k for k in range(n) if kinds[k] == "append"]
    final = tuple(draw(st.permutations(values))[: draw(st.integers(0, len(values)))])
    if draw(st.integers(0, 9)) == 0:
        final = _insert(final, draw(st.integers(0, len(final))), GHOST)
    ops: list[LogOp] = []
    for k, kind in enumerate(kinds):
        status = draw(st.sampled_from(_ANY_STATUSES))
        call = draw(st.integers(min_value=0, max_value=8))
        ret = INF if status == "info" else call + draw(st.integers(min_value=0, max_value=5))
        op = LogOp(id=k, client=k, kind="read", call=call, ret=ret, status=status)
        if kind == "append":
            value = b"v%d" % k
            true_pos = final.index(value) + 1 if value in final else len(final) + 1
            pos = draw(st.sampled_from((true_pos, true_pos, true_pos, 1, 2)))
            op = msgspec.structs.replace(
                op, kind="append", value=value, position=pos if status == "ok" else 0
            )
        elif status == "ok":
            result: tuple[bytes, ...] = final[: draw(st.integers(0, len(final)))]
            if draw(st.integers(0, 9)) == 0:
                result = (*result, draw(st.sampled_from([GHOST, *values])))
            op = msgspec.structs.replace(op, result=result)
        ops.append(op)
    return Recorded(tuple(ops), final)


@settings(max_examples=300, deadline=None)
@given(arbitrary_histories())
def test_agrees_with_wgl_on_arbitrary_small_histories(h: Recorded) -> None:
    assert_checkers_agree(h.ops, h.final)


@pytest.mark.parametrize(
    "name",
    [
        "stale",
        "future",
        "backwards",
        "appends-against-real-time",
        "tie",
        "info-after-read",
    ],
)
def test_agrees_with_wgl_on_the_hand_written_cases(name: str) -> None:
    h = History()
    if name == "stale":
        h.append(b"a", 0, 1, position=1)
        h.read((), 2, 3)
        final = [b"a"]
    elif name == "future":
        h.read((b"a",), 0, 1)
        h.append(b"a", 2, status="info")
        final = [b"a"]
    elif name == "backwards":
        h.append(b"a", 0, status="info")
        h.read((b"a",), 1, 2)
        h.read((), 3, 4)
        final = [b"a"]
    elif name == "appends-against-real-time":
        h.append(b"a", 0, 1, position=2)
        h.append(b"b", 2, 3, position=1)
        final = [b"b", b"a"]
    elif name == "tie":
        h.append(b"a", 0, 5, position=2)
        h.append(b"b", 5, 6, position=1)
        final = [b"b", b"a"]
    else:
        h.append(b"a", 0, 1, position=1)
        h.read((b"a",), 2, 3)
        h.append(b"b", 4, status="info")
        h.read((b"a",), 5, 6)
        final = [b"a", b"b"]
    fast = check_log_history(h.ops, final)
    general = check(AppendLogModel(), as_wgl_history(h.ops, final))
    assert fast.ok == general.linearizable
    assert fast.ok == (name in {"tie", "info-after-read"})
